"""A batch send whose task process is SIGKILLed mid-batch in a real deployment, then retried by Airflow.

The emulator answers the first conversations' POSTs at once and holds the others a few seconds
before committing them, so the kill lands with some messages delivered and others in flight (their
answers never read). The task's supervisor reports the dead try, Airflow retries the task, and the
retry finds every delivered message by its key: each conversation ends with exactly one message.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import wait_until

pytestmark = pytest.mark.deployment

DAG_ID = "deployment_batch_send"
TASK_ID = "nudge"
CONVERSATIONS = 16
ANSWERED_AT_ONCE = 4  # the first conversations' POSTs commit and answer at once
HOLD_SECONDS = 3.0  # every other POST is held this long before it commits


def posts(stack: AirflowStack, cids: list[int]) -> list[Any]:
    assert stack.emulator is not None
    wanted = {f"/conversations/{cid}/messages" for cid in cids}
    return [r for r in stack.emulator.requests if r.method == "POST" and r.path.endswith(tuple(wanted))]


def delivered(stack: AirflowStack, cids: list[int]) -> int:
    assert stack.emulator is not None
    return sum(1 for cid in cids if stack.emulator.messages(cid))


def stack_ancestor(pid: int, component_pids: set[int | None]) -> bool:
    """Whether ``pid`` descends from one of the stack's component processes (/proc's parent links)."""
    while pid > 1:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        pid = int(fields[1])  # the parent
        if pid in component_pids:
            return True
    return False


def running_task_pid(stack: AirflowStack, run_id: str) -> int | None:
    ti = stack.task_instance(DAG_ID, run_id, TASK_ID)
    if ti["state"] in ("success", "failed"):
        pytest.fail(f"{TASK_ID} ended {ti['state']} before the kill")
    return ti["pid"] if ti["state"] == "running" and ti["pid"] else None


def test_batch_task_killed_mid_batch_is_retried_without_duplicates(stack: AirflowStack) -> None:
    emu = stack.emulator
    assert emu is not None
    stack.wait_for_dag(DAG_ID)
    cids = [emu.add_conversation() for _ in range(CONVERSATIONS)]
    for cid in cids[ANSWERED_AT_ONCE:]:
        emu.inject("delay", method="POST", path_contains=f"/conversations/{cid}/messages", delay=HOLD_SECONDS)
    run_id = stack.trigger_dag(DAG_ID, {"cids": cids})

    # Kill once some messages are delivered and the next POSTs are held in flight.
    wait_until(
        lambda: delivered(stack, cids) >= ANSWERED_AT_ONCE and len(posts(stack, cids)) > ANSWERED_AT_ONCE,
        120,
        "some messages delivered and more POSTs in flight",
        interval=0.05,
    )
    pid = wait_until(lambda: running_task_pid(stack, run_id), 30, "the task's pid", interval=0.1)
    # Only a process of this stack: a descendant of a component the stack started.
    assert stack_ancestor(pid, {c.pid for c in stack.components.values()}), "not a process of the stack"
    at_kill = (delivered(stack, cids), len(posts(stack, cids)))
    os.kill(pid, signal.SIGKILL)
    assert at_kill[0] < CONVERSATIONS, "the kill came after the whole batch was delivered"
    print(f"SIGKILLed the batch task (pid {pid}) with {at_kill[0]} delivered and {at_kill[1]} POSTs made")

    run = stack.wait_for_run(DAG_ID, run_id, timeout=120)

    ti = stack.task_instance(DAG_ID, run_id, TASK_ID)
    assert run["state"] == "success", (run["state"], ti["state"], ti["try_number"])
    assert ti["try_number"] == 2  # the killed try, then Airflow's retry
    counts = [len([m for m in emu.messages(cid) if m["message_type"] == "outgoing"]) for cid in cids]
    assert counts == [1] * CONVERSATIONS, counts
    out = stack.xcom(DAG_ID, run_id, TASK_ID)
    assert out["failed"] == 0 and out["sent"] + out["already_delivered"] == CONVERSATIONS
    assert out["already_delivered"] >= at_kill[0]  # what the killed try delivered was not sent again
    assert len(posts(stack, cids)) == CONVERSATIONS  # every conversation was posted to once
