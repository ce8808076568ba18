"""Account-watch soak: ONE watcher on the whole account, restarted from its stored state, loses and
repeats nothing while a writer fills random conversations.

The watcher is ``NewMessageTrigger()`` (no conversation) set up as the triggerer sets up an
``AssetWatcher``'s trigger (``trigger_id``, no task instance, an in-memory asset state store that
keeps only JSON). Every 0.5 to 3 s the consumer "kills the triggerer": it cancels the trigger
wherever it is (mid-poll, mid-sleep) and builds a new one from the old one's ``serialize()``
kwargs and the same store, as ``tests/triggers/test_doto_watcher_handover.py`` does.

The writer, on the emulator's real-time clock (the account watch counts ``updated_within`` from
the wall clock), writes messages into random conversations of a ``build_account`` account in
bursts of 1 to 30 (so many share a second and a conversation): one in ten outgoing (the default
filter must not report it); some committed late (``late=1..3``: they show up once that many more
messages landed in their conversation, or are revealed by the writer within 2 s, well inside the
watch's overlap); some created hidden, deleted through the API, then revealed (deleted before
their commit: never to be reported); some deleted through the API after their commit (reported at
most once, either way); and conversation changes without a message (labels, status, priority:
``update_conversation``). Soft deletes on both server flavors (``soft_delete = True``).

Every incoming message not deleted must be reported exactly once, outside flagged redeliveries;
a redelivery may only repeat a message already reported. Fast suite: 40 conversations, 400
messages; ``--soak``: 1,000 conversations, 50,000 messages (``DOTO_ACCOUNT_SOAK=conversations,messages``
overrides both, e.g. for a shorter soak).

Found by this soak and fixed: a message committed in the same emulator second as the listing that
last read its conversation was lost (the emulator's ``updated_at`` has whole seconds, and the watch
read a conversation again only when ``updated_at`` grew); the watch now also compares the last
message's id, the unread count and ``last_activity_at`` (``api._account_watch.Version``).
``test_a_message_committed_in_the_second_of_the_last_read_is_reported`` pins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .reliability_support import FIGURES, POLICY, bounded

FAST = (40, 400)
SOAK = (1_000, 50_000)
POLL = 0.2
# Only a run that loses messages waits this long: once the writer is done, no new id for this long
# means lost (polls are 0.2 s apart; longer in the soak, whose listings are larger).
GIVE_UP_SECONDS = {False: 10.0, True: 30.0}
LABELS = ("billing", "vip", "refund", "bug")


def scale(soak: bool) -> tuple[int, int]:
    override = os.environ.get("DOTO_ACCOUNT_SOAK")
    if override:
        conversations, messages = (int(x) for x in override.split(","))
        return conversations, messages
    return SOAK if soak else FAST


@dataclass
class Written:
    expected: set[int] = field(default_factory=set)  # incoming, never deleted: each reported once
    deleted_after: set[int] = field(default_factory=set)  # incoming, deleted after commit: at most once
    never: set[int] = field(default_factory=set)  # outgoing, or deleted before commit: never
    messages: int = 0
    late: int = 0
    updates: int = 0
    deletes_before: int = 0
    deletes_after: int = 0
    done: threading.Event = field(default_factory=threading.Event)


def write(out: Written, emu: DotoEmulator, cids: list[int], count: int, seed: int) -> None:
    rng = random.Random(seed)
    hook = DotoHook(retry_policy=POLICY, timeout=5.0)
    waiting: list[tuple[float, int]] = []  # (reveal by then, id) of late commits
    recent: list[tuple[int, int]] = []  # (conversation, id) of incoming messages written lately
    while out.messages < count:
        for _ in range(min(rng.randint(1, 30), count - out.messages)):
            cid = rng.choice(cids)
            incoming = rng.random() >= 0.1
            late = rng.randint(1, 3) if rng.random() < 0.05 else 0
            doomed = incoming and not late and rng.random() < 0.01
            message = emu.add_message(
                cid,
                f"m{out.messages}",
                message_type="incoming" if incoming else "outgoing",
                late=late,
                visible=not doomed,
            )
            mid = message["id"]
            out.messages += 1
            if doomed:  # deleted before its commit: shows up deleted, never as new
                hook.delete_message(cid, mid)
                emu.reveal(mid)
                out.never.add(mid)
                out.deletes_before += 1
            elif incoming:
                out.expected.add(mid)
                recent.append((cid, mid))
            else:
                out.never.add(mid)
            if late:
                waiting.append((time.monotonic() + rng.uniform(0.0, 2.0), mid))
                out.late += 1
        now = time.monotonic()
        for due, mid in [w for w in waiting if w[0] <= now]:
            emu.reveal(mid)  # a no-op if enough messages landed in its conversation meanwhile
            waiting.remove((due, mid))
        if recent and rng.random() < 0.1:  # a soft delete after the commit
            cid, mid = recent.pop(rng.randrange(len(recent)))
            hook.delete_message(cid, mid)
            out.expected.discard(mid)
            out.deleted_after.add(mid)
            out.deletes_after += 1
        recent = recent[-500:]
        if rng.random() < 0.3:  # a change without a message
            cid = rng.choice(cids)
            change = rng.choice(["labels", "status", "priority"])
            if change == "labels":
                emu.update_conversation(cid, labels=rng.sample(LABELS, rng.randint(0, 2)))
            elif change == "status":
                emu.update_conversation(cid, status=rng.choice(["open", "pending", "resolved"]))
            else:
                emu.update_conversation(cid, priority=rng.choice([None, "low", "high", "urgent"]))
            out.updates += 1
        time.sleep(rng.uniform(0.0, 0.03))
    for _, mid in waiting:
        emu.reveal(mid)
    out.done.set()


@dataclass
class Consumed:
    seen: Counter[int] = field(default_factory=Counter)
    redelivered: Counter[int] = field(default_factory=Counter)
    redelivered_unseen: set[int] = field(default_factory=set)
    events: int = 0
    restarts: int = 0

    def record(self, payload: dict[str, Any]) -> None:
        assert payload["status"] == "success", payload
        self.events += 1
        ids = [m["id"] for m in payload["messages"]]
        if payload.get("redelivered"):
            self.redelivered.update(ids)
            self.redelivered_unseen.update(i for i in ids if i not in self.seen)
        else:
            self.seen.update(ids)


class MemoryStateStore:
    """The asset state store a triggerer gives a watcher, kept in memory (JSON only)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str) -> Any:
        return self.data.get(key)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


