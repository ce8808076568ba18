"""A throwaway PostgreSQL server for the local stack's metadata DB (Celery does not run on SQLite).

The rule: the cluster lives in its own temp dir on 127.0.0.1 with trust auth, fsync off, and
:meth:`PostgresCluster.stop` deletes every file it made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from airflow_provider_doto.testing.stack.processes import StackError, free_port


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
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
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
