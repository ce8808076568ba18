"""One real Airflow deployment (scheduler, dag-processor, triggerer, api-server) for these tests.

The stack is started once, on first use, by :class:`AirflowStack` (the same code as the ``stack``
command) and stopped by PID/process group at the end of the session, also when a test fails.
Its component logs are copied to ``artifacts/deployment/`` for inspection.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import EXAMPLE_DAGS

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
# Recognisable, so a leak into any log is unambiguous.
TOKEN = "doto-deploy-SECRET-4f1c9e7a2b"
ESCALATION_INBOX_ID = 900
_TIMINGS: list[tuple[str, float]] = []


def record_timing(label: str, seconds: float) -> None:
    _TIMINGS.append((label, seconds))


# Each server personality gets its own deployment (one after the other); the connection is on auto.
STACK_FLAVORS = ("doto", "chatwoot")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stack" in metafunc.fixturenames:
        # The connection form does not depend on the server: one deployment is enough for it.
        form = metafunc.module.__name__.endswith("test_connection_form")
        flavors = STACK_FLAVORS[:1] if form else STACK_FLAVORS
        metafunc.parametrize("stack", flavors, indirect=True, scope="session", ids=lambda f: f"server={f}")


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """A shared deployment per server flavor; SQLite unless ``DOTO_STACK_DB=postgres``."""
    flavor = getattr(request, "param", "doto")
    home = tmp_path_factory.mktemp(f"airflow-stack-{flavor}")
    deployment = AirflowStack(
        home=home,
        flavor=flavor,
        dags=[
            EXAMPLE_DAGS,
            *(
                REPO / "tests" / "dags" / f"deployment_{n}.py"
                for n in ("failing_task", "batch_send", "delivery_wait")
            ),
        ],
        database=os.environ.get("DOTO_STACK_DB", "sqlite"),
        token=TOKEN,
        api_port=0,
        env={
            "DOTO_WATCH_POLL_INTERVAL": "1",
            # The account-wide escalation watcher watches one inbox, which only its own test uses:
            # other tests' conversations (and their request counts) stay out of its way.
            "DOTO_ESCALATION_INBOX_ID": str(ESCALATION_INBOX_ID),
            # A killed triggerer's triggers move to a new one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
        },
        echo=print,
    )
    t0 = time.monotonic()
    deployment.start()  # stops whatever it started if it fails
    record_timing(f"stack start, {flavor} server (migrate + 4 components healthy)", time.monotonic() - t0)
    try:
        yield deployment
    finally:
        t0 = time.monotonic()
        deployment.stop()
        record_timing(f"stack stop, {flavor} server", time.monotonic() - t0)
        target = ARTIFACTS / "deployment" / "logs" / flavor
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(deployment.log_dir, target, dirs_exist_ok=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/deployment/" in report.nodeid:
        record_timing(f"{report.nodeid} ({report.outcome})", report.duration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIMINGS:
        return
    terminalreporter.section("deployment test durations")
    for label, seconds in _TIMINGS:
        terminalreporter.write_line(f"{seconds:7.1f} s  {label}")
    terminalreporter.write_line(f"{sum(s for _, s in _TIMINGS):7.1f} s  total")
