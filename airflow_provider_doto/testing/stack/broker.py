"""A throwaway Redis broker for the stack's Celery workers: ``redis-server`` on a loopback port.

The rule: nothing persists (``--save ''``, ``--appendonly no``), its working dir is the stack's own
temp dir, and it is a :class:`~airflow_provider_doto.testing.stack.processes.Component` like the rest,
so it is stopped by its process group.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from airflow_provider_doto.testing.stack.local_airflow import wait_until
from airflow_provider_doto.testing.stack.processes import StackError


def find_redis_server() -> str:
    """Debian's ``redis-server`` (``apt-get install redis-server``; ``.ci/run`` installs it)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        raise StackError("no redis-server found: install Debian's `redis-server` package")
    return found


def redis_argv(port: int, directory: Path) -> list[str]:
    """A foreground server on 127.0.0.1:``port`` that writes no RDB or AOF file, logging to stdout."""
    return [
        find_redis_server(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--protected-mode",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def ping(port: int) -> bool:
    """Whether a Redis server answers ``PING`` on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for_redis(port: int, timeout: float = 30) -> None:
    wait_until(lambda: ping(port), timeout, f"redis-server to answer on 127.0.0.1:{port}", interval=0.1)
