"""Watcher failover on the distributed topology: the asset watcher's triggerer SIGKILLed mid-stream.

The example DAG ``doto_new_message_watcher`` is linked into the running stack; its
``AssetWatcher`` trigger polls the seeded conversation every second in one of the two triggerers.
30 customer messages arrive one every ~2 s. Halfway, right after a poll found a message (its batch
saved as ``pending`` in the asset state store, its event perhaps not stored yet), the triggerer
holding the watcher is SIGKILLed. The survivor takes the watcher over once the dead one's
heartbeat is older than ``[triggerer] triggerer_health_check_threshold``, announces the pending
batches again (``"redelivered": true``) and resumes from the stored cursor: every message id must
be in an asset event, none lost; an id in two events must be one that was pending at the kill.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import EXAMPLE_DAGS, wait_until
from airflow_provider_doto.testing.stack.processes import StackError

from .conftest import HEALTH_CHECK_THRESHOLD, figure

pytestmark = pytest.mark.distributed

DAG_ID = "doto_new_message_watcher"
MESSAGES = 30
KILL_AT = MESSAGES // 2  # the index of the message whose pending batch triggers the kill
GAP_SECONDS = 2.0
NOTE_ID = re.compile(r"^- #(\d+):", re.MULTILINE)
STRANDED_SECONDS = 15.0  # an event this long without a run waits for a later event
SentT = TypeVar("SentT")


def asset(stack: AirflowStack) -> dict[str, Any] | None:
    """The watched conversation's asset, once the dag-processor has registered its watcher."""
    found = stack.api("GET", f"/assets?name_pattern=doto_conversation_{stack.conversation_id}_incoming")
    return next((a for a in found["assets"] if a["watchers"]), None)


def watch_state(stack: AirflowStack, asset_id: int) -> dict[str, Any] | None:
    """The watcher's cursor as the triggerer saved it in the asset state store."""
    entries = stack.api("GET", f"/assets/{asset_id}/state-store")["asset_state_store"]
    return next((e["value"] for e in entries if e["key"].startswith("doto_watch:")), None)


def pending_ids(state: dict[str, Any] | None) -> set[int]:
    return {m["id"] for batch in (state or {}).get("pending", []) for m in batch}


def holders(stack: AirflowStack, trigger_id: int) -> list[str]:
    """The live triggerers running the trigger: started it (component log, since their own last
    start) and did not cancel it since (Airflow may move a trigger whose triggerer looked stale)."""
    started = re.compile(rf"trigger ID {trigger_id} starting")
    ended = re.compile(rf"^.*(cancelled|completed|exited).*name='ID {trigger_id}'.*$", re.MULTILINE)
    running = []
    for name in stack.triggerer_names():
        component = stack.components[name]
        if not component.alive():
            continue
        text = component.log_path.read_text(errors="replace").rsplit("=== starting", 1)[-1]
        last_start = max((m.start() for m in started.finditer(text)), default=-1)
        last_end = max((m.start() for m in ended.finditer(text)), default=-1)
        if last_start > last_end:
            running.append(name)
    return running


def asset_events(stack: AirflowStack, asset_id: int) -> list[dict[str, Any]] | None:
    """Every asset event of the asset, oldest first; ``None`` on a 500 (3.3.2 answers that while
    an asset-triggered run is queued: the caller retries)."""
    found: list[dict[str, Any]] = []
    while True:
        path = f"/assets/events?asset_id={asset_id}&order_by=timestamp&limit=100&offset={len(found)}"
        try:
            page = stack.api("GET", path)["asset_events"]
        except StackError as exc:
            if "-> 500" in str(exc):
                return None
            raise
        found.extend(page)
        if len(page) < 100:
            return found


def event_ids(event: dict[str, Any]) -> list[int]:
    return [m["id"] for m in event["extra"]["payload"]["messages"]]


