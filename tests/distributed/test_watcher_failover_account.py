"""Account watcher failover on the distributed topology: the triggerer running the account-wide
``doto_escalation_watcher`` SIGKILLed mid-stream.

The example DAG is linked into the running stack; its one ``AssetWatcher`` trigger watches the
conversations of one inbox (``DOTO_ESCALATION_INBOX_ID``, set by conftest) with one list per idle
poll. 20 matching customer messages arrive, one every ~1.5 s, each in a random one of eight
conversations. Right after a poll found one (its batch saved as ``pending`` in the asset state
store, its event perhaps not stored yet), the triggerer holding the watcher is SIGKILLed; the
survivor takes it over from the stored cursor. Every message must be in an asset event (none lost;
an id in two events must have been pending at the kill, the second flagged ``redelivered``), every
event must be consumed by a run that succeeded, and each message must have exactly one note and one
acknowledgement in its own conversation (the DAG's delivery keys), none anywhere else.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import EXAMPLE_DAGS, wait_until

from .conftest import ESCALATION_INBOX_ID, figure
from .test_watcher_failover import LaterMessage, asset_events, holders, restart_dead_triggerers, watch_state

pytestmark = pytest.mark.distributed

DAG_ID = "doto_escalation_watcher"
ASSET = "doto_account_escalations"
CONVERSATIONS = 8
MESSAGES = 20
KILL_AT = MESSAGES // 2
GAP_SECONDS = 1.5
ACKNOWLEDGEMENT_START = "Thanks for letting us know."


def pairs(event: dict[str, Any]) -> list[tuple[int, int]]:
    return [(m["conversation_id"], m["id"]) for m in event["extra"]["payload"]["messages"]]


def pending_pairs(state: dict[str, Any] | None) -> set[tuple[int, int]]:
    return {(m["conversation_id"], m["id"]) for batch in (state or {}).get("pending", []) for m in batch}


def account_asset(stack: AirflowStack) -> dict[str, Any] | None:
    found = stack.api("GET", f"/assets?name_pattern={ASSET}")
    return next((a for a in found["assets"] if a["watchers"]), None)


def test_account_watcher_survives_a_killed_triggerer(distributed_stack: AirflowStack) -> None:
    stack = distributed_stack
    emulator = stack.emulator
    assert emulator is not None
    restart_dead_triggerers(stack)
    if ESCALATION_INBOX_ID not in [i.inbox_id for i in emulator.inboxes()]:
        emulator.add_inbox("api", "Escalations", inbox_id=ESCALATION_INBOX_ID)
    cids = [emulator.add_conversation(inbox_id=ESCALATION_INBOX_ID) for _ in range(CONVERSATIONS)]
    link = stack.dags_folder / f"{DAG_ID}.py"
    if not link.exists():
        link.symlink_to(Path(EXAMPLE_DAGS) / f"{DAG_ID}.py")
    try:
        run_scenario(stack, cids)
    finally:
        with contextlib.suppress(Exception):
            stack.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": True})


def run_scenario(stack: AirflowStack, cids: list[int]) -> None:
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(DAG_ID, timeout=180)
    found = wait_until(lambda: account_asset(stack), 120, "the account asset with its watcher", interval=1)
    asset_id, trigger_id = int(found["id"]), int(found["watchers"][0]["trigger_id"])

    def started() -> list[str] | None:
        stack.check_alive()
        held = holders(stack, trigger_id)
        state = watch_state(stack, asset_id)
        ready = (
            state is not None and state.get("account") and state.get("listed_at") and not state.get("pending")
        )
        return held if len(held) == 1 and ready else None

    held = wait_until(
        started, 180, "the account watcher to run in a triggerer and store its cursor", interval=1
    )
    figure(f"account watcher failover: trigger {trigger_id} runs in {held}, polling every second")

    rng = random.Random(11)
    t0 = time.time()
    sent: list[tuple[int, int]] = []
    pending_at_kill: set[tuple[int, int]] = set()
    for i in range(MESSAGES):
        cid = rng.choice(cids)
        sent.append((cid, emulator.add_message(cid, f"refund please, message {i + 1} of {MESSAGES}")["id"]))
        if i == KILL_AT:

            def found_pending() -> bool:
                stack.check_alive()
                return sent[-1] in pending_pairs(watch_state(stack, asset_id))

            wait_until(found_pending, 60, "the watcher to save the new message as pending", interval=0.05)
            [victim] = holders(stack, trigger_id)
            stack.kill_component(victim, signal.SIGKILL)
            pending_at_kill = pending_pairs(watch_state(stack, asset_id))
            figure(
                f"account watcher failover: SIGKILLed {victim} after message {i + 1} of {MESSAGES}; "
                f"{len(pending_at_kill)} message(s) pending in the stored cursor"
            )
        time.sleep(GAP_SECONDS)

    waiting_for = ["nothing yet"]

    def one_more() -> tuple[int, int]:
        cid = rng.choice(cids)
        return cid, emulator.add_message(cid, "refund please, one more message")["id"]

    later = LaterMessage(one_more, sent)

    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        stack.check_alive()
        events = asset_events(stack, asset_id)
        state = watch_state(stack, asset_id)
        runs = stack.dag_runs(DAG_ID)
        unfinished = Counter(r["state"] for r in runs if r["state"] not in ("success", "failed"))
        if events is None:
            waiting_for[0] = "the asset events (answered 500)"
        elif not {p for e in events for p in pairs(e)} >= set(sent):
            waiting_for[0] = (
                f"{len(set(sent) - {p for e in events for p in pairs(e)})} message(s) in no event yet"
            )
        elif state is None or state.get("pending"):
            waiting_for[0] = f"the stored cursor to settle: pending {sorted(pending_pairs(state))}"
        elif without_run := [e["id"] for e in events if not e["created_dagruns"]]:
            waiting_for[0] = f"runs for asset events {without_run}"
            later(without_run)
        elif unfinished:
            waiting_for[0] = f"runs to finish: {dict(unfinished)}"
        else:
            return events, runs
        return None

    try:
        events, runs = wait_until(settled, 360, "every message announced and every run finished", interval=2)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: still waiting for {waiting_for[0]}") from exc
    seen = Counter(p for e in events for p in set(pairs(e)))
    duplicates = sorted(p for p, n in seen.items() if n > 1)
    redelivered = [e for e in events if e["extra"]["payload"].get("redelivered")]
    outcome = Counter(r["state"] for r in runs)
    figure(
        f"account watcher failover: {len(events)} asset events ({len(redelivered)} redelivered), "
        f"duplicates {duplicates} (pending at the kill: {sorted(pending_at_kill)}); {len(runs)} DAG runs "
        f"{dict(outcome)}; {len(later.nudges)} later message(s) sent for events left without a run; "
        f"{time.time() - t0:.1f} s after the first message"
    )
    assert [p for p in sent if p not in seen] == [], "messages lost"
    assert set(duplicates) <= pending_at_kill, (duplicates, sorted(pending_at_kill))
    assert all(set(pairs(e)) <= pending_at_kill for e in redelivered), redelivered
    assert outcome == {"success": len(runs)}, outcome

    # One note and one acknowledgement per message, in its own conversation only.
    for cid in cids:
        outgoing = [m for m in emulator.messages(cid) if m["message_type"] == "outgoing"]
        mine = [mid for c, mid in sent if c == cid]
        notes = Counter(
            mid
            for m in outgoing
            if m["private"]
            for mid in mine
            if f"(message {mid}," in (m["content"] or "")
        )
        acks = [
            m for m in outgoing if not m["private"] and (m["content"] or "").startswith(ACKNOWLEDGEMENT_START)
        ]
        assert notes == Counter(mine), (cid, notes, mine)
        assert len(acks) == len(mine), (cid, len(acks), mine)
