"""The account watch through both hooks over real HTTP against the emulator (both flavors): one
request per idle poll, messages of any conversation each once with its conversation id, late
commits, updates without a message, bounded state, a restart from the state, an older server."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._account_watch import AccountWatch, watch_query
from airflow_provider_doto.api._conversations import CLOCK_SLACK
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator


def gets(emu: DotoEmulator) -> list[str]:
    return [r.path for r in emu.requests if r.method == "GET"]


class Poller:
    """Polls an AccountWatch with the emulator's (frozen) clock as ``now``, as the hook would."""

    def __init__(self, emu: DotoEmulator, watch: AccountWatch) -> None:
        self.emu, self.watch, self.hook = emu, watch, DotoHook()
        self.reported: list[tuple[int, int]] = []

    def poll(self, watch: AccountWatch | None = None) -> list[api.Message]:
        watch = watch or self.watch
        self.emu.clear_requests()
        flow = watch.poll_flow(self.hook.settings.account_id, self.emu.clock.now())
        batch = run_flow(flow, self.hook.send) or []
        self.reported += [(m.conversation_id, m.id) for m in batch]
        return batch

    def tick(self, seconds: int = 5) -> None:
        self.emu.clock.advance(seconds)


@pytest.fixture
def account(doto_emulator: DotoEmulator) -> list[int]:
    doto_emulator.clock.freeze()
    ids = doto_emulator.build_account(200, seed=3)
    doto_emulator.clock.advance(600)
    return ids


def test_idle_polls_are_one_request_and_new_messages_come_with_their_conversation(
    doto_emulator: DotoEmulator, account: list[int]
) -> None:
    emu = doto_emulator
    poller = Poller(emu, AccountWatch(start=emu.clock.now()))
    assert poller.poll() == []
    for _ in range(3):
        poller.tick()
        assert poller.poll() == []
        assert gets(emu) == [f"/api/v1/accounts/{emu.account_id}/conversations"]
        assert "updated_within" in emu.requests[0].query
    rng = random.Random(7)
    chosen = rng.sample(account, 5)
    added = [(cid, emu.add_message(cid, f"refund please {cid}")["id"]) for cid in chosen]
    poller.tick()
    batch = poller.poll()
    assert sorted((m.conversation_id, m.id) for m in batch) == sorted(added)
    assert all(m.to_dict()["conversation_id"] == m.conversation_id for m in batch)
    assert len(gets(emu)) >= 1 + len(chosen)  # the list, then each changed conversation
    for _ in range(3):  # the same conversations stay in the window a while: read, nothing new
        poller.tick()
        assert poller.poll() == []
    assert sorted(poller.reported) == sorted(added)  # each once


def test_late_commits_updates_without_a_message_deletions_and_the_filter(
    doto_emulator: DotoEmulator, account: list[int]
) -> None:
    emu = doto_emulator
    watch = AccountWatch(
        start=emu.clock.now(), filter=api.MessageFilter(content_pattern="refund", sender_types=["Contact"])
    )
    poller = Poller(emu, watch)
    poller.poll()
    a, b, c = account[10], account[20], account[30]
    late = emu.add_message(a, "refund (committed late)", late=1)["id"]
    poller.tick()
    assert poller.poll() == []  # not visible yet
    poller.tick()
    newer = emu.add_message(a, "refund again")["id"]
    emu.update_conversation(b, labels=["vip"])  # updated_at moves, no message
    emu.add_message(c, "refund", message_type="outgoing")  # not from a contact
    poller.tick()
    assert [(m.conversation_id, m.id) for m in poller.poll()] == [(a, late), (a, newer)]
    poller.tick()
    assert poller.poll() == []
    assert len(poller.reported) == 2