class LaterMessage(Generic[SentT]):
    """Sends one more message when an asset event has been left without a run for a while.

    An asset event stored while the scheduler creates a run for an earlier one can be left without
    a run until a later event comes (apache/airflow#56050). Call it with the events still without
    a run; after ``STRANDED_SECONDS`` of that it sends one more message (at most three times) and
    appends it to ``sent``, so the test also checks that message's event and run.
    """

    def __init__(self, send: Callable[[], SentT], sent: list[SentT]) -> None:
        self.send, self.sent = send, sent
        self.nudges: list[SentT] = []
        self.stranded_since: float | None = None

    def __call__(self, without_run: list[int]) -> None:
        if not without_run:
            self.stranded_since = None
        elif self.stranded_since is None:
            self.stranded_since = time.monotonic()
        elif time.monotonic() - self.stranded_since > STRANDED_SECONDS and len(self.nudges) < 3:
            self.nudges.append(self.send())
            self.sent.append(self.nudges[-1])
            self.stranded_since = None


def restart_dead_triggerers(stack: AirflowStack) -> None:
    """An earlier test may have killed one: this one needs both."""
    for name in stack.triggerer_names():
        if not stack.components[name].alive():
            stack.start_component(name)
    wait_until(
        lambda: len(stack.alive_jobs("TriggererJob")) >= stack.triggerers,
        120,
        f"{stack.triggerers} triggerers to heartbeat",
        interval=0.5,
    )


def test_watcher_survives_a_killed_triggerer(distributed_stack: AirflowStack) -> None:
    stack = distributed_stack
    emulator = stack.emulator
    assert emulator is not None
    cid = stack.conversation_id
    restart_dead_triggerers(stack)
    link = stack.dags_folder / f"{DAG_ID}.py"
    if not link.exists():
        link.symlink_to(Path(EXAMPLE_DAGS) / f"{DAG_ID}.py")
    try:
        run_scenario(stack, cid)
    finally:
        # Leave no watcher running for the tests after this one (a paused DAG's asset has no trigger).
        with contextlib.suppress(Exception):
            stack.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": True})


