"""Processes the local stack starts: each in its own process group, stopped by that group's id.

The rule: whatever a component forks (gunicorn workers, task supervisors, celery children) shares
its group, so stopping the group stops all of it; nothing is ever found or stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT = 20.0


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


@dataclass
class Component:
    """One long-running process we started, in its own process group, logging to one file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    killed: bool = False  # on purpose (a test's crash): its exit is not a failure of the stack

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a new process group, appending its output to ``log_path``."""
        self.killed = False
        with self.log_path.open("ab") as log:
            log.write(f"\n=== starting {self.name} (start #{self.restarts + 1}) ===\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop it and all its children by pgid
            )
        return self.process


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: fields[0] is the state (3rd field of the file)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # "pid (comm) state ppid pgrp ...": comm may contain spaces, so split after the last ')'.
    return stat[stat.rindex(")") + 2 :].split()


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
            fields = _stat_fields(int(entry.name))
        except (OSError, ValueError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class Usage:
    """What a process group has used so far: peak resident memory and CPU time, summed over members."""

    peak_rss_mib: float
    cpu_seconds: float
    processes: int


def group_usage(pgid: int) -> Usage:
    """Sum of VmHWM (``/proc/<pid>/status``) and user+system time (``/proc/<pid>/stat``) of the group."""
    hwm_kib = 0
    ticks = 0
    members = group_members(pgid)
    for pid in members:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (14th and 15th of the file)
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm_kib += int(line.split()[1])
    return Usage(hwm_kib / 1024, ticks / os.sysconf("SC_CLK_TCK"), len(members))


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
    # SIGKILL is delivered when the kernel next schedules each member: on a loaded machine a child
    # can still show as running for a moment after killpg returns. Return once the groups are gone.
    killed = [proc.pid for proc in procs if took[proc.pid] is None]
    kill_deadline = time.monotonic() + 10
    while any(group_members(pgid) for pgid in killed) and time.monotonic() < kill_deadline:
        time.sleep(0.05)
    return took