def rebuilt(serialized: tuple[str, dict[str, Any]] | None, store: Any) -> NewMessageTrigger:
    """A first watcher, or the next one as the triggerer makes it from the last one's ``serialize()``
    (import the classpath, call it with the kwargs through JSON), with the same store."""
    if serialized is None:
        trigger = NewMessageTrigger(poll_interval=POLL, max_failures=1_000_000)
    else:
        classpath, kwargs = serialized
        module, _, name = classpath.rpartition(".")
        trigger = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    trigger.trigger_id = 1
    trigger.task_instance = None
    trigger.asset_state_store = store
    trigger.event_settle_seconds = 1.0  # the triggerer takes an event within about a second here
    return trigger


def lists(emu: DotoEmulator) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations"))


async def consume(
    emu: DotoEmulator, written: Written, started: threading.Event, seed: int, give_up: float
) -> Consumed:
    got = Consumed()
    store = MemoryStateStore()
    rng = random.Random(seed)
    serialized: tuple[str, dict[str, Any]] | None = None
    progress = (0, time.monotonic())
    final = False
    while True:
        trigger = rebuilt(serialized, store)
        got.restarts += 1
        events: Any = trigger.run()
        upcoming: asyncio.Future[TriggerEvent] | None = None
        life = time.monotonic() + rng.uniform(0.5, 3.0)
        if final:
            emu.clear_requests()  # (the log is bounded: count from an empty one)
        try:
            while True:
                if not started.is_set() and store.data:
                    started.set()  # the first poll is stored: its start is before every message
                upcoming = upcoming or asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({upcoming}, timeout=0.05)
                if done:
                    got.record(upcoming.result().payload)
                    upcoming = None
                if len(got.seen) > progress[0]:
                    progress = (len(got.seen), time.monotonic())
                if final:
                    if lists(emu) >= 4:
                        break  # three whole polls after everything was reported: nothing more came
                elif time.monotonic() >= life and written.done.is_set() is False:
                    break  # a kill mid-run
                elif written.done.is_set():
                    pending = any(s.get("pending") for s in store.data.values())
                    if written.expected <= set(got.seen) and not pending:
                        break
                    if time.monotonic() - progress[1] > give_up:
                        return got  # lost for good: the asserts name what is missing
                    if time.monotonic() >= life:
                        break
        finally:
            if upcoming is not None:
                if upcoming.done():
                    with contextlib.suppress(Exception):
                        got.record(upcoming.result().payload)
                else:
                    upcoming.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await upcoming
            await events.aclose()
        serialized = trigger.serialize()
        if final:
            return got
        if written.done.is_set():
            pending = any(s.get("pending") for s in store.data.values())
            final = written.expected <= set(got.seen) and not pending


