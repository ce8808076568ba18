"""Triggerer failover on the distributed topology: 40 deferred sensors (100 with --soak) on two
triggerers, one SIGKILLed.

Each map index of ``distributed_sensor_failover`` waits (deferred) for a message in its own
conversation. Both triggerers hold half of the triggers, by arrangement (Airflow alone spreads them
unevenly, sometimes all on one): ``triggerer-1`` may hold only half (its ``[triggerer] capacity``)
and ``triggerer-2`` is started only once ``triggerer-1`` is full. ``triggerer-1`` is SIGKILLed
while they wait, then one customer message lands in every conversation. The survivor takes over the dead one's triggers once
its heartbeat is older than ``[triggerer] triggerer_health_check_threshold``, resuming each from
its serialized cursor: every sensor must return exactly its own message, none lost, none twice.
"""

from __future__ import annotations

import re
import signal
import statistics
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import wait_until
from airflow_provider_doto.testing.stack.processes import group_usage

from .conftest import HEALTH_CHECK_THRESHOLD, Scale, figure

pytestmark = pytest.mark.distributed

DAG_ID = "distributed_sensor_failover"
POLL = re.compile(r"/conversations/(\d+)/messages$")


def sensor_tis(stack: AirflowStack, run_id: str) -> list[dict[str, Any]]:
    return stack.mapped_task_instances(DAG_ID, run_id, "wait")


def polls_since(stack: AirflowStack, since: float) -> dict[int, float]:
    """The first message-list GET per conversation that reached the emulator after ``since``."""
    assert stack.emulator is not None
    first: dict[int, float] = {}
    for request in stack.emulator.requests:
        match = POLL.search(request.path)
        if request.method == "GET" and match and request.at > since:
            first.setdefault(int(match.group(1)), request.at)
    return first


def test_sensors_survive_a_killed_triggerer(distributed_stack: AirflowStack, scale: Scale) -> None:
    stack = distributed_stack
    emulator = stack.emulator
    assert emulator is not None
    sensors = scale.sensors
    victim, survivor = stack.triggerer_names()
    stack.wait_for_dag(DAG_ID, timeout=180)
    # The survivor is stopped (it holds nothing yet), so the victim takes triggers up to its capacity.
    stack.kill_component(survivor, signal.SIGTERM)
    cids = [emulator.add_conversation() for _ in range(sensors)]
    t0 = time.monotonic()
    run_id = stack.trigger_dag(DAG_ID, {"cids": cids})

    def deferred(held_by_then: int) -> list[dict[str, Any]] | None:
        stack.check_alive()
        tis = sensor_tis(stack, run_id)
        done = [t for t in tis if t["state"] in ("success", "failed", "upstream_failed")]
        if done:
            pytest.fail(f"sensors ended before any message: {[(t['map_index'], t['state']) for t in done]}")
        waiting = [t for t in tis if t["state"] == "deferred"]
        held = [t for t in waiting if t["triggerer_job"]]
        return tis if len(waiting) == sensors and len(held) == held_by_then else None

    # 1. Every sensor deferred, the victim full, the rest waiting for a triggerer.
    wait_until(lambda: deferred(scale.victim_capacity), 900, f"{sensors} sensors deferred", interval=2)
    # 2. The survivor starts and takes the rest: both hold half, every trigger running.
    stack.start_component(survivor)
    tis = wait_until(lambda: deferred(sensors), 300, f"all {sensors} triggers held", interval=1)
    figure(f"triggerer failover: {sensors} sensors deferred {time.monotonic() - t0:.1f} s after the trigger")
    held_by = Counter(int(t["triggerer_job"]["id"]) for t in tis)
    cid_of = {t["map_index"]: cids[t["map_index"]] for t in tis}
    # (The survivor's first job, stopped above, may still look alive: only the holders count.)
    jobs = {int(j["id"]): j for j in stack.alive_jobs("TriggererJob") if int(j["id"]) in held_by}
    assert len(held_by) == 2 and set(held_by) <= set(jobs), f"triggers per triggerer job: {held_by}"
    assert sorted(held_by.values()) == [scale.victim_capacity, sensors - scale.victim_capacity], held_by
    figure(f"triggers per triggerer job before the kill: {dict(held_by)}")

    # Figures of the triggerer about to die are taken now; the survivor's at the end.
    usage = {name: group_usage(stack.components[name].process.pid) for name in stack.triggerer_names()}  # type: ignore[union-attr]
    # Mid-wait: every trigger has polled since it started (the cursor is in its serialized state).
    wait_until(lambda: len(polls_since(stack, 0)) >= sensors, 60, "every conversation polled once")
    killed_at = time.time()
    stack.kill_component(victim, signal.SIGKILL)
    figure(
        f"SIGKILLed {victim} (pid group {stack.components[victim].pid}) "
        f"{time.monotonic() - t0:.1f} s after the trigger, all {sensors} sensors deferred"
    )
    # 2. One customer message per conversation, at once, while the dead one's triggers are orphaned.
    sent = {cid: emulator.add_message(cid, f"message for {cid}", message_type="incoming") for cid in cids}

    dead_job = wait_until(
        lambda: [j for j in jobs if j not in {int(a["id"]) for a in stack.alive_jobs("TriggererJob")}],
        60,
        "the killed triggerer's job to stop being alive",
        interval=0.5,
    )[0]
    orphaned = {cid_of[t["map_index"]] for t in tis if int(t["triggerer_job"]["id"]) == dead_job}
    figure(f"the killed triggerer (job {dead_job}) held {len(orphaned)} triggers")

    # 3. Every sensor succeeds with exactly its own message.
    run = stack.wait_for_run(DAG_ID, run_id, timeout=900)
    finished = sensor_tis(stack, run_id)
    states = Counter(t["state"] for t in finished)
    assert run["state"] == "success", f"run ended {run['state']}: {states}"
    assert states == {"success": sensors}, states
    for ti in finished:
        cid = cid_of[ti["map_index"]]
        path = (
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/wait/xcomEntries/return_value"
            f"?map_index={ti['map_index']}&deserialize=true"
        )
        value = stack.api("GET", path)["value"]
        assert [m["id"] for m in value] == [sent[cid]["id"]], (cid, value)
    figure(
        f"all {sensors} sensors succeeded with exactly their message, {time.monotonic() - t0:.1f} s after the trigger"
    )

    # 4. How long the dead triggerer's triggers waited for the survivor (never asserted on).
    first = polls_since(stack, killed_at)
    delays = sorted(first[cid] - killed_at for cid in orphaned if cid in first)
    assert len(delays) == len(orphaned), "a moved trigger never polled again"
    figure(
        f"kill -> moved triggers polling on the survivor (health-check threshold {HEALTH_CHECK_THRESHOLD} s): "
        f"first {delays[0]:.1f} s, median {statistics.median(delays):.1f} s, last {delays[-1]:.1f} s "
        f"({len(delays)} triggers)"
    )
    figure(f"after the kill the survivor alone polled {len(first)} of {sensors} conversations")
    usage[survivor] = group_usage(stack.components[survivor].process.pid)  # type: ignore[union-attr]
    for name, used in usage.items():
        when = "at the kill" if name == victim else "at the end"
        figure(
            f"{name} ({when}): peak RSS {used.peak_rss_mib:.0f} MiB, CPU {used.cpu_seconds:.1f} s "
            f"over {used.processes} processes"
        )
