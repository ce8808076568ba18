"""No loss, no repeats: a writer floods a conversation while a consumer polls it like the sensor/trigger.

The writer thread freezes the emulator's clock and advances it one second per burst, so many
messages share a second (up to 40 per burst, and bursts of 150 when pages are not capped); some
commit late (``late=1..3``: they show up only after newer messages landed) and some stay hidden
and are revealed up to 20 messages later, always within the watch's overlap. One in ten is an
outgoing message the default filter must not report. Now and then a GET fails (503, dropped
connection, malformed body).

Consumers:

* ``sensor``: ``DotoHook.poll`` with a ``MessageWatch`` (min_messages=1), as the sensor's poke does;
  after every empty poll the cursor goes through JSON and back (the reschedule-mode task state).
* ``trigger``: ``NewMessageTrigger.run`` as an asset watcher with an in-memory state store; the
  consumer "restarts the triggerer" (cancels and rebuilds the trigger from the stored cursor)
  every few events and whenever it has been idle.

Each runs with uncapped pages and with ``page_cap=100`` (Chatwoot's cap with ``after``). Every
incoming message must be reported exactly once. Fast suite: 300 messages per variant; ``--soak``:
10,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .reliability_support import FIGURES, POLICY, FaultCounter, bounded

FAST_MESSAGES = 300
# Only a failing run waits this long: after the writer is done, no new id for this long means lost.
GIVE_UP_SECONDS = 15.0
SOAK_MESSAGES = 10_000
T0 = 1_790_000_000
GET_FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503},
    {"kind": "drop_before"},
    {"kind": "malformed"},
    {"kind": "status", "status": 502},
]


@dataclass
class Written:
    expected: list[int] = field(default_factory=list)  # incoming message ids: each must be seen once
    late: int = 0
    done: threading.Event = field(default_factory=threading.Event)


def write(
    out: Written, emu: DotoEmulator, faults: FaultCounter, cid: int, count: int, capped: bool, seed: int
) -> None:
    rng = random.Random(seed)
    hidden: list[tuple[int, int]] = []  # (reveal once this many messages are written, id)
    waiting: list[int] = []  # ids written with late=N (they show up on their own, or at the end)
    emu.clock.freeze(T0)
    written = 0
    while written < count:
        burst = 150 if not capped and rng.random() < 0.05 else rng.randint(1, 40)
        for _ in range(min(burst, count - written)):
            incoming = rng.random() >= 0.1
            late = rng.randint(1, 3) if rng.random() < 0.05 else 0
            hide = not late and rng.random() < 0.03
            message = emu.add_message(
                cid,
                f"m{written}",
                message_type="incoming" if incoming else "outgoing",
                late=late,
                visible=not hide,
            )
            written += 1
            if incoming:
                out.expected.append(message["id"])
            if late:
                waiting.append(message["id"])
            if hide:
                hidden.append((written + rng.randint(1, 20), message["id"]))
            out.late += bool(late or hide)
            for due, mid in [h for h in hidden if h[0] <= written]:
                emu.reveal(mid)
                hidden.remove((due, mid))
        if rng.random() < 0.3:
            faults.inject(method="GET", **rng.choice(GET_FAULTS))
        emu.clock.advance(1)
        time.sleep(0.03)  # let the consumer poll between bursts
    for mid in [h[1] for h in hidden] + waiting:
        emu.reveal(mid)
    emu.clear_faults()
    out.done.set()


@dataclass
class Consumed:
    seen: Counter[int] = field(default_factory=Counter)
    polls: int = 0
    errors: int = 0
    restarts: int = 0
    # A restarted watcher announces its batches still pending (at least once, by design): counted
    # apart, and each must repeat a message already reported, never bring one for the first time.
    redelivered: Counter[int] = field(default_factory=Counter)
    redelivered_unseen: set[int] = field(default_factory=set)

    def record(self, payload: dict[str, Any]) -> None:
        ids = [m["id"] for m in payload["messages"]]
        if payload.get("redelivered"):
            self.redelivered.update(ids)
            self.redelivered_unseen.update(i for i in ids if i not in self.seen)
        else:
            self.seen.update(ids)


def consume_like_the_sensor(cid: int, written: Written, ready: threading.Event) -> Consumed:
    got = Consumed()
    hook = DotoHook(retry_policy=POLICY, timeout=2.0)
    watch = api.MessageWatch(start=T0, min_messages=1)
    ready.wait()
    while True:
        finished = written.done.is_set()
        try:
            batch = hook.poll(watch, cid)
        except DotoError:  # a poke that failed; the next poke carries on from the same cursor
            got.errors += 1
            continue
        finally:
            got.polls += 1
        if batch:
            got.seen.update(m.id for m in batch)
            continue
        # Reschedule mode: the cursor survives through the task state store as JSON.
        watch = api.MessageWatch(start=T0, min_messages=1).restore(json.loads(json.dumps(watch.to_state())))
        if finished:
            return got
        time.sleep(0.002)


class MemoryStateStore:
    """The asset state store a triggerer gives a watcher, kept in memory."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str) -> Any:
        return self.data.get(key)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


def nothing_left(got: Consumed, written: Written, store: MemoryStateStore) -> bool:
    """The writer is done, every incoming id was reported and the watcher holds no pending batch:
    nothing can be announced any more (a restart re-announces only pending batches)."""
    return (
        written.done.is_set()
        and set(written.expected) <= set(got.seen)
        and not any(state.get("pending") for state in store.data.values())
    )


