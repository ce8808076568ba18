"""NewMessageTrigger with no conversation: the account watcher (one list per idle poll), its kwargs,
its state key, and a triggerer killed between announcing a batch and storing its event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .test_doto import POLL, EventCollector, MemoryStore, as_watcher, events_of, rebuild, run, until
from .test_doto_watcher_handover import killed_store


def lists(emu: DotoEmulator) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations"))


def idle_polls(emu: DotoEmulator) -> int:
    """How many of the last GETs in a row are conversation lists (a poll that read nothing else)."""
    run = 0
    for request in reversed([r for r in emu.requests if r.method == "GET"]):
        if not request.path.endswith("/conversations"):
            break
        run += 1
    return run


def pairs(event: TriggerEvent) -> list[tuple[int, int]]:
    return [(m["conversation_id"], m["id"]) for m in event.payload["messages"]]


def test_account_kwargs_are_deterministic_and_keep_the_old_shape_for_a_conversation() -> None:
    one = NewMessageTrigger(conversation_query={"labels": ["b", "a"], "status": "all"}).serialize()
    two = NewMessageTrigger(conversation_query={"labels": ["a", "b"]}).serialize()
    assert one == two and one[1]["conversation_query"] == '{"labels": ["a", "b"]}'
    assert NewMessageTrigger().serialize()[1]["conversation_query"] is None
    assert BaseEventTrigger.hash(*one) == BaseEventTrigger.hash(*two)
    assert "conversation_query" not in NewMessageTrigger(5).serialize()[1]
    assert NewMessageTrigger()._state_key == "doto_watch:doto_default:account"
    narrowed = NewMessageTrigger(conversation_query={"inbox_id": 3})._state_key
    assert narrowed == 'doto_watch:doto_default:account{"inbox_id": 3}'


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conversation_id": 5, "conversation_query": {"inbox_id": 3}}, "not both"),
        ({"conversation_query": {"sort_by": "unread"}}, "sort_by"),
        ({"conversation_query": {"colour": "red"}}, "no field colour"),
        ({"conversation_query": {"status": "closed"}}, "status must be one of"),
    ],
)
def test_bad_account_arguments_fail_at_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        NewMessageTrigger(**kwargs)


def test_killed_account_watcher_announces_the_batch_again_then_goes_on(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    ids = emu.build_account(60, seed=2)
    store = MemoryStore()
    trigger = as_watcher(NewMessageTrigger(poll_interval=POLL), store)

    async def scenario() -> tuple[TriggerEvent, list[TriggerEvent], list[tuple[int, int]], int]:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: lists(emu) >= 2)
        batch = [(cid, emu.add_message(cid, f"hi from {cid}")["id"]) for cid in (ids[5], ids[40])]
        lost = await pending
        left = killed_store(store)  # SIGKILL: the event is dropped, the store stays as it was
        await gen.aclose()
        down = (ids[9], emu.add_message(ids[9], "while down")["id"])
        survivor = EventCollector(as_watcher(rebuild(trigger), left, trigger_id=2))
        await survivor.wait_events(2)
        # Then idle: three polls in a row are the list alone (waited for, not sampled: on a busy
        # machine a poll may still be reading a conversation that changed just before).
        await until(lambda: idle_polls(emu) >= 3)
        await survivor.stop()
        return lost, survivor.events, [*batch, down], len(json.dumps(left.data))

    lost, (again, after, *more), sent, size = run(scenario())
    assert pairs(lost) == sorted(sent[:2], key=lambda p: p[1]) and lost.payload["conversation_id"] is None
    assert pairs(again) == pairs(lost) and again.payload["redelivered"] is True
    assert pairs(after) == sent[2:] and after.payload["redelivered"] is False
    assert more == []
    assert size < 4000
