"""A watcher's triggerer killed between saving the cursor and storing the event loses nothing.

Airflow's triggerer takes an event off the trigger into its runner's queue, sends it to its
supervisor on the next sync (about every second) and stores it after that; a trigger is never told
when. The watcher therefore saves each batch as ``pending`` before its event leaves and forgets it
only ``event_settle_seconds`` after handing it over. Killed in between, the triggerer leaves the
batch pending in the asset state store; the next trigger announces exactly that batch again
(``"redelivered": true``, message ids in the event) before polling on.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .test_doto import (
    POLL,
    EventCollector,
    MemoryStore,
    as_watcher,
    events_of,
    gets,
    ids,
    pending_ids,
    rebuild,
    run,
    saved_ids,
    until,
)


@pytest.fixture
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


@pytest.fixture
def settle(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Sets how long a batch stays pending after its event was handed over."""
    return lambda seconds: monkeypatch.setattr(NewMessageTrigger, "event_settle_seconds", seconds)


def watcher_on(cid: int, store: MemoryStore | None) -> NewMessageTrigger:
    """A new watcher (trigger id 1) on ``cid`` keeping its state in ``store``, as the triggerer sets it up."""
    return as_watcher(NewMessageTrigger(cid, poll_interval=POLL), store)


async def first_message(emu: DotoEmulator, cid: int, watcher: EventCollector) -> int:
    """Add a message once the watcher has polled; its id, after the watcher announced it."""
    await until(lambda: gets(emu, cid) >= 1)
    mid = emu.add_message(cid, "one")["id"]
    await watcher.wait_events(1)
    return mid


def killed_store(store: MemoryStore) -> MemoryStore:
    """The asset state store as a SIGKILLed triggerer leaves it: what was saved, nothing after."""
    left = MemoryStore()
    left.data = copy.deepcopy(store.data)
    return left


def test_killed_after_the_cursor_save_before_the_event_was_stored_announces_the_batch_again(
    doto_emulator: DotoEmulator, cid: int
) -> None:
    emu = doto_emulator
    store = MemoryStore()
    trigger = watcher_on(cid, store)

    async def scenario() -> tuple[list[TriggerEvent], TriggerEvent, list[int], MemoryStore]:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: gets(emu, cid) >= 1)
        batch = [emu.add_message(cid, "one", late=1)["id"], emu.add_message(cid, "two")["id"]]
        lost = await pending  # yielded: in the runner's queue, not yet in the metadata DB
        # The instant the event leaves, the store holds the cursor past the batch and the batch.
        assert pending_ids(store) == set(batch) and saved_ids(store) == set()
        left = killed_store(store)  # SIGKILL: the event is dropped, the store stays as it was
        await gen.aclose()
        after_kill = emu.add_message(cid, "while down")["id"]

        survivor = EventCollector(as_watcher(rebuild(trigger), left, trigger_id=2))
        await survivor.wait_events(2)
        await survivor.stop()
        return [lost, *survivor.events], survivor.events[0], [*batch, after_kill], left

    (lost, again, after), _, sent, left = run(scenario())
    assert ids(lost) == sent[:2] and lost.payload["redelivered"] is False
    assert ids(again) == sent[:2] and again.payload["redelivered"] is True  # exactly that batch
    assert again.payload["messages"] == lost.payload["messages"]  # the same messages, ids included
    assert ids(after) == sent[2:] and after.payload["redelivered"] is False
    assert pending_ids(left) == set(sent)  # none settled yet: the settle wait is 10 s


def test_a_batch_stays_pending_until_its_event_had_time_to_be_stored(
    doto_emulator: DotoEmulator, cid: int, settle: Callable[[float], None]
) -> None:
    emu = doto_emulator
    store = MemoryStore()
    settle(3600.0)
    trigger = watcher_on(cid, store)

    async def scenario() -> tuple[int, set[int], set[int]]:
        watcher = EventCollector(trigger)
        mid = await first_message(emu, cid, watcher)
        polls = gets(emu, cid)
        await until(lambda: gets(emu, cid) >= polls + 3)
        still = pending_ids(store)  # handed over, but not long enough ago
        settle(0.0)
        await until(lambda: mid in saved_ids(store))
        await watcher.stop()
        return mid, still, pending_ids(store)

    mid, still, after = run(scenario())
    assert still == {mid}
    assert after == set()


