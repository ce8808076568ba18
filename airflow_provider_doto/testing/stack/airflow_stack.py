"""A local Airflow deployment wired to the Doto emulator: real components as separate processes.

``python -m airflow_provider_doto.testing.stack`` (``__main__``: the one way to start it) starts,
in a fresh ``AIRFLOW_HOME``: the Doto emulator (seeded conversation), the metadata DB
(SQLite, or a throwaway PostgreSQL cluster with ``--postgres``), the ``doto_default`` connection in
that DB, then ``airflow scheduler``, ``airflow dag-processor``, ``airflow triggerer`` and ``airflow
api-server`` on loopback, and stops every process it started on Ctrl-C, SIGTERM or failure.

Distributed mode (``--executor celery --workers 2 --triggerers 2``) runs Airflow's scale-out parts
instead: PostgreSQL, a Redis broker, N ``airflow celery worker`` processes and M triggerers sharing
the triggers (high availability), each its own process group with its own log.

:class:`AirflowStack` is the same thing as a context manager: that command runs it, the deployment
and distributed tests and the benchmarks use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.emulator.seed import seed_conversation
from airflow_provider_doto.testing.stack.airflow_api import AirflowApi, rest_session
from airflow_provider_doto.testing.stack.broker import redis_argv, wait_for_redis
from airflow_provider_doto.testing.stack.env import component_argv, stack_environment
from airflow_provider_doto.testing.stack.local_airflow import (
    EXAMPLE_DAGS,
    sqlite_uri,
    tail,
    wait_until,
)
from airflow_provider_doto.testing.stack.postgres import PostgresCluster
from airflow_provider_doto.testing.stack.processes import (
    Component,
    StackError,
    free_port,
    port_free,
    stop_groups,
)


@dataclass
class AirflowStack(AirflowApi):
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
    :param executor: ``"local"`` (LocalExecutor, the default) or ``"celery"`` (a Redis broker and
        ``workers`` Celery workers of ``worker_concurrency`` slots each; needs PostgreSQL, the
        default database then).
    :param triggerers: how many ``airflow triggerer`` processes share the triggers.
    :param component_env: extra environment for one component, by name (e.g. a smaller
        ``[triggerer] capacity`` for ``triggerer-1``), over ``env``.
    """

    home: Path | None = None
    dags: Sequence[Path] | None = None
    database: str | None = None
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
    executor: str = "local"
    workers: int = 2
    worker_concurrency: int = 4
    triggerers: int = 1
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    components: dict[str, Component] = field(default_factory=dict, init=False)
    conversation_id: int = field(default=0, init=False)
    redis_port: int = field(default=0, init=False)
    _postgres: PostgresCluster | None = field(default=None, init=False)
    _own_emulator: bool = field(default=False, init=False)
    _own_home: bool = field(default=False, init=False)
    _base_env: dict[str, str] = field(default_factory=dict, init=False)
    _session: requests.Session = field(default_factory=lambda: rest_session(), init=False)
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

        if self.executor not in ("local", "celery"):
            raise ValueError(f"executor must be 'local' or 'celery', not {self.executor!r}")
        self.database = self.database or ("postgres" if self.executor == "celery" else "sqlite")
        if self.executor == "celery" and self.database != "postgres":
            raise StackError("the CeleryExecutor needs PostgreSQL (database='postgres'), not SQLite")
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
        if self.executor == "celery":
            self.start_component("redis")
            wait_for_redis(self.redis_port)
        for name in self.component_names():
            self.start_component(name)
        self._say("Waiting for the components to report healthy ...")
        self.wait_healthy(self.startup_timeout)
        if self.triggerers > 1 or self.executor == "celery":
            wait_until(
                lambda: len(self.alive_jobs("TriggererJob")) >= self.triggerers,
                self.startup_timeout,
                f"{self.triggerers} triggerers to heartbeat",
                interval=0.5,
            )
            for name in self.worker_names():
                self.wait_worker_ready(name)
        self._say(f"Stack healthy in {time.monotonic() - t0:.1f} s")

    def stop(self) -> None:
        """Stop every process started (by process group), the emulator and PostgreSQL; idempotent."""
        try:
            t0 = time.monotonic()
            running = {c.name: c.process for c in self.components.values() if c.process is not None}
            # Workers and triggers talk to the api-server and the broker while they shut down: stop those last.
            last = ("api-server", "redis")
            took = stop_groups(p for name, p in running.items() if name not in last)
            took.update(stop_groups(p for name, p in running.items() if name in last))
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
        if self.executor == "celery":
            self.redis_port = self.redis_port or free_port()
        env = stack_environment(
            self.home,
            self.dags_folder,
            db_uri,
            self.base_url,
            self.parallelism,
            celery=(self.redis_port, self.worker_concurrency) if self.executor == "celery" else None,
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

    def triggerer_names(self) -> list[str]:
        """``triggerer`` alone, else ``triggerer-1`` ... ``triggerer-M``."""
        return (
            ["triggerer"]
            if self.triggerers == 1
            else [f"triggerer-{i}" for i in range(1, self.triggerers + 1)]
        )

    def worker_names(self) -> list[str]:
        return [f"worker-{i}" for i in range(1, self.workers + 1)] if self.executor == "celery" else []

    def component_names(self) -> list[str]:
        """The Airflow processes of this stack (the broker, when there is one, starts before them)."""
        return ["api-server", "scheduler", "dag-processor", *self.triggerer_names(), *self.worker_names()]

    def wait_worker_ready(self, name: str, timeout: float = 120) -> None:
        """Wait for a Celery worker's ``celery@<name> ready.`` line in its log (since its last start)."""
        component = self.components[name]

        def ready() -> bool:
            self.check_alive()
            text = component.log_path.read_text(errors="replace")
            return f"celery@{name} ready." in text.rsplit("=== starting", 1)[-1]

        wait_until(ready, timeout, f"Celery worker {name} to be ready", interval=0.5)

    def _argv(self, name: str) -> list[str]:
        if name == "redis":
            assert self.home is not None
            (self.home / "redis").mkdir(exist_ok=True)
            return redis_argv(self.redis_port, self.home / "redis")
        return component_argv(name, self.api_port)

    def start_component(self, name: str) -> Component:
        """Start (or restart) one component in its own process group, appending to its log."""
        existing = self.components.get(name)
        if existing is not None and existing.alive():
            raise StackError(f"{name} is already running (pid {existing.pid})")
        component = existing or Component(name, self._argv(name), self.log_dir / f"{name}.log")
        if existing is not None:
            component.restarts += 1
        self.components[name] = component  # registered first, so stop() sees it whatever happens next
        assert self.home is not None
        component.spawn({**self._base_env, **self.component_env.get(name, {})}, self.home)
        self._say(f"  {name}: pid {component.pid}, log {component.log_path}")
        return component

    def kill_component(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a component's whole process group and wait until the group is gone."""
        component = self.components[name]
        assert component.process is not None
        component.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.process.pid, sig)
        stop_groups([component.process])

    def check_alive(self) -> None:
        """Raise :class:`StackError` with the log tail if any component has exited."""
        for component in self.components.values():
            if component.killed:
                continue
            if component.process is not None and component.process.poll() is not None:
                raise StackError(
                    f"{component.name} exited with {component.process.returncode}; "
                    f"last lines of {component.log_path}:\n{tail(component.log_path)}"
                )

    # -- logs --------------------------------------------------------------------------------------

    def log_files(self) -> list[Path]:
        """Every log the stack and its tasks wrote: component output, CLI output, task and trigger logs."""
        assert self.home is not None
        return sorted(p for p in (self.home / "logs").rglob("*") if p.is_file())