def test_state_stays_bounded_and_a_dropped_conversation_is_watched_again(
    doto_emulator: DotoEmulator, account: list[int]
) -> None:
    emu = doto_emulator
    poller = Poller(emu, AccountWatch(start=emu.clock.now()))
    poller.poll()
    for cid in account[:50]:
        emu.add_message(cid, f"hello {cid}")
    poller.tick()
    assert len(poller.poll()) == 50
    assert len(poller.watch.cursors) == 50
    for _ in range(20):  # quiet for longer than the horizon (overlap + clock slack)
        poller.tick(10)
        poller.poll()
    assert poller.watch.cursors == {}
    assert len(json.dumps(poller.watch.to_state())) < 300
    again = emu.add_message(account[7], "back again")["id"]
    poller.tick()
    assert [(m.conversation_id, m.id) for m in poller.poll()] == [(account[7], again)]
    poller.tick()
    assert poller.poll() == []


def test_a_restored_watch_continues_without_reporting_twice(
    doto_emulator: DotoEmulator, account: list[int]
) -> None:
    emu = doto_emulator
    start = emu.clock.now()
    poller = Poller(emu, AccountWatch(start=start))
    poller.poll()
    first = emu.add_message(account[1], "one")["id"]
    poller.tick()
    assert [m.id for m in poller.poll()] == [first]
    state = json.loads(json.dumps(poller.watch.to_state()))
    second = emu.add_message(account[1], "two")["id"]
    third = emu.add_message(account[2], "three")["id"]
    poller.tick()
    restored = AccountWatch(start=start).restore(state)
    assert [m.id for m in poller.poll(restored)] == [second, third]
    assert AccountWatch(start=start + 1).restore(state).listed_at is None  # another start: ignored


def test_an_older_server_without_updated_within_is_paged_and_remembered(
    doto_emulator: DotoEmulator, account: list[int]
) -> None:
    emu = doto_emulator
    emu.supports_updated_within = False
    poller = Poller(emu, AccountWatch(start=emu.clock.now()))
    poller.poll()
    assert poller.watch.listing == "paged"
    poller.tick()
    new = emu.add_message(account[3], "hello")["id"]
    batch = poller.poll()
    assert [m.id for m in batch] == [new]
    assert all("updated_within" not in r.query for r in emu.requests)  # remembered: not asked again


def test_a_query_narrows_the_watch_to_an_inbox(doto_emulator: DotoEmulator, account: list[int]) -> None:
    emu = doto_emulator
    inbox = emu.conversation(account[0])["inbox_id"]
    inside = next(c for c in account[1:] if emu.conversation(c)["inbox_id"] == inbox)
    outside = next(c for c in account if emu.conversation(c)["inbox_id"] != inbox)
    watch = AccountWatch(start=emu.clock.now(), query=watch_query({"inbox_id": inbox}))
    poller = Poller(emu, watch)
    poller.poll()
    emu.add_message(outside, "not here")
    wanted = emu.add_message(inside, "here")["id"]
    poller.tick()
    assert [m.id for m in poller.poll()] == [wanted]


def test_watch_query_takes_only_which_conversations() -> None:
    assert watch_query(None).status == "all"
    assert watch_query({"labels": ["vip"]}).labels == ("vip",)
    with pytest.raises(DotoConfigError, match="sort_by"):
        watch_query({"sort_by": "created_at_asc"})
    with pytest.raises(DotoConfigError, match="inbox_id"):
        watch_query({"inbox_id": "three"})


def test_both_hooks_poll_the_account(doto_emulator: DotoEmulator, account: list[int]) -> None:
    emu = doto_emulator
    emu.clock.unfreeze()
    start = emu.clock.now() - CLOCK_SLACK
    sync_watch, async_watch = AccountWatch(start=start), AccountWatch(start=start)
    assert DotoHook().poll_account(sync_watch) is None
    assert asyncio.run(DotoAsyncHook().poll_account(async_watch)) is None
    new = emu.add_message(account[5], "hi")["id"]
    assert [m.id for m in DotoHook().poll_account(sync_watch) or []] == [new]
    assert [m.id for m in asyncio.run(DotoAsyncHook().poll_account(async_watch)) or []] == [new]