def test_a_settled_batch_is_not_announced_again(
    doto_emulator: DotoEmulator, cid: int, settle: Callable[[float], None]
) -> None:
    """After the re-announcement settles too, a further restart announces nothing old."""
    emu = doto_emulator
    store = MemoryStore()
    settle(0.0)
    trigger = watcher_on(cid, store)

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: gets(emu, cid) >= 1)
        mid = emu.add_message(cid, "one")["id"]
        await pending
        await gen.aclose()  # killed before the batch settled

        second = EventCollector(as_watcher(rebuild(trigger), store, trigger_id=2))
        await second.wait_events(1)
        await until(lambda: mid in saved_ids(store))  # the re-announcement settled
        await second.stop()

        third = EventCollector(as_watcher(rebuild(trigger), store, trigger_id=3))
        polls = gets(emu, cid)
        await until(lambda: gets(emu, cid) >= polls + 2)
        newer = emu.add_message(cid, "two")["id"]
        await third.wait_events(1)
        await third.stop()
        return [mid], [i for e in second.events for i in ids(e)], [*ids(third.events[0]), newer]

    first, second, third = run(scenario())
    assert second == first
    assert third[:-1] == third[-1:]  # only the new message


def test_batches_pending_together_come_back_in_one_event(
    doto_emulator: DotoEmulator, cid: int, settle: Callable[[float], None]
) -> None:
    """Polls faster than the settle wait: every batch not yet settled comes back, merged, once each."""
    emu = doto_emulator
    store = MemoryStore()
    settle(3600.0)
    trigger = watcher_on(cid, store)

    async def scenario() -> tuple[list[int], list[TriggerEvent]]:
        watcher = EventCollector(trigger)
        sent = [await first_message(emu, cid, watcher)]
        sent.append(emu.add_message(cid, "two")["id"])
        await watcher.wait_events(2)
        await watcher.stop()
        again = EventCollector(as_watcher(rebuild(trigger), killed_store(store), trigger_id=2))
        await again.wait_events(1)
        await again.stop()
        return sent, again.events

    sent, events = run(scenario())
    assert [ids(e) for e in events] == [sent]
    assert events[0].payload["redelivered"] is True


def test_without_a_store_nothing_is_held_or_announced_again(doto_emulator: DotoEmulator, cid: int) -> None:
    """Airflow 3.1/3.2 (no asset state store): the cursor lives in memory, as before."""
    emu = doto_emulator
    trigger = watcher_on(cid, store=None)

    async def scenario() -> tuple[TriggerEvent, int]:
        watcher = EventCollector(trigger)
        mid = await first_message(emu, cid, watcher)
        await watcher.stop()
        return watcher.events[0], mid

    event, mid = run(scenario())
    assert ids(event) == [mid] and event.payload["redelivered"] is False
    assert "pending" not in (trigger.state or {})


class FlakyStore(MemoryStore):
    """A store whose writes fail while ``failing`` (the metadata DB or the comms briefly away)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.failed = 0

    async def aset(self, key: str, value: Any) -> None:
        if self.failing:
            self.failed += 1
            raise ConnectionError("asset state store unavailable")
        await super().aset(key, value)


def test_a_failed_save_is_made_again_so_no_batch_stays_pending_for_good(
    doto_emulator: DotoEmulator, cid: int, settle: Callable[[float], None]
) -> None:
    """The save that settles a batch fails once: a later poll saves it, not only the next change."""
    emu = doto_emulator
    store = FlakyStore()
    settle(3600.0)
    trigger = watcher_on(cid, store)

    async def scenario() -> tuple[int, set[int], int]:
        watcher = EventCollector(trigger)
        mid = await first_message(emu, cid, watcher)
        held = pending_ids(store)
        store.failing = True
        settle(0.0)
        await until(lambda: store.failed >= 1)  # the batch settled in memory, its save failed
        store.failing = False
        await until(lambda: mid in saved_ids(store))
        await watcher.stop()
        return mid, held, store.failed

    mid, held, failed = run(scenario())
    assert held == {mid} and failed >= 1
    assert pending_ids(store) == set()