async def stop(upcoming: asyncio.Future[Any] | None) -> None:
    """Cancel a pending ``__anext__`` (which ends the trigger's generator) and wait for it."""
    if upcoming is not None and not upcoming.done():
        upcoming.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await upcoming


async def next_event_within_polls(events: AsyncIterator[TriggerEvent], emu: DotoEmulator, polls: int) -> Any:
    """Drive a (re)started trigger until the emulator has received ``polls`` more GETs, so at least
    ``polls - 1`` whole polls were read and acted on; return the event it fired meanwhile, or None."""
    reached = len(emu.requests) + polls
    pending = asyncio.ensure_future(events.__anext__())
    while len(emu.requests) < reached:
        done, _ = await asyncio.wait({pending}, timeout=0.01)
        if done:
            return pending.result()
    await stop(pending)
    return None


async def consume_like_the_trigger(
    cid: int, written: Written, ready: threading.Event, emu: DotoEmulator
) -> Consumed:
    got = Consumed()
    store = MemoryStateStore()
    while not ready.is_set():
        await asyncio.sleep(0.001)
    progress = (0, time.monotonic())  # (ids reported, when that count last grew)
    while True:
        if len(got.seen) > progress[0]:
            progress = (len(got.seen), time.monotonic())
        elif written.done.is_set() and time.monotonic() - progress[1] > GIVE_UP_SECONDS:
            return got  # lost for good: the asserts name what is missing
        trigger = NewMessageTrigger(cid, start=T0, poll_interval=0.01, max_failures=1_000_000)
        trigger.trigger_id = 1  # an asset watcher: no task instance, never returns
        trigger.asset_state_store = store
        # The triggerer takes an event within about a second here (no Airflow to wait for).
        trigger.event_settle_seconds = 1.0
        events = trigger.run()
        got.restarts += 1
        fired = 0
        try:
            upcoming = None
            if nothing_left(got, written, store):
                # The end, proved rather than waited for: a fresh trigger reads past the last
                # message (three more GETs: at least two whole polls) and must announce nothing.
                event = await next_event_within_polls(events, emu, polls=3)
                if event is None:
                    return got
                got.record(event.payload)  # a repeat or a late first report: the asserts name it
                continue
            upcoming: asyncio.Future[TriggerEvent] | None = None
            while not nothing_left(got, written, store):
                # While the writer writes, a quiet half second restarts the "triggerer". Once it is
                # done, the trigger runs on until its pending batches settle.
                upcoming = upcoming or asyncio.ensure_future(events.__anext__())
                done, _ = await asyncio.wait({upcoming}, timeout=0.5)
                if not done:
                    if not written.done.is_set():
                        break
                    if time.monotonic() - progress[1] > GIVE_UP_SECONDS:
                        return got  # lost for good: the asserts name what is missing
                    continue
                payload = upcoming.result().payload
                upcoming = None
                assert payload["status"] == "success", payload
                got.record(payload)
                got.polls += 1  # (for the trigger: events)
                fired += 1
                if fired % 5 == 0:
                    # Let it save its cursor, then stop it mid-sleep: a triggerer restart.
                    try:
                        event = await asyncio.wait_for(events.__anext__(), timeout=0.005)
                        got.record(event.payload)
                    except TimeoutError:
                        pass
                    break
        finally:
            await stop(upcoming)
            await events.aclose()


@pytest.mark.soak
@pytest.mark.parametrize("page_cap", [None, 100], ids=["uncapped", "page_cap=100"])
@pytest.mark.parametrize("consumer", ["sensor", "trigger"])
def test_every_message_seen_exactly_once(
    consumer: str, page_cap: int | None, emu: DotoEmulator, faults: FaultCounter, soak: bool
) -> None:
    count = SOAK_MESSAGES if soak else FAST_MESSAGES
    emu.page_cap = page_cap
    cid = emu.add_conversation()
    written = Written()
    ready = threading.Event()

    def writer() -> None:
        ready.set()
        write(written, emu, faults, cid, count, page_cap is not None, seed=count + (page_cap or 0))

    thread = threading.Thread(target=writer, name="doto-writer", daemon=True)
    thread.start()
    limit = 60.0 if not soak else 1800.0
    if consumer == "sensor":
        got, error, _ = bounded(
            lambda: consume_like_the_sensor(cid, written, ready), limit, "sensor consumer"
        )
    else:
        got, error, _ = bounded(
            lambda: asyncio.run(consume_like_the_trigger(cid, written, ready, emu)), limit, "trigger consumer"
        )
    thread.join(10)
    assert error is None, f"consumer failed: {error!r}"
    assert got is not None
    expected = set(written.expected)
    lost = expected - set(got.seen)
    repeated = sum(n - 1 for n in got.seen.values() if n > 1)
    unexpected = set(got.seen) - expected
    FIGURES.add(
        "no_loss",
        emu.flavor,
        messages=count,
        incoming=len(expected),
        late=written.late,
        polls=got.polls,
        restarts=got.restarts,
        lost=len(lost),
        repeated=repeated,
        unexpected=len(unexpected),
    )
    assert not lost, f"{len(lost)} message(s) never reported, e.g. {sorted(lost)[:10]}"
    assert not got.redelivered_unseen, f"first reported in a redelivery: {sorted(got.redelivered_unseen)}"
    assert repeated == 0, f"{repeated} repeated report(s): {[m for m, n in got.seen.items() if n > 1][:10]}"
    assert not unexpected, f"reported messages that do not match the filter: {sorted(unexpected)[:10]}"
    assert len(expected) > 0.8 * count
