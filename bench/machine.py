"""Facts about the machine and processes: CPU time from /proc/<pid>/stat, RSS from /proc/self/status."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence

_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a whole process (all threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def proc_status_kb(name: str, pid: int | str = "self") -> int:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine_info() -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ram_gb = f"{proc_meminfo_kb('MemTotal') / 1024 / 1024:.1f} GiB"
    except (OSError, KeyError):
        ram_gb = "?"
    from importlib.metadata import version

    def ver(dist: str) -> str:
        try:
            return version(dist)
        except Exception:
            return "not installed"

    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram_gb,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "apache-airflow": ver("apache-airflow"),
        "apache-airflow-providers-http": ver("apache-airflow-providers-http"),
        "requests / httpx / aiohttp": f"{ver('requests')} / {ver('httpx')} / {ver('aiohttp')}",
        "uvicorn / fastapi": f"{ver('uvicorn')} / {ver('fastapi')}",
        "git commit": _git_commit(),
    }


def proc_meminfo_kb(name: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"
