"""The account's conversations through both hooks over real HTTP against the emulator (both flavors):
``list_conversations``, ``iter_conversations`` / ``aiter_conversations`` and ``get_conversation``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._conversations import CLOCK_SLACK, PAGE_SIZE
from airflow_provider_doto.exceptions import DotoConfigError, DotoNotFoundError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator


def list_gets(emu: DotoEmulator) -> list[dict[str, str]]:
    return [r.query for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]


def seed(emu: DotoEmulator, count: int, *, minutes_apart: int = 1) -> list[int]:
    """``count`` conversations, each with one incoming message, the later-created one active later;
    returns their ids newest activity first (the list's default order). The clock is real again after."""
    start = emu.clock.now() - count * minutes_apart * 60 - 3600
    ids = []
    for i in range(count):
        emu.clock.set(start + i * minutes_apart * 60)
        cid = emu.add_conversation(labels=["vip"] if i % 3 == 0 else [])
        emu.add_message(cid, f"hello {i}")
        ids.append(cid)
    emu.clock.reset()
    return ids[::-1]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def alist(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


# ---- listing ---------------------------------------------------------------------------------


def test_every_conversation_once_newest_activity_first_a_page_of_25_at_a_time(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, 60)
    listed = DotoHook().list_conversations()
    assert [c.id for c in listed] == newest_first
    assert [q["page"] for q in list_gets(doto_emulator)] == ["1", "2", "3"]
    assert all(isinstance(c, api.Conversation) and c.channel == "Channel::Api" for c in listed)
    assert listed[0].last_message is not None and listed[0].last_message.content == "hello 59"
    assert listed[0].contact is not None and listed[0].contact.type == "contact"
    assert run(DotoAsyncHook().list_conversations()) == listed


def test_iter_conversations_asks_for_a_page_when_the_last_is_used_up(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, 60)
    conversations = DotoHook().iter_conversations()
    assert list_gets(doto_emulator) == []  # nothing is sent before the first one is asked for
    first = next(conversations)
    assert first.id == newest_first[0] and len(list_gets(doto_emulator)) == 1
    rest = list(conversations)
    assert [c.id for c in [first, *rest]] == newest_first and len(list_gets(doto_emulator)) == 3
    assert [c.id for c in run(alist(DotoAsyncHook().aiter_conversations()))] == newest_first


def test_conversation_ids_are_the_listed_ids_a_page_at_a_time(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, 60)
    vip = [cid for cid in newest_first if "vip" in doto_emulator.conversation(cid)["labels"]]
    assert DotoHook().conversation_ids() == newest_first
    assert [q["page"] for q in list_gets(doto_emulator)] == ["1", "2", "3"]
    query = api.ConversationQuery(status="all", labels=["vip"])
    assert (
        DotoHook().conversation_ids(query=query)
        == vip
        == DotoHook().conversation_ids(status="all", labels=["vip"])
    )
    assert run(DotoAsyncHook().conversation_ids()) == newest_first
    assert run(DotoAsyncHook().conversation_ids(query=query)) == vip
    doto_emulator.clear_requests()
    with pytest.raises(DotoConfigError, match="status must be one of"):
        DotoHook().conversation_ids(status="closed")
    with pytest.raises(DotoConfigError, match="status must be one of"):
        run(DotoAsyncHook().conversation_ids(status="closed"))
    assert doto_emulator.requests == []


def test_the_query_reaches_the_server_as_keywords_or_as_a_query(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, 30)
    resolved = newest_first[1]
    doto_emulator.update_conversation(resolved, status="resolved")
    vip = [cid for cid in newest_first if "vip" in doto_emulator.conversation(cid)["labels"]]
    hook = DotoHook()
    assert [c.id for c in hook.list_conversations(labels=["vip"], status="all")] == vip
    assert [c.id for c in hook.list_conversations(status="resolved")] == [resolved]
    query = api.ConversationQuery(status="all", labels=["vip"], inbox_id=1)
    assert [c.id for c in hook.list_conversations(query=query)] == vip
    assert list_gets(doto_emulator)[-1] == {"status": "all", "inbox_id": "1", "labels[]": "vip", "page": "1"}
    assert [c.id for c in run(DotoAsyncHook().list_conversations(query=query))] == vip
    assert [c.id for c in hook.list_conversations(sort_by="created_at_asc")] == [
        cid for cid in reversed(newest_first) if cid != resolved
    ]


@pytest.mark.parametrize(
    "arguments",
    [{"inbox_id": "seven"}, {"status": "closed"}, {"labels": "vip"}, {"active_since": "last week"}],
    ids=lambda a: next(iter(a)),
)
def test_bad_arguments_are_refused_when_called_before_anything_is_sent(doto_emulator, arguments):
    name = next(iter(arguments))
    with pytest.raises(DotoConfigError, match=name):
        DotoHook().iter_conversations(**arguments)
    with pytest.raises(DotoConfigError, match=name):
        DotoAsyncHook().aiter_conversations(**arguments)
    with pytest.raises(DotoConfigError, match=name):
        run(DotoAsyncHook().list_conversations(**arguments))
    with pytest.raises(DotoConfigError, match="not both"):
        DotoHook().list_conversations(query=api.ConversationQuery(), **arguments)
    assert doto_emulator.requests == []


# ---- active_since ----------------------------------------------------------------------------


@pytest.mark.parametrize("honours", [True, False], ids=["updated_within", "older-server"])
def test_active_since_lists_what_was_active_since_then(doto_emulator: DotoEmulator, honours: bool):
    doto_emulator.supports_updated_within = honours
    older = seed(doto_emulator, 40, minutes_apart=5)  # active 1 to 4 hours ago
    since = doto_emulator.clock.now() - 600
    recent = []
    for i in range(30):  # active in the last 10 minutes
        cid = doto_emulator.add_conversation()
        doto_emulator.add_message(cid, f"new {i}", created_at=since + 10 + i)
        recent.append(cid)
    recent.reverse()
    hook = DotoHook()
    listed = hook.list_conversations(active_since=since)
    assert [c.id for c in listed] == recent
    assert all(c.last_activity_at > since for c in listed) and older[0] not in {c.id for c in listed}
    gets = list_gets(doto_emulator)
    within = int(gets[0]["updated_within"])
    assert within - CLOCK_SLACK == pytest.approx(600, abs=5)  # counted from the hook's clock
    # One answer where the window is honoured; else the window's answer, then pages 1 and 2 by
    # activity, and no page past the time.
    assert [q.get("page") for q in gets] == (["1"] if honours else ["1", "1", "2"])
    assert [c.id for c in hook.iter_conversations(active_since=since)] == recent
    assert [c.id for c in run(DotoAsyncHook().list_conversations(active_since=since))] == recent
    assert [c.id for c in run(alist(DotoAsyncHook().aiter_conversations(active_since=since)))] == recent


def test_active_since_also_finds_a_conversation_changed_without_a_message(doto_emulator: DotoEmulator):
    """The server's ``updated_within`` reads ``updated_at``: a conversation resolved since then is
    in the answer (documented: more, never less, than paging by activity finds)."""
    older = seed(doto_emulator, 5)
    since = doto_emulator.clock.now() - 10
    doto_emulator.update_conversation(older[-1], status="pending")
    assert [c.id for c in DotoHook().list_conversations(status="all", active_since=since)] == [older[-1]]


# ---- one conversation ------------------------------------------------------------------------


def test_get_conversation_is_the_show_answer(doto_emulator: DotoEmulator):
    (cid,) = seed(doto_emulator, 1)
    doto_emulator.update_conversation(cid, labels=["billing"], priority="high")
    got = DotoHook().get_conversation(str(cid))
    shown = doto_emulator.conversation(cid)
    assert (got.id, got.labels, got.priority, got.status) == (cid, ("billing",), "high", "open")
    assert got.last_activity_at == shown["last_activity_at"] and got.can_reply is shown["can_reply"]
    assert got.raw == shown
    assert json.loads(json.dumps(got.to_dict())) == got.to_dict()
    assert run(DotoAsyncHook().get_conversation(cid)) == got


def test_a_missing_conversation_is_not_found(doto_emulator: DotoEmulator):
    with pytest.raises(DotoNotFoundError, match="conversation 999 of account 1 does not exist"):
        DotoHook().get_conversation(999)
    with pytest.raises(DotoNotFoundError, match="conversation 999 of account 1 does not exist"):
        run(DotoAsyncHook().get_conversation(999))


def test_a_base_url_without_the_conversation_list_says_so(doto_emulator: DotoEmulator, monkeypatch):
    """Rails' routing 404 (no such endpoint): not a missing account, and the Base URL is named."""
    wrong = doto_emulator.base_url + "/chat"
    connection = json.loads(doto_emulator.connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", json.dumps({**connection, "host": wrong}))
    with pytest.raises(DotoNotFoundError, match="has no conversation list") as caught:
        DotoHook().list_conversations()
    assert wrong in str(caught.value)
    with pytest.raises(DotoNotFoundError, match="has no conversation list"):
        run(DotoAsyncHook().get_conversation(1))


# ---- the retry policy ------------------------------------------------------------------------


def test_a_page_that_fails_once_is_retried_by_the_hooks_policy(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, PAGE_SIZE + 5)
    fast = api.RetryPolicy(attempts=3, backoff=0.01, max_wait=0.02)
    doto_emulator.inject("status", status=503, method="GET", path_contains="/conversations")
    assert [c.id for c in DotoHook(retry_policy=fast).list_conversations()] == newest_first
    doto_emulator.inject("status", status=503, method="GET", path_contains="/conversations")
    got = run(alist(DotoAsyncHook(retry_policy=fast).aiter_conversations()))
    assert [c.id for c in got] == newest_first
    assert doto_emulator.faults == []


def test_search_and_assignee_type_reach_the_server(doto_emulator: DotoEmulator):
    newest_first = seed(doto_emulator, 6)
    mine, theirs = newest_first[0], newest_first[1]
    doto_emulator.update_conversation(mine, assignee="Doto Agent")  # the token's own user
    doto_emulator.update_conversation(theirs, assignee="Other Agent", status="resolved")
    hook = DotoHook()
    assert [c.id for c in hook.list_conversations(assignee_type="me")] == [mine]
    assert [c.id for c in hook.list_conversations(assignee_type="unassigned")] == newest_first[2:]
    assert [c.id for c in hook.list_conversations(status="all", assignee_type="assigned")] == [mine, theirs]
    # A search ignores status: the resolved conversation is found by its message.
    assert [c.id for c in hook.list_conversations(q="hello 4")] == [theirs]
    assert hook.get_conversation(mine).assignee_id is not None
