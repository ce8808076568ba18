"""A local Airflow deployment wired to the Doto emulator: real components as separate processes.

``python -m airflow_provider_doto.testing stack`` (or ``python -m airflow_provider_doto.testing.stack``)
starts, in a fresh ``AIRFLOW_HOME``: the Doto emulator (seeded conversation), the metadata DB
(SQLite, or a throwaway PostgreSQL cluster with ``--postgres``), the ``doto_default`` connection in
that DB, then ``airflow scheduler``, ``airflow dag-processor``, ``airflow triggerer`` and ``airflow
api-server`` on loopback, and stops every process it started on Ctrl-C, SIGTERM or failure.

:class:`AirflowStack` is the same thing as a context manager; the deployment tests use it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import requests

from airflow_provider_doto.testing.emulator import DEFAULT_TOKEN, DotoEmulator
from airflow_provider_doto.testing.local_airflow import (
    EXAMPLE_DAGS,
    airflow_settings,
    isolated_environment,
    sqlite_uri,
    tail,
    wait_until,
)
from airflow_provider_doto.testing.seed import seed_conversation

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_PATH = "/api/v2/monitor/health"
STOP_TIMEOUT = 20.0
# Settings every component shares; per-stack values (home, ports, keys, DB) are added in ``env``.
BASE_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__API__EXPOSE_CONFIG": "False",
    # No sync-in-async bridge: a trigger that fetches its connection synchronously fails here, as it
    # would in a triggerer without greenback, instead of silently working.
    "AIRFLOW_DISABLE_GREENBACK_PORTAL": "true",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


class StackError(RuntimeError):
    """The stack could not start, or a component died; the message says which and shows its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _drop_privileges_argv() -> list[str]:
    """Prefix that runs a PostgreSQL binary as ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise StackError("running as root needs `runuser` to start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--"]


def find_postgres_bin() -> Path:
    """Directory with ``initdb`` and ``pg_ctl``: ``$DOTO_PG_BIN``, Debian's newest, or ``$PATH``."""
    configured = os.environ.get("DOTO_PG_BIN")
    if configured:
        return Path(configured)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StackError("no PostgreSQL server binaries found (install `postgresql` or set DOTO_PG_BIN)")


class PostgresCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with trust auth, one database ``airflow``."""

    def __init__(self, port: int | None = None, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = port or free_port()
        self.root: Path | None = None
        self._started = False

    @property
    def uri(self) -> str:
        # psycopg 3 serves both Airflow's sync engine and its async one (no psycopg2 + asyncpg pair).
        return f"postgresql+psycopg://airflow@127.0.0.1:{self.port}/airflow"

    def _run(self, argv: Sequence[str], timeout: float = 120) -> None:
        result = subprocess.run(
            [*_drop_privileges_argv(), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
        )
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def start(self) -> PostgresCluster:
        # Its own temp dir (not under AIRFLOW_HOME), so the postgres user can own and enter it.
        self.root = Path(tempfile.mkdtemp(prefix="doto-stack-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            [str(self.bin_dir / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.root / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._started = True
        self._run(
            [
                str(self.bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "airflow",
                "airflow",
            ]
        )
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files; safe to call twice."""
        root, self.root = self.root, None
        if root is None:
            return
        try:
            if self._started:
                self._started = False
                with contextlib.suppress(StackError, subprocess.TimeoutExpired):
                    self._run(
                        [str(self.bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"],
                        timeout=60,
                    )
        finally:
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Component:
    """One Airflow component: a process group we started, logging to one file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``; empty once the group is gone."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group still exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def stop_groups(
    processes: Iterable[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT
) -> dict[int, float | None]:
    """SIGTERM each process group, wait for all members to exit, then SIGKILL whatever is left.

    Returns, per group leader pid, the seconds its group took to exit, or None if it was killed.
    """
    procs = list(processes)
    t0 = time.monotonic()
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    took: dict[int, float | None] = {}
    deadline = t0 + timeout
    while len(took) < len(procs) and time.monotonic() < deadline:
        for proc in procs:
            proc.poll()  # reap our direct children so they stop counting as members
            if proc.pid not in took and not group_members(proc.pid):
                took[proc.pid] = time.monotonic() - t0
        time.sleep(0.1)
    for proc in procs:
        if proc.pid not in took:
            took[proc.pid] = None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    return took


@dataclass
class AirflowStack:
    """Airflow's scheduler, dag-processor, triggerer and api-server, plus the Doto emulator.

    ``with AirflowStack() as stack:`` migrates a fresh metadata DB, creates the ``doto_default``
    connection in it, starts the components (each its own process group, logs in
    ``stack.log_dir``) and waits until ``/api/v2/monitor/health`` reports all of them healthy. On
    exit (or failure while starting) it stops every process it started, then the emulator, then
    PostgreSQL, and deletes the home unless ``keep_home``.

    :param home: AIRFLOW_HOME to use (created; default a new temp dir, deleted on exit).
    :param dags: files or folders linked into the DAGs folder (default: the example DAGs shipped in the package).
    :param database: ``"sqlite"`` or ``"postgres"`` (a throwaway loopback cluster).
    :param emulator: a started or unstarted emulator to use; default a new one with ``token``.
    :param flavor: the server personality of the emulator it makes (``doto`` or ``chatwoot``);
        the ``doto_default`` connection stays on ``auto``.
    :param env: extra environment for every component (e.g. settings or DAG inputs).
    """

    home: Path | None = None
    dags: Sequence[Path] | None = None
    database: str = "sqlite"
    emulator: DotoEmulator | None = None
    token: str | None = None
    account_id: int = 1
    flavor: str = "doto"
    seed: int = 12
    parallelism: int = 4
    api_port: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    keep_home: bool | None = None
    startup_timeout: float = 240.0
    echo: Callable[[str], None] | None = None

    components: dict[str, Component] = field(default_factory=dict, init=False)
    conversation_id: int = field(default=0, init=False)
    _postgres: PostgresCluster | None = field(default=None, init=False)
    _own_emulator: bool = field(default=False, init=False)
    _own_home: bool = field(default=False, init=False)
    _base_env: dict[str, str] = field(default_factory=dict, init=False)
    _session: requests.Session = field(default_factory=requests.Session, init=False)
    _api_token: str | None = field(default=None, init=False)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _say(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return f"{self.base_url}/"

    @property
    def log_dir(self) -> Path:
        assert self.home is not None
        return self.home / "logs" / "stack"

    @property
    def dags_folder(self) -> Path:
        assert self.home is not None
        return self.home / "dags"

    def start(self) -> AirflowStack:
        """Start everything; on any failure stop what was started and re-raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        t0 = time.monotonic()
        if self.home is None:
            self.home = Path(tempfile.mkdtemp(prefix="doto-stack-home-"))
            self._own_home = True
        self.home = self.home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        if self.keep_home is None:
            self.keep_home = not self._own_home
        if not self.api_port:
            self.api_port = free_port()
        elif not port_free(self.api_port):
            raise StackError(f"port {self.api_port} on 127.0.0.1 is in use: pick another (0 = any free port)")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._link_dags()

        if self.emulator is None:
            self.emulator = DotoEmulator(
                token=self.token or secrets.token_urlsafe(24), account_id=self.account_id, flavor=self.flavor
            )
            self._own_emulator = True
        if not self.emulator.running:
            self.emulator.start()
        self.conversation_id = seed_conversation(self.emulator, self.seed)
        self._say(
            f"Doto emulator ({self.emulator.flavor} flavor) on {self.emulator.base_url}, "
            f"conversation {self.conversation_id}"
        )

        if self.database == "postgres":
            self._say("Starting a throwaway PostgreSQL cluster ...")
            self._postgres = PostgresCluster().start()
            self._say(f"PostgreSQL on 127.0.0.1:{self._postgres.port} (files in {self._postgres.root})")
            db_uri = self._postgres.uri
        elif self.database == "sqlite":
            db_uri = sqlite_uri(self.home)
        else:
            raise ValueError(f"database must be 'sqlite' or 'postgres', not {self.database!r}")
        self._base_env = self._environment(db_uri)

        self._say("Migrating the metadata DB ...")
        self.airflow("db", "migrate", timeout=300)
        self._create_connection()
        for name in COMPONENTS:
            self.start_component(name)
        self._say("Waiting for the components to report healthy ...")
        self.wait_healthy(self.startup_timeout)
        self._say(f"Stack healthy in {time.monotonic() - t0:.1f} s")

    def stop(self) -> None:
        """Stop every process started (by process group), the emulator and PostgreSQL; idempotent."""
        try:
            t0 = time.monotonic()
            running = {c.name: c.process for c in self.components.values() if c.process is not None}
            # Workers and triggers talk to the api-server while they shut down: stop it last.
            took = stop_groups(p for name, p in running.items() if name != "api-server")
            took.update(stop_groups(p for name, p in running.items() if name == "api-server"))
            if running:
                detail = ", ".join(
                    f"{name} {'killed' if took[p.pid] is None else f'{took[p.pid]:.1f} s'}"
                    for name, p in running.items()
                )
                self._say(f"Stopped the components in {time.monotonic() - t0:.1f} s ({detail})")
        finally:
            try:
                if self._own_emulator and self.emulator is not None:
                    self.emulator.stop()
            finally:
                try:
                    if self._postgres is not None:
                        self._postgres.stop()
                        self._postgres = None
                finally:
                    self._session.close()
                    if self._own_home and not self.keep_home and self.home is not None:
                        shutil.rmtree(self.home, ignore_errors=True)

    # -- setup ----------------------------------------------------------------------------------------

    def _link_dags(self) -> None:
        sources = list(self.dags) if self.dags is not None else [EXAMPLE_DAGS]
        self.dags_folder.mkdir(exist_ok=True)
        for source in sources:
            source = Path(source).resolve()
            if not source.exists():
                raise StackError(f"DAG source {source} does not exist")
            link = self.dags_folder / source.name
            if not link.exists():
                link.symlink_to(source, target_is_directory=source.is_dir())

    def _environment(self, db_uri: str) -> dict[str, str]:
        assert self.home is not None
        # Nothing Airflow-related leaks in from the caller (e.g. a test session's unit-test settings).
        env = isolated_environment({**BASE_SETTINGS, **airflow_settings(self.home, self.dags_folder, db_uri)})
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_uri.replace(
                    "sqlite://", "sqlite+aiosqlite://", 1
                ),
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            }
        )
        # The asset-watcher example DAG watches the seeded conversation, polling every 5 s.
        env["DOTO_WATCH_CONVERSATION_ID"] = str(self.conversation_id)
        env["DOTO_WATCH_POLL_INTERVAL"] = "5"
        env.update(self.env)
        return env

    def airflow(self, *args: str, timeout: float = 120) -> str:
        """Run an ``airflow`` CLI command with the stack's settings; return stdout, raise on failure."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self._base_env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        with (self.log_dir / "cli.log").open("a") as log:
            log.write(f"$ airflow {' '.join(args)}\n{result.stdout}{result.stderr}\n")
        if result.returncode != 0:
            raise StackError(
                f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-4000:]}"
            )
        return result.stdout

    def _create_connection(self) -> None:
        """``doto_default`` in the metadata DB, imported from a 0600 file so the token is never in argv."""
        assert self.emulator is not None and self.home is not None
        conn = json.loads(self.emulator.connection_json())
        conn["extra"] = json.dumps(conn["extra"])
        path = self.home / "doto_connection.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"doto_default": conn}, handle)
        try:
            self.airflow("connections", "import", str(path))
        finally:
            path.unlink(missing_ok=True)

    # -- components -----------------------------------------------------------------------------------

    def _argv(self, name: str) -> list[str]:
        base = [sys.executable, "-m", "airflow"]
        if name == "api-server":
            return [
                *base,
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                "1",
            ]
        if name in ("scheduler", "triggerer"):
            return [*base, name, "--skip-serve-logs"]
        if name == "dag-processor":
            return [*base, "dag-processor"]
        raise ValueError(f"unknown component {name!r}")

    def start_component(self, name: str) -> Component:
        """Start (or restart) one component in its own process group, appending to its log."""
        existing = self.components.get(name)
        if existing is not None and existing.alive():
            raise StackError(f"{name} is already running (pid {existing.pid})")
        component = existing or Component(name, self._argv(name), self.log_dir / f"{name}.log")
        if existing is not None:
            component.restarts += 1
        self.components[name] = component  # registered first, so stop() sees it whatever happens next
        with component.log_path.open("ab") as log:
            log.write(f"\n=== starting {name} (start #{component.restarts + 1}) ===\n".encode())
            log.flush()
            component.process = subprocess.Popen(
                component.argv,
                env=self._base_env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop it and all its children by pgid
            )
        self._say(f"  {name}: pid {component.pid}, log {component.log_path}")
        return component

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a component's whole process group and wait until the group is gone."""
        component = self.components[name]
        assert component.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, sig)
        stop_groups([component.process])

    def check_alive(self) -> None:
        """Raise :class:`StackError` with the log tail if any component has exited."""
        for component in self.components.values():
            if component.process is not None and component.process.poll() is not None:
                raise StackError(
                    f"{component.name} exited with {component.process.returncode}; "
                    f"last lines of {component.log_path}:\n{tail(component.log_path)}"
                )

    def health(self) -> dict[str, Any] | None:
        try:
            response = self._session.get(self.base_url + HEALTH_PATH, timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.ok else None

    def wait_healthy(
        self, timeout: float = 120, components: Sequence[str] = ("scheduler", "triggerer", "dag_processor")
    ) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            report = self.health()
            if report is None:
                return None
            parts = ["metadatabase", *components]
            ok = all((report.get(part) or {}).get("status") == "healthy" for part in parts)
            return report if ok else None

        return wait_until(healthy, timeout, "all components to report healthy", interval=0.5)

    # -- REST API ----------------------------------------------------------------------------------

    def api_token(self) -> str:
        """A bearer token from ``GET /auth/token`` (SimpleAuthManager with all users admin)."""
        if self._api_token is None:
            response = self._session.get(self.base_url + "/auth/token", timeout=30)
            response.raise_for_status()
            self._api_token = str(response.json()["access_token"])
        return self._api_token

    def api(self, method: str, path: str, json_body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        """Call the public REST API (``path`` under ``/api/v2``); return the decoded JSON."""
        response = self._session.request(
            method,
            f"{self.base_url}/api/v2{path}",
            json=json_body,
            headers={"Authorization": f"Bearer {self.api_token()}"},
            timeout=30,
        )
        if response.status_code not in ok:
            raise StackError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (and it has no import error)."""

        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            response = self._session.get(
                f"{self.base_url}/api/v2/dags/{dag_id}",
                headers={"Authorization": f"Bearer {self.api_token()}"},
                timeout=30,
            )
            return response.json() if response.ok else None

        try:
            return wait_until(parsed, timeout, f"DAG {dag_id} to be parsed", interval=0.5)
        except TimeoutError as exc:
            errors = self.api("GET", "/importErrors")
            raise StackError(f"{exc}; import errors: {json.dumps(errors)[:4000]}") from None

    def trigger_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Start a manual run through the REST API; return its ``dag_run_id``."""
        body = {"logical_date": None, "conf": dict(conf or {})}
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", body)
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self.api("GET", path)["value"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until a run is finished (success or failed); return it."""

        def finished() -> dict[str, Any] | None:
            self.check_alive()
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return wait_until(finished, timeout, f"run {run_id} of {dag_id} to finish", interval=0.5)

    # -- logs --------------------------------------------------------------------------------------

    def log_files(self) -> list[Path]:
        """Every log the stack and its tasks wrote: component output, CLI output, task and trigger logs."""
        assert self.home is not None
        return sorted(p for p in (self.home / "logs").rglob("*") if p.is_file())


# -- command line -------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``stack`` command's options (shared by ``python -m airflow_provider_doto.testing stack``)."""
    parser.add_argument(
        "--home", type=Path, help="AIRFLOW_HOME to create and keep (default: a temp dir, deleted)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        default=os.environ.get("DOTO_STACK_DB", "").lower() == "postgres",
        help="use a throwaway PostgreSQL cluster on loopback (also: DOTO_STACK_DB=postgres)",
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="api-server / UI port on 127.0.0.1; 0 picks a free one"
    )
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help=f"the emulator's API token (default {DEFAULT_TOKEN})"
    )
    parser.add_argument("--seed", type=int, default=12, help="messages seeded in the demo conversation")
    parser.add_argument(
        "--flavor",
        choices=("doto", "chatwoot"),
        default="doto",
        help="the emulator's server personality: doto (the reference) or chatwoot (its finder rules)",
    )
    parser.add_argument(
        "--dags",
        type=Path,
        action="append",
        help="DAG file or folder to link into the DAGs folder (repeatable; default: the example DAGs shipped in the package)",
    )


def run(args: argparse.Namespace) -> int:
    """Start the stack, print how to use it, and serve until Ctrl-C / SIGTERM or a component dies."""
    interrupted: list[int] = []

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if not interrupted:  # raise once; later signals must not interrupt the cleanup
            interrupted.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    stack = AirflowStack(
        home=args.home,
        dags=args.dags,
        database="postgres" if args.postgres else "sqlite",
        token=args.token,
        flavor=args.flavor,
        seed=args.seed,
        api_port=args.port,
        echo=lambda line: print(line, flush=True),
    )
    try:
        with stack:
            emulator = stack.emulator
            assert emulator is not None
            add_message = (
                f"curl -X POST -H 'api_access_token: {emulator.token}' -H 'Content-Type: application/json' "
                f"""-d '{{"content": "I want a refund", "message_type": "incoming"}}' """
                f"{emulator.messages_url(stack.conversation_id)}"
            )
            print(
                "\n".join(
                    [
                        "",
                        f"Airflow UI:        {stack.ui_url}  (no password: SimpleAuthManager, everyone is admin)",
                        f"REST API token:    curl {stack.base_url}/auth/token",
                        f"AIRFLOW_HOME:      {stack.home}",
                        f"Component logs:    {stack.log_dir}/<component>.log",
                        f"Doto emulator:     {emulator.base_url}  (connection doto_default, in the metadata DB)",
                        f"Conversation id:   {stack.conversation_id}  (watched by doto_new_message_watcher)",
                        f"Customer message:  {add_message}",
                        "Press Ctrl-C to stop every process.",
                    ]
                ),
                flush=True,
            )
            while True:
                stack.check_alive()
                time.sleep(1)
    except KeyboardInterrupt:
        print("Stopped every process the stack started.", flush=True)
        return 0
    except (StackError, TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        print("Stopped every process the stack started.", file=sys.stderr, flush=True)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_doto.testing.stack", description=__doc__
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
