"""``tests/conftest.py``: what the test process changes in Airflow's setup, and why it must stay."""

from __future__ import annotations

import structlog


def test_structlog_loggers_stay_uncached_whoever_configures_them():
    """A structlog logger cached on first use keeps the ``sys.stdout`` of that moment. First used
    under a test's ``capfd``/``capsys`` it kept that closed stream, and every later dag run or poke
    sensor in the process failed with "I/O operation on closed file" (seen on 3.1.5: test_bad_input,
    then test_doto_retry; Airflow's own guard did not cover the configure call that cached it). The
    conftest turns caching off in every ``structlog.configure`` call of the test process."""
    cached = structlog.get_config()["cache_logger_on_first_use"]
    structlog.configure(cache_logger_on_first_use=True)  # what a caller outside the guard asks for
    try:
        assert structlog.get_config()["cache_logger_on_first_use"] is False
    finally:
        structlog.configure(cache_logger_on_first_use=cached)
