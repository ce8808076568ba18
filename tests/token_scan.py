"""The suite-wide token scan (a pytest plugin, loaded by ``tests/conftest.py``).

For every test, log records are captured at DEBUG (the root and ``airflow_provider_doto`` loggers),
and each phase's report is checked: a known test token (``known_tokens.KNOWN_TOKENS``) in a captured
log record, in captured stdout or stderr fails the test. ``dag.test()`` prints task logs to the
console, so Airflow's task logs are covered too. A test that shows a token on purpose says so with
``@pytest.mark.token_in_output(reason=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

import pytest
from known_tokens import leaks, masked

MARKER = "token_in_output"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(reason): the test shows a known test token on purpose (no token scan)"
    )


@pytest.fixture(autouse=True)
def _log_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG records too, so a token logged at DEBUG is caught (restored after the test)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_doto")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker(MARKER)
    if marker is not None and not (marker.kwargs.get("reason") or marker.args):
        report.outcome = "failed"
        report.longrepr = f"@pytest.mark.{MARKER} needs a reason"
        return report
    if not report.passed or marker is not None:
        return report
    # The sections of this phase only (earlier phases were checked in their own reports).
    for title, text in report.sections:
        if not title.endswith(f" {report.when}"):
            continue
        found = leaks(text)
        if found:
            line = next(line for line in text.splitlines() if leaks(line))
            report.outcome = "failed"
            report.longrepr = (
                f"a known test token ({len(found)}) appeared in '{title}' (a leak, or a test that shows "
                f"a token on purpose: mark it @pytest.mark.{MARKER}(reason=...)):\n{masked(line)[:500]}"
            )
            break
    return report
