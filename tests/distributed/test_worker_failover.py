"""Worker death during sends: 80 mapped sends (200 with --soak) with retries on two Celery workers, one SIGKILLed.

The emulator holds the first POSTs for a few seconds before committing them, so the killed
worker's tasks die with POSTs in flight that still commit (answers never read). Airflow fails
those tasks once their heartbeat is stale and retries them on the survivor: the delivery key makes
each retry find its first attempt's message, so every conversation holds exactly one message.
Last in this folder: it also checks that the token is in no log of any component or worker.
"""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import wait_until

from .conftest import TOKEN, Scale, figure

pytestmark = pytest.mark.distributed

DAG_ID = "distributed_send_failover"
HOLD_SECONDS = 6.0


def posts(stack: AirflowStack, cids: set[int]) -> int:
    assert stack.emulator is not None
    return sum(
        1
        for r in stack.emulator.requests
        if r.method == "POST" and r.path.endswith("/messages") and int(r.path.split("/")[-2]) in cids
    )


def test_sends_survive_a_killed_worker(distributed_stack: AirflowStack, scale: Scale) -> None:
    stack = distributed_stack
    sends, held = scale.sends, scale.held
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(DAG_ID, timeout=180)
    cids = [emulator.add_conversation() for _ in range(sends)]
    emulator.inject("delay", times=held, method="POST", path_contains="/messages", delay=HOLD_SECONDS)
    t0 = time.monotonic()
    run_id = stack.trigger_dag(DAG_ID, {"cids": cids})

    # Kill while sends are held in flight: both workers are then mid-POST.
    wait_until(lambda: posts(stack, set(cids)) >= 8, 600, "8 sends to be in flight", interval=0.2)
    in_flight = posts(stack, set(cids)) - sum(1 for c in cids if emulator.messages(c))
    stack.kill_component("worker-1", signal.SIGKILL)
    killed_after = time.monotonic() - t0
    figure(
        f"worker failover: SIGKILLed worker-1 {killed_after:.1f} s after the trigger, "
        f"{in_flight} POSTs in flight (held {HOLD_SECONDS:.0f} s before committing)"
    )

    run = stack.wait_for_run(DAG_ID, run_id, timeout=900)
    tis = stack.mapped_task_instances(DAG_ID, run_id, "send")
    assert len(tis) == sends
    states = Counter(t["state"] for t in tis)
    tries = Counter(t["try_number"] for t in tis)
    assert run["state"] == "success", f"run ended {run['state']}: {states}"
    counts = Counter(len([m for m in emulator.messages(c) if m["message_type"] == "outgoing"]) for c in cids)
    figure(
        f"worker failover: run succeeded {time.monotonic() - t0:.1f} s after the trigger; "
        f"task tries {dict(sorted(tries.items()))}; POSTs {posts(stack, set(cids))} for {sends} sends; "
        f"messages per conversation {dict(counts)}"
    )
    assert counts == {1: sends}, counts
    assert max(tries) > 1, "no task was retried: the kill hit no running send"


def test_token_in_no_log(distributed_stack: AirflowStack) -> None:
    leaks = [str(p) for p in distributed_stack.log_files() if TOKEN in p.read_text(errors="replace")]
    figure(f"token scan: {len(distributed_stack.log_files())} log files, {len(leaks)} with the token")
    assert leaks == []
