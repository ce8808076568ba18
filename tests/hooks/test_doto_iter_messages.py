"""``DotoHook.iter_messages`` (and the async twin) over real HTTP: the listing, a page at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_provider_doto.exceptions import DotoConfigError, DotoNotFoundError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

from ..api._support import ISSUE_26, OVER_HTTP, RENUMBERED, busy_seconds, seed_busy


def list_gets(emu: DotoEmulator, cid: int) -> list[dict[str, str]]:
    return [
        r.query
        for r in emu.requests
        if r.method == "GET" and r.path.endswith(f"/conversations/{cid}/messages")
    ]


def seed(emu: DotoEmulator, count: int, *, per_second: int = 3) -> tuple[int, int]:
    """A conversation of ``count`` messages, ``per_second`` sharing each second; returns (id, first second)."""
    cid = emu.add_conversation()
    start = emu.clock.now() - count
    for i in range(count):
        kind = "incoming" if i % 2 else "outgoing"
        emu.add_message(cid, f"line {i}", message_type=kind, created_at=start + i // per_second)
    return cid, start


@pytest.fixture(params=["uncapped", "capped"])
def emu(request: pytest.FixtureRequest, doto_emulator: DotoEmulator) -> DotoEmulator:
    """Both server flavors (the suite's parametrisation), the doto one also with 100-message pages."""
    if request.param == "capped":
        if doto_emulator.flavor == "chatwoot":
            pytest.skip("the chatwoot flavor always caps its pages")
        doto_emulator.page_cap = 100
    return doto_emulator


def _keys(messages: Any) -> list[tuple[int, int, str | None]]:
    return [(m.id, m.created_at, m.content) for m in messages]


def test_the_same_messages_in_the_same_order_as_list_messages(emu: DotoEmulator) -> None:
    cid, start = seed(emu, 450)
    hook = DotoHook()
    listed = hook.list_messages(cid)
    assert len(listed) == 450
    assert _keys(hook.iter_messages(cid)) == _keys(listed)
    for window in (
        {"after": start + 20},
        {"before": start + 100},
        {"after": start + 9, "before": start + 130},
    ):
        expected = hook.list_messages(cid, **window)
        assert expected and _keys(hook.iter_messages(cid, **window)) == _keys(expected)


def test_the_first_message_comes_before_the_last_page_is_asked_for(
    emu: DotoEmulator, pinned_flavor: str
) -> None:
    if emu.page_cap is None and pinned_flavor == "doto":
        pytest.skip("an uncapped server answers the whole conversation in one page")
    cid, _ = seed(emu, 450)
    messages = DotoHook().iter_messages(cid)
    first = next(messages)
    asked_first = len(list_gets(emu, cid))
    rest = list(messages)
    asked_all = len(list_gets(emu, cid))
    assert first.content == "line 0" and len(rest) == 449
    # 450 messages in pages of at most 100: a page read by the time the first message was handed out.
    assert asked_first == 1 and asked_all >= 5


def test_messages_are_read_as_they_are_consumed(emu: DotoEmulator, pinned_flavor: str) -> None:
    if emu.page_cap is None and pinned_flavor == "doto":
        pytest.skip("an uncapped server answers the whole conversation in one page")
    cid, _ = seed(emu, 450)
    messages = DotoHook().iter_messages(cid)
    taken = [next(messages) for _ in range(150)]
    # Past the first page, not yet at the end: only the pages reaching the 150th message were read.
    assert 2 <= len(list_gets(emu, cid)) < 5
    assert [m.content for m in taken] == [f"line {i}" for i in range(150)]


def test_bad_arguments_fail_before_anything_is_sent(doto_emulator: DotoEmulator) -> None:
    cid, _ = seed(doto_emulator, 3)
    with pytest.raises(DotoConfigError, match="conversation_id"):
        DotoHook().iter_messages("forty-two")
    with pytest.raises(DotoConfigError, match="after must be"):
        DotoHook().iter_messages(cid, after="last tuesday")
    assert list_gets(doto_emulator, cid) == []


def test_a_missing_conversation_raises_when_iterated(doto_emulator: DotoEmulator) -> None:
    with pytest.raises(DotoNotFoundError):
        list(DotoHook().iter_messages(404_404))


def test_the_async_twin_yields_the_same(emu: DotoEmulator) -> None:
    cid, start = seed(emu, 260)

    async def collect(**window: Any) -> list[Any]:
        return [m async for m in DotoAsyncHook().aiter_messages(cid, **window)]

    hook = DotoHook()
    assert _keys(asyncio.run(collect())) == _keys(hook.list_messages(cid))
    assert _keys(asyncio.run(collect(after=start + 50))) == _keys(hook.list_messages(cid, after=start + 50))


# ---- Chatwoot: busy seconds and ids out of time order (issue 26) ---------------------------


def read_every_way(cid: int, **window: Any) -> dict[str, list[int]]:
    """The window's ids as list_messages, iter_messages and aiter_messages give them."""

    async def collect() -> list[int]:
        return [m.id async for m in DotoAsyncHook().aiter_messages(cid, **window)]

    hook = DotoHook()
    return {
        "list_messages": [m.id for m in hook.list_messages(cid, **window)],
        "iter_messages": [m.id for m in hook.iter_messages(cid, **window)],
        "aiter_messages": asyncio.run(collect()),
    }


@pytest.mark.doto_flavor("chatwoot")
def test_busy_seconds_with_an_id_out_of_order_lose_nothing(
    doto_emulator: DotoEmulator, pinned_flavor: str
) -> None:
    """Issue 26: 2 messages a second for 20 s, then 40, 41 and 40 in three seconds, the middle
    second's last one numbered after the third second's. Every reader lost 21 of the window's 151."""
    emu = doto_emulator
    start = emu.clock.now() - 60
    cid = seed_busy(emu, **ISSUE_26, start=start)
    expected = [m["id"] for m in emu.messages(cid) if m["created_at"] > start + 4]  # by (created_at, id)
    assert len(expected) == 151
    read = read_every_way(cid, after=start + 4)
    assert {reader: len(got) for reader, got in read.items()} == dict.fromkeys(read, 151)
    assert all(got == expected for got in read.values())
    # Each reader paid for the page within the slack with one range read of the ids below its end.
    ranges = [q for q in list_gets(emu, cid) if "after" in q and "before" in q]
    assert len(ranges) == 3 and ranges[0]["before"] == str(max(expected) + 1)


@pytest.mark.doto_flavor("chatwoot")
@OVER_HTTP
@given(
    per_second=busy_seconds(6),
    renumbered=RENUMBERED,
    after=st.none() | st.integers(-1, 6),
)
@example(**ISSUE_26, after=4)
def test_property_busy_seconds_every_reader_gives_each_message_once(
    doto_emulator: DotoEmulator, per_second: list[int], renumbered: list[tuple[int, int]], after: int | None
) -> None:
    """Busy seconds (a page within the slack, more than a page in one) and ids out of time order,
    over HTTP: both hooks' readers give the window's messages once each, oldest first."""
    emu = doto_emulator
    start = emu.clock.now() - 100
    cid = seed_busy(emu, per_second, renumbered, start)  # a new conversation per example
    window = {} if after is None else {"after": start + after}
    expected = [m["id"] for m in emu.messages(cid) if after is None or m["created_at"] > start + after]
    for reader, got in read_every_way(cid, **window).items():
        assert got == expected, reader
