"""The ``stack`` command as a user runs it: on PostgreSQL, then Ctrl-C stops every process it started.

Runs before the shared stack of the other modules starts (file order), so two deployments never
compete for the CPU. Skipped when no PostgreSQL server binaries are installed.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_doto.testing.stack.postgres import find_postgres_bin
from airflow_provider_doto.testing.stack.processes import StackError, group_members

pytestmark = pytest.mark.deployment

TOKEN = "doto-cli-SECRET-9d2e61"
START_TIMEOUT = 300
STOP_TIMEOUT = 90


def read_until(lines: queue.Queue[str | None], marker: str, output: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no {marker!r} within {timeout} s; output so far:\n{''.join(output)}")
        if line is None:
            pytest.fail(f"the stack command exited before {marker!r}; output:\n{''.join(output)}")
        output.append(line)
        if marker in line:
            return


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stack_command_on_postgres_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    try:
        find_postgres_bin()
    except StackError as exc:
        pytest.skip(str(exc))
    home = tmp_path / "home"
    command = [sys.executable, "-m", "airflow_provider_doto.testing.stack", "--postgres", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--home", str(home), "--token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DOTO_STACK_DB"},
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []
    pids: dict[str, int] = {}
    try:
        read_until(lines, "Press Ctrl-C", output, START_TIMEOUT)
        text = "".join(output)
        pids.update((name, int(pid)) for name, pid in re.findall(r"^\s+([a-z-]+): pid (\d+),", text, re.M))
        assert set(pids) == {"api-server", "scheduler", "dag-processor", "triggerer"}, text
        ui = re.search(r"^Airflow UI:\s+(\S+)", text, re.M)
        pg = re.search(r"^PostgreSQL on 127\.0\.0\.1:(\d+) \(files in (\S+)\)", text, re.M)
        assert ui and pg, text
        pg_port, pg_root = int(pg.group(1)), Path(pg.group(2))

        health = requests.get(ui.group(1) + "api/v2/monitor/health", timeout=30).json()
        assert {part["status"] for part in health.values()} == {"healthy"}, health
        # The connection is in the PostgreSQL metadata DB (not an environment variable).
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=pg_port, user="airflow", dbname="airflow") as db:
            row = db.execute(
                "SELECT conn_type, host FROM connection WHERE conn_id = 'doto_default'"
            ).fetchone()
        assert row is not None and row[0] == "doto" and row[1].startswith("http://127.0.0.1:")

        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
        read_until(lines, "Stopped every process the stack started.", output, 10)
        leftovers = {name: group_members(pid) for name, pid in pids.items()}
        assert not any(leftovers.values()), leftovers
        assert not port_open(pg_port)
        assert not pg_root.exists()
        assert (home / "logs" / "stack" / "scheduler.log").exists()  # --home is kept
    finally:
        if proc.poll() is None:  # the test failed before Ctrl-C: the command still cleans up
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in pids.values():  # last resort, should the command itself have failed to
            if group_members(pid):
                os.killpg(pid, signal.SIGKILL)
