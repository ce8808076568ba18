"""Test-wide setup: an isolated AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import structlog

# The suite-wide token scan: DEBUG log records and console output of every test (tests/token_scan.py).
from token_scan import _log_at_debug, pytest_runtest_makereport  # noqa: F401
from token_scan import pytest_configure as _token_scan_configure

from airflow_provider_doto.testing.stack.local_airflow import EXAMPLE_DAGS, airflow_settings

from .reliability._options import add_soak_option

_HOME = Path(tempfile.mkdtemp(prefix="doto-airflow-home-"))
REPO = Path(__file__).resolve().parents[1]
# dag.test() needs the DAG file inside the dags folder: link in the examples and the test DAGs.
_DAGS = _HOME / "dags"
_DAGS.mkdir()
(_DAGS / "example_dags").symlink_to(EXAMPLE_DAGS)
(_DAGS / "test_dags").symlink_to(REPO / "tests" / "dags")
# The same settings as the demo's and the stack's Airflow (a DB named by the caller is kept). A URL
# this file exported itself is not the caller's: pytest-xdist's workers inherit the controller's
# environment, and sharing its SQLite file makes them race in initdb, so each makes its own.
_CALLERS_DB = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
if _CALLERS_DB is not None and os.environ.get("DOTO_TESTS_OWN_DB") == _CALLERS_DB:
    _CALLERS_DB = None
os.environ.update(airflow_settings(_HOME, _DAGS, _CALLERS_DB))
os.environ["DOTO_TESTS_OWN_DB"] = "" if _CALLERS_DB else os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"


def _configure_structlog_uncached(*args: Any, **kwargs: Any) -> None:
    """Airflow's structlog loggers, uncached: each writes to the ``sys.stdout`` of the moment.

    Airflow configures structlog with ``cache_logger_on_first_use``, so a logger keeps the stream
    that was ``sys.stdout`` when it first logged. First used in a test with ``capfd``/``capsys``
    (every reliability test), that is the test's own capture, closed when it ends: every later
    log line of that logger in the process raises "I/O operation on closed file" (a dag run or a
    poke-mode sensor then fails at once). Which test comes first in a process depends on the order
    and, under pytest-xdist, on the worker; uncached, each test's logs go to its own capture.
    """
    kwargs["cache_logger_on_first_use"] = False
    _configure_structlog(*args, **kwargs)


_configure_structlog = structlog.configure
structlog.configure = _configure_structlog_uncached


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB, once per session (``dag.test()`` needs one)."""
    from airflow.utils import db

    db.initdb()
    _one_execution_api_per_process()  # every test that runs dag.test() asks for this DB
    return _HOME / "airflow.db"


def _one_execution_api_per_process() -> None:
    """Build dag.test()'s in-process Execution API once per test process, not once per task run.

    Before Airflow 3.3 every task that dag.test() runs builds the whole versioned API app again
    (about a second of CPU each, most of it Cadwyn generating one router per API version: what made
    the 3.2 suite three times slower than 3.3's); 3.3 wraps the same factory in
    ``functools.lru_cache(maxsize=1)``, and this does the same on older versions. Only the harness's
    speed changes, not what runs. (It used to be dropped after each test because the app's logging
    kept a closed capture; the uncached structlog loggers above fixed that at its cause.)
    """
    from airflow.sdk.execution_time import supervisor

    factory = supervisor.in_process_api_server
    if not hasattr(factory, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(factory)


@pytest.fixture(autouse=True)
def _forget_server_flavors():
    """``auto`` remembers each server's flavor per process; tests switch the emulator's flavor."""
    yield
    hooks = sys.modules.get("airflow_provider_doto.hooks.doto")
    if hooks is not None:
        hooks._found_readings.clear()
    pacing = sys.modules.get("airflow_provider_doto.hooks._pacing")
    if pacing is not None:  # a pause or an emptied bucket of one test must not slow the next
        pacing.forget_pacers()


@pytest.fixture
def pinned_flavor(doto_emulator, monkeypatch):
    """``doto_default`` names the emulator's flavor instead of ``auto``: for tests that count requests."""
    flavor = getattr(doto_emulator, "flavor", "doto")
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", doto_emulator.connection_json(flavor=flavor))
    return flavor


# The end-to-end suites run against both server personalities of the emulator, the connection left at
# ``auto`` (the default), so each also checks that detection picks the right one.
FLAVORED_SUITES = ("hooks", "integration", "notifications", "operators", "reliability", "sensors", "triggers")
SERVER_FLAVORS = ("doto", "chatwoot")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite = Path(metafunc.definition.path).relative_to(REPO / "tests").parts[0]
    if suite not in FLAVORED_SUITES or metafunc.definition.get_closest_marker("doto_flavor"):
        return
    for fixture in ("doto_emulator", "emu"):  # emu: the reliability suite's emulator
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, SERVER_FLAVORS, indirect=True, ids=lambda f: f"server={f}")
            return


def pytest_configure(config: pytest.Config) -> None:
    _token_scan_configure(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    # Registered here too so `pytest --soak` works from the repository root.
    add_soak_option(parser)
