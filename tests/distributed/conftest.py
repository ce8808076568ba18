"""One distributed Airflow deployment for these tests: PostgreSQL, a Redis broker, two Celery
workers, two triggerers, scheduler, dag-processor and api-server, each its own process.

Started once, on first use, by :class:`AirflowStack` (``executor="celery"``) and stopped by process
group at the end of the session, also when a test fails; its logs go to ``artifacts/distributed/``.
Each server flavor gets its own deployment, one after the other (the connection is on ``auto``).
The figures the tests measure are printed at the end of the run (they go to RELIABILITY.md).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.broker import find_redis_server
from airflow_provider_doto.testing.stack.postgres import find_postgres_bin
from airflow_provider_doto.testing.stack.processes import StackError

from ..reliability._options import soak_enabled

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "distributed"
TOKEN = "doto-distributed-SECRET-7b3e0c51"
# A dead triggerer's triggers move once its heartbeat is this old (Airflow's default is 30 s).
HEALTH_CHECK_THRESHOLD = 6
STACK_FLAVORS = ("doto", "chatwoot")
_FIGURES: list[str] = []


@dataclass(frozen=True)
class Scale:
    """How hard the tests push the deployment. Both scales overload it: more sensors than a
    triggerer may hold (the victim's ``[triggerer] capacity`` is half of them) and many more sends
    than the workers' 2 x 4 slots. The soak's (``scripts/soak.sh``) writes RELIABILITY.md's figures."""

    sensors: int  # deferred sensors in the triggerer failover
    sends: int  # mapped sends in the worker failover
    held: int  # of those, POSTs the emulator holds a few seconds before committing them

    @property
    def victim_capacity(self) -> int:
        """``triggerer-1`` (the one the triggerer failover kills) holds at most this many triggers."""
        return self.sensors // 2


FAST = Scale(sensors=40, sends=80, held=24)
SOAK = Scale(sensors=100, sends=200, held=40)


@pytest.fixture(scope="session")
def scale(pytestconfig: pytest.Config) -> Scale:
    return SOAK if soak_enabled(pytestconfig) else FAST


ESCALATION_INBOX_ID = 900
_flavor = [""]  # the server flavor of the deployment running now, to label figures


def figure(line: str) -> None:
    """A measured figure, printed in the summary at the end of the run (never asserted on)."""
    line = f"[{_flavor[0]}] {line}" if _flavor[0] else line
    _FIGURES.append(line)
    print(line, flush=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "distributed_stack" in metafunc.fixturenames:
        metafunc.parametrize(
            "distributed_stack", STACK_FLAVORS, indirect=True, scope="session", ids=lambda f: f"server={f}"
        )


@pytest.fixture(scope="session")
def distributed_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, scale: Scale
) -> Iterator[AirflowStack]:
    flavor = getattr(request, "param", "doto")
    try:
        find_redis_server()
        find_postgres_bin()
    except StackError as exc:
        pytest.skip(f"{exc} (.ci/deployment-prereqs.sh installs it)")
    stack = AirflowStack(
        home=tmp_path_factory.mktemp(f"airflow-distributed-{flavor}"),
        flavor=flavor,
        executor="celery",
        workers=2,
        worker_concurrency=4,
        triggerers=2,
        component_env={"triggerer-1": {"AIRFLOW__TRIGGERER__CAPACITY": str(scale.victim_capacity)}},
        parallelism=32,
        dags=[REPO / "tests" / "dags" / f"distributed_{name}_failover.py" for name in ("sensor", "send")],
        token=TOKEN,
        env={
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
            # A task queued on a killed worker is re-queued after this long (default 600 s).
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "30",
            # A task whose worker died is failed (then retried) once its heartbeat is this old (default 300 s).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The asset-watcher example DAG (linked by test_watcher_failover.py) polls every second.
            "DOTO_WATCH_POLL_INTERVAL": "1",
            # The account-wide example watcher (linked by test_watcher_failover_account.py) watches one inbox.
            "DOTO_ESCALATION_INBOX_ID": str(ESCALATION_INBOX_ID),
        },
        echo=print,
    )
    _flavor[0] = flavor
    t0 = time.monotonic()
    stack.start()  # stops whatever it started if it fails
    figure(f"distributed stack start: {time.monotonic() - t0:.1f} s ({', '.join(stack.components)})")
    try:
        yield stack
    finally:
        t0 = time.monotonic()
        stack.stop()
        figure(f"distributed stack stop: {time.monotonic() - t0:.1f} s")
        target = ARTIFACTS / "logs" / flavor
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(stack.log_dir, target, dirs_exist_ok=True)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/distributed/" in report.nodeid:
        _FIGURES.append(f"{report.nodeid} ({report.outcome}): {report.duration:.1f} s")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("distributed test figures")
    for line in _FIGURES:
        terminalreporter.write_line(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(_FIGURES, indent=1))
