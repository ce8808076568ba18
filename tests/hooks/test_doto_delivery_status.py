"""``wait_for`` on both hooks against the emulator (both flavors): a message read back until its
channel delivered it, read it or failed it, and what a retry may send again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_doto.api import Message
from airflow_provider_doto.exceptions import DotoDeliveryError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

WHY = "Template not found or invalid template name"


class Hook:
    """The sync hook or the async one driven to completion: one set of calls for both."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.hook: Any = DotoHook() if kind == "sync" else DotoAsyncHook()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.hook, name)
        if self.kind == "sync":
            return method
        return lambda *args, **kwargs: asyncio.run(asyncio.wait_for(method(*args, **kwargs), 30))


@pytest.fixture(params=["sync", "async"])
def hook(request: pytest.FixtureRequest) -> Hook:
    return Hook(request.param)


def whatsapp(emu: DotoEmulator, *, open_window: bool) -> int:
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    if open_window:
        emu.add_message(cid, "Where is my order?")  # the customer wrote just now: the window is open
    return cid


def posts(emu: DotoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def read_backs(emu: DotoEmulator, message: Message) -> list[Any]:
    """The GETs that read ``message`` back: by id on Chatwoot, by its second on a Doto server."""
    if emu.flavor == "chatwoot":
        wanted = {"after": str(message.id), "before": str(message.id + 1)}
    else:
        wanted = {"after": str(message.created_at - 1), "before": str(message.created_at + 1)}
    return [r for r in emu.requests if r.method == "GET" and r.query == wanted]


def test_the_message_comes_back_with_the_status_reached(doto_emulator: DotoEmulator, hook: Hook) -> None:
    doto_emulator.delivery_receipts = (0, 0)
    cid = whatsapp(doto_emulator, open_window=True)
    message = hook.send_message(cid, "Your parcel is on its way.", wait_for="delivered", delivery_timeout=10)
    assert message.status == "read"  # read satisfies delivered
    assert doto_emulator.message(message.id)["status"] == "read"
    assert len(posts(doto_emulator)) == 1


def test_a_message_failed_by_its_channel_raises_with_the_servers_reason(
    doto_emulator: DotoEmulator, hook: Hook
) -> None:
    doto_emulator.window_failure_delay = 0
    cid = whatsapp(doto_emulator, open_window=False)
    with pytest.raises(DotoDeliveryError, match=rf"conversation {cid} .*marked failed.*{WHY}") as caught:
        hook.send_message(cid, "Are you still there?", wait_for="sent", delivery_timeout=10)
    assert (caught.value.message_status, caught.value.external_error) == ("failed", WHY)
    assert len(posts(doto_emulator)) == 1  # created once, never re-sent by the wait


def test_the_wait_reads_once_per_poll_until_the_status_moves(doto_emulator: DotoEmulator, hook: Hook) -> None:
    doto_emulator.delivery_receipts = (2, 3600)  # delivered 1 to 2 s after the send (whole seconds)
    cid = whatsapp(doto_emulator, open_window=True)
    message = hook.send_message(cid, "Hi")
    assert message.status == "sent"
    delivered = hook.wait_for_delivery(cid, message, "delivered", timeout=10, poll_interval=0.25)
    assert delivered.status == "delivered" and delivered.id == message.id
    reads = len(read_backs(doto_emulator, message))
    assert 2 <= reads <= 12  # one a poll: 1 to 2 s of polls every 0.25 s


def test_the_timeout_names_the_last_status(doto_emulator: DotoEmulator, hook: Hook) -> None:
    cid = whatsapp(doto_emulator, open_window=True)  # receipts off: the message stays sent
    with pytest.raises(
        DotoDeliveryError, match=r"timed out after 0.5 s .*'read'; its last status was 'sent'"
    ):
        hook.send_message(cid, "Anyone there?", wait_for="read", delivery_timeout=0.5)
    assert len(posts(doto_emulator)) == 1


def test_a_retry_waits_on_what_it_finds_and_never_sends_it_again(
    doto_emulator: DotoEmulator, hook: Hook
) -> None:
    doto_emulator.delivery_receipts = (3600, 7200)  # the receipt comes an hour after the send
    cid = whatsapp(doto_emulator, open_window=True)
    since = doto_emulator.clock.now()
    with pytest.raises(DotoDeliveryError, match="timed out"):
        hook.send_message_once(cid, "Hi", key="k", wait_for="delivered", delivery_timeout=0)
    doto_emulator.clock.advance(3600)
    doto_emulator.clear_requests()
    message, already = hook.send_message_once(
        cid, "Hi", key="k", look_back_since=since, wait_for="delivered", delivery_timeout=0
    )
    assert already is True and posts(doto_emulator) == []
    assert message.status == "delivered"
    assert len(doto_emulator.messages(cid)) == 2  # the customer's and ours, once


def test_a_retry_sends_a_failed_message_again(doto_emulator: DotoEmulator, hook: Hook) -> None:
    """A failed message was not delivered: the retry (same key) sends it again, and waits on the new one."""
    doto_emulator.window_failure_delay = 0
    doto_emulator.delivery_receipts = (0, 0)
    cid = whatsapp(doto_emulator, open_window=False)
    since = doto_emulator.clock.now()
    with pytest.raises(DotoDeliveryError, match=WHY) as caught:
        hook.send_message_once(cid, "Hi", key="k", wait_for="delivered", delivery_timeout=10)
    doto_emulator.add_message(cid, "Hello?")  # the customer writes: the window opens
    message, already = hook.send_message_once(
        cid, "Hi", key="k", look_back_since=since, wait_for="delivered", delivery_timeout=10
    )
    assert already is False and message.id != caught.value.message_id
    assert message.status == "read"
    ours = [m for m in doto_emulator.messages(cid) if m["message_type"] == "outgoing"]
    assert [m["status"] for m in ours] == ["failed", "read"]
    assert len(posts(doto_emulator)) == 2