def run_scenario(stack: AirflowStack, cid: int) -> None:
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(DAG_ID, timeout=180)
    found = wait_until(lambda: asset(stack), 120, "the watched asset with its watcher", interval=1)
    asset_id, trigger_id = int(found["id"]), int(found["watchers"][0]["trigger_id"])

    # 1. The watcher runs in one triggerer and has stored its first cursor (it starts from "now").
    def started() -> list[str] | None:
        stack.check_alive()
        held = holders(stack, trigger_id)
        state = watch_state(stack, asset_id)
        return held if len(held) == 1 and state is not None and not state.get("pending") else None

    held = wait_until(started, 180, "the watcher to run in a triggerer and store its cursor", interval=1)
    figure(f"watcher failover: trigger {trigger_id} runs in {held}, polling every second")

    path = emulator.messages_url(cid).split(emulator.base_url, 1)[1]
    t0 = time.time()
    sent: list[int] = []
    pending_at_kill: set[int] = set()
    killed_at = dead_at = 0.0
    victim = survivor = ""
    for i in range(MESSAGES):
        sent.append(emulator.add_message(cid, f"failover message {i + 1} of {MESSAGES}", "incoming")["id"])
        if i == KILL_AT:
            # 2. SIGKILL right after the poll that found this message saved it as pending.
            def found_pending() -> bool:
                stack.check_alive()
                return sent[-1] in pending_ids(watch_state(stack, asset_id))

            wait_until(found_pending, 60, "the watcher to save the new message as pending", interval=0.05)
            held = holders(stack, trigger_id)
            assert len(held) == 1, f"the watcher trigger runs in {held}"
            victim = held[0]
            survivor = next(n for n in stack.triggerer_names() if n != victim)
            killed_at = time.time()
            stack.kill_component(victim, signal.SIGKILL)
            dead_at = time.time()
            # Frozen until the survivor takes over (not before the health-check threshold).
            pending_at_kill = pending_ids(watch_state(stack, asset_id))
            figure(
                f"watcher failover: SIGKILLed {victim} {killed_at - t0:.1f} s after the first message, "
                f"after message {i + 1} of {MESSAGES}; {len(pending_at_kill)} message(s) pending in the "
                "stored cursor"
            )
        time.sleep(GAP_SECONDS)

    # 3. Every message in at least one asset event; the survivor holds the watcher.
    def all_announced() -> list[dict[str, Any]] | None:
        stack.check_alive()
        events = asset_events(stack, asset_id)
        if events is None:
            return None
        seen = {i for e in events for i in event_ids(e)}
        return events if seen >= set(sent) else None

    try:
        wait_until(all_announced, 300, f"all {MESSAGES} messages in asset events", interval=2)
    finally:
        events = asset_events(stack, asset_id) or []
        seen = Counter(i for e in events for i in set(event_ids(e)))
        lost = [i for i in sent if i not in seen]
        figure(f"watcher failover: {len(events)} asset events; lost ids {lost}")
    assert holders(stack, trigger_id) == [survivor]
    first_poll = next(
        (
            r.at
            for r in emulator.requests
            if r.method == "GET" and r.path.split("?")[0] == path and r.at > dead_at
        ),
        None,
    )
    assert first_poll is not None, "the survivor never polled the watched conversation"
    figure(
        f"watcher failover: kill -> survivor's first poll of the conversation {first_poll - killed_at:.1f} s "
        f"(health-check threshold {HEALTH_CHECK_THRESHOLD} s)"
    )

    # 4. The runs consumed every event and finished; the cursor has no batch pending any more.
    waiting_for = ["nothing yet"]
    later = LaterMessage(
        lambda: emulator.add_message(cid, "failover message, one more", "incoming")["id"], sent
    )

    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        stack.check_alive()
        events = asset_events(stack, asset_id)
        state = watch_state(stack, asset_id)
        runs = stack.dag_runs(DAG_ID)
        unfinished = Counter(r["state"] for r in runs if r["state"] not in ("success", "failed"))
        if events is None:
            waiting_for[0] = f"the asset events (answered 500); runs not finished: {dict(unfinished)}"
        elif missing := set(sent) - {i for e in events for i in event_ids(e)}:
            waiting_for[0] = f"message(s) {sorted(missing)} in an asset event"
        elif state is None or state.get("pending"):
            waiting_for[0] = f"the stored cursor to settle: pending {sorted(pending_ids(state))}"
        elif without_run := [e["id"] for e in events if not e["created_dagruns"]]:
            waiting_for[0] = f"runs for asset events {without_run}; runs not finished: {dict(unfinished)}"
            later(without_run)
        elif unfinished:
            waiting_for[0] = f"runs to finish: {dict(unfinished)}"
        else:
            return events, runs
        return None

    try:
        events, runs = wait_until(settled, 300, "every asset event's run to finish", interval=2)
    except TimeoutError as exc:
        saves_failed = sum(
            stack.components[n].log_path.read_text(errors="replace").count("Could not save the watch cursor")
            for n in stack.triggerer_names()
        )
        raise TimeoutError(
            f"{exc}: still waiting for {waiting_for[0]} (failed cursor saves: {saves_failed})"
        ) from exc
    seen = Counter(i for e in events for i in set(event_ids(e)))
    duplicates = sorted(i for i, n in seen.items() if n > 1 and i in sent)
    redelivered = [e for e in events if e["extra"]["payload"].get("redelivered")]
    outcome = Counter(r["state"] for r in runs)
    figure(
        f"watcher failover: {len(events)} asset events ({len(redelivered)} redelivered), "
        f"duplicate ids {duplicates} (pending at the kill: {sorted(pending_at_kill)}); "
        f"{len(runs)} DAG runs {dict(outcome)}; {len(later.nudges)} later message(s) sent for events "
        f"left without a run; {time.time() - t0:.1f} s after the first message"
    )
    assert [i for i in sent if i not in seen] == [], "messages lost"
    assert set(duplicates) <= pending_at_kill, (duplicates, sorted(pending_at_kill))
    assert all(set(event_ids(e)) <= pending_at_kill for e in redelivered), redelivered
    assert outcome == {"success": len(runs)}, outcome

    # 5. The runs' notes: every message in one at least, no note naming a message twice.
    notes = [
        m["content"]
        for m in emulator.messages(cid)
        if m["private"] and "new message(s) from the customer" in (m["content"] or "")
    ]
    listed = [[int(x) for x in NOTE_ID.findall(note)] for note in notes]
    assert all(len(ids) == len(set(ids)) for ids in listed), listed
    noted = Counter(i for ids in listed for i in ids)
    assert [i for i in sent if i not in noted] == [], listed
    figure(
        f"watcher failover: {len(notes)} summary notes; ids in two notes "
        f"{sorted(i for i, n in noted.items() if n > 1)}"
    )