@pytest.mark.soak
def test_account_watch_reports_every_message_once_across_restarts(
    emu: DotoEmulator, soak: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversations, count = scale(soak)
    # Pacing off: this kills the watcher every 0.5 to 3 s, and paced at 2,700 requests a minute a
    # poll that reads 1,000 changed conversations takes 22 s, so none would ever finish (pacing has
    # its own tests, tests/hooks/test_pacing.py).
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(max_requests_per_minute=0))
    emu.soft_delete = True
    cids = emu.build_account(conversations, seed=5)
    written = Written()
    started = threading.Event()

    def writer() -> None:
        started.wait(60)
        write(written, emu, cids, count, seed=count + conversations)

    thread = threading.Thread(target=writer, name="doto-account-writer", daemon=True)
    thread.start()
    t0 = time.monotonic()
    got, error, _ = bounded(
        lambda: asyncio.run(consume(emu, written, started, seed=count, give_up=GIVE_UP_SECONDS[soak])),
        120.0 if not soak else 7200.0,
        "account watcher",
    )
    seconds = time.monotonic() - t0
    thread.join(10)
    assert error is None, f"consumer failed: {error!r}"
    assert got is not None
    lost = written.expected - set(got.seen)
    repeated = sum(n - 1 for n in got.seen.values() if n > 1)
    unexpected = set(got.seen) & written.never
    deleted_twice = sum(1 for m in written.deleted_after if got.seen[m] > 1)
    figures = {
        "conversations": conversations,
        "messages": written.messages,
        "incoming": len(written.expected) + len(written.deleted_after),
        "late": written.late,
        "updates": written.updates,
        "deletes_before_commit": written.deletes_before,
        "deletes_after_commit": written.deletes_after,
        "deleted_after_reported": sum(1 for m in written.deleted_after if got.seen[m]),
        "events": got.events,
        "restarts": got.restarts,
        "redelivered": sum(got.redelivered.values()),
        "lost": len(lost),
        "repeated": repeated + deleted_twice,
        "unexpected": len(unexpected),
        "redelivered_unseen": len(got.redelivered_unseen),
        "seconds": round(seconds, 1),
    }
    FIGURES.add("account_soak", emu.flavor, **figures)
    out = os.environ.get("DOTO_ACCOUNT_SOAK_OUT")
    if out:  # the figures as JSON lines, for RELIABILITY.md
        with open(out, "a") as f:
            f.write(json.dumps({"flavor": emu.flavor, **figures}) + "\n")
    assert not got.redelivered_unseen, (
        f"first reported in a redelivery: {sorted(got.redelivered_unseen)[:10]}"
    )
    assert repeated == 0 and deleted_twice == 0, f"{repeated + deleted_twice} repeated report(s)"
    assert not unexpected, f"reported messages that must not be: {sorted(unexpected)[:10]}"
    assert not lost, f"{len(lost)} message(s) never reported, e.g. {sorted(lost)[:10]}"


def test_a_message_committed_in_the_second_of_the_last_read_is_reported(emu: DotoEmulator) -> None:
    """The soak's losses, made deterministic: the emulator's clock frozen, one message read by a
    poll, a second one committed in the same second, then polls with the clock running again."""
    from airflow_provider_doto.api._account_watch import AccountWatch

    hook = DotoHook(retry_policy=POLICY, timeout=5.0)
    t = emu.clock.freeze(int(time.time()))
    cid = emu.add_conversation(created_at=t - 100)
    watch = AccountWatch(start=t - 5)
    assert hook.poll_account(watch) is None
    emu.clock.advance(1)
    first = emu.add_message(cid, "first")["id"]
    assert [m.id for m in hook.poll_account(watch) or []] == [first]
    second = emu.add_message(cid, "second")["id"]  # the same emulator second as the read of ``first``
    emu.clock.unfreeze()
    found = [m.id for _ in range(3) for m in hook.poll_account(watch) or []]
    assert found == [second]
