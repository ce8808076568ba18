"""``send_message_once`` on both hooks against the emulator: the duplicate-safe send the operator uses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_doto.api import DELIVERY_KEY_ATTRIBUTE, Message
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

KEY = "0123456789abcdef01234567"
SendOnce = Callable[..., tuple[Message, bool]]


@pytest.fixture(params=["sync", "async"])
def send_once(request: pytest.FixtureRequest) -> SendOnce:
    """``DotoHook().send_message_once`` or the async hook's, driven to completion: one signature."""
    if request.param == "sync":
        return DotoHook().send_message_once

    def run(*args: Any, **kwargs: Any) -> tuple[Message, bool]:
        return asyncio.run(DotoAsyncHook().send_message_once(*args, **kwargs))

    return run


def posts(emu: DotoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def test_a_first_try_posts_once_with_the_key(doto_emulator: DotoEmulator, send_once: SendOnce) -> None:
    cid = doto_emulator.add_conversation()
    message, already = send_once(
        cid, "Your refund is on its way.", key=KEY, content_attributes={"ref": "R-1"}
    )
    assert not already
    (stored,) = doto_emulator.messages(cid)
    assert stored["id"] == message.id and stored["content"] == "Your refund is on its way."
    assert stored["content_attributes"] == {"ref": "R-1", DELIVERY_KEY_ATTRIBUTE: KEY}
    assert [r.method for r in doto_emulator.requests] == ["POST"]  # no look-back on a first try


def test_a_retry_returns_the_message_an_earlier_try_delivered(
    doto_emulator: DotoEmulator, send_once: SendOnce
) -> None:
    cid = doto_emulator.add_conversation()
    since = doto_emulator.clock.now()
    first, _ = send_once(cid, "Hello", key=KEY, private=True)
    again, already = send_once(cid, "Hello", key=KEY, private=True, look_back_since=since)
    assert already and again.id == first.id and again.private
    assert len(doto_emulator.messages(cid)) == 1 and len(posts(doto_emulator)) == 1


def test_a_retry_posts_when_nothing_was_delivered(doto_emulator: DotoEmulator, send_once: SendOnce) -> None:
    cid = doto_emulator.add_conversation()
    since = doto_emulator.clock.now()
    doto_emulator.add_message(
        cid, "Hello", message_type="outgoing", content_attributes={DELIVERY_KEY_ATTRIBUTE: "other"}
    )
    message, already = send_once(cid, "Hello", key=KEY, look_back_since=since)
    assert not already
    assert [m["id"] for m in doto_emulator.messages(cid)][-1] == message.id
    assert len(posts(doto_emulator)) == 1


def test_without_echoed_attributes_the_look_back_starts_at_the_given_time(
    doto_emulator: DotoEmulator, send_once: SendOnce
) -> None:
    """A server that drops content attributes: identical content counts, but only since the run began."""
    cid = doto_emulator.add_conversation()
    doto_emulator.drop_content_attributes = True
    since = doto_emulator.clock.now()
    doto_emulator.add_message(cid, "Hello", message_type="outgoing", created_at=since - 1)  # before the run
    message, already = send_once(cid, "Hello", key=KEY, look_back_since=since)
    assert not already and len(posts(doto_emulator)) == 1
    again, already = send_once(cid, "Hello", key=KEY, look_back_since=since)
    assert already and again.id == message.id and len(posts(doto_emulator)) == 1
