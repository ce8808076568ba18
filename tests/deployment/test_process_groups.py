"""How the stack stops what it started: whole process groups, children included (no Airflow needed)."""

from __future__ import annotations

import subprocess

from airflow_provider_doto.testing.stack.local_airflow import wait_until
from airflow_provider_doto.testing.stack.processes import group_members, stop_groups


def spawn(script: str) -> subprocess.Popen[bytes]:
    """A shell in its own process group (like a stack component) that starts two children."""
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    wait_until(lambda: len(group_members(proc.pid)) >= 3, 10, "the shell and its two children")
    return proc


def test_stop_groups_terminates_children_too() -> None:
    proc = spawn("sleep 60 & sleep 60 & wait")
    took = stop_groups([proc], timeout=10)
    assert took[proc.pid] is not None  # exited on SIGTERM
    assert group_members(proc.pid) == []
    assert proc.returncode is not None


def test_stop_groups_kills_what_ignores_sigterm() -> None:
    proc = spawn("trap '' TERM; sleep 60 & sleep 60 & wait")  # ignored SIGTERM is inherited
    took = stop_groups([proc], timeout=1)
    assert took[proc.pid] is None  # needed SIGKILL
    assert group_members(proc.pid) == []
