"""Templates through the hooks (sync and async) against the emulator over HTTP, both flavors.

``template`` goes with the message; ``fallback_template`` only where the reply window is closed;
a retry never sends twice, whichever of the two an earlier try sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError, DotoDeliveryError, DotoReplyWindowError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

UNKNOWN_TEMPLATE = "(#132001) Template name does not exist in the translation"
TEMPLATE: dict[str, Any] = {
    "name": "follow_up",
    "category": "UTILITY",
    "language": "en_US",
    "processed_params": {"body": {"1": "Maria"}},
}


def send_sync(cid: int, content: str, **options: Any) -> api.Message:
    return DotoHook().send_message(cid, content, **options)


def send_async(cid: int, content: str, **options: Any) -> api.Message:
    return asyncio.run(DotoAsyncHook().send_message(cid, content, **options))


SENDERS: dict[str, Callable[..., api.Message]] = {"sync": send_sync, "async": send_async}
senders = pytest.mark.parametrize("send", list(SENDERS.values()), ids=list(SENDERS))


def whatsapp(emu: DotoEmulator, *, open_window: bool, inbox: int | None = None) -> int:
    """A WhatsApp conversation; the inbox knows the ``follow_up`` template."""
    if inbox is None:
        inbox = emu.add_inbox("whatsapp")
        emu.add_template(inbox, "follow_up", "en_US")
    cid = emu.add_conversation(inbox_id=inbox)
    if open_window:
        emu.add_message(cid, "Where is my order?")  # the customer wrote just now
    return cid


def posts(emu: DotoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def conversation_reads(emu: DotoEmulator, cid: int) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and r.path.endswith(f"/conversations/{cid}"))


@senders
def test_a_template_is_sent_as_given_and_delivered_outside_the_window(
    doto_emulator: DotoEmulator, send: Callable[..., api.Message]
) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    message = send(cid, "Hi Maria, any news on your order?", template=TEMPLATE, check_reply_window=True)
    (post,) = posts(doto_emulator)
    assert post.json["template_params"] == TEMPLATE and post.json["content"].startswith("Hi Maria")
    assert conversation_reads(doto_emulator, cid) == 0  # a template needs no window
    stored = doto_emulator.message(message.id)
    assert stored["additional_attributes"] == {"template_params": TEMPLATE}


def test_wait_for_sees_a_known_template_delivered_and_an_unknown_one_failed(
    doto_emulator: DotoEmulator,
) -> None:
    doto_emulator.delivery_receipts = (0, 0)
    doto_emulator.window_failure_delay = 0
    cid = whatsapp(doto_emulator, open_window=False)
    delivered = DotoHook().send_message(
        cid, "Hi", template=TEMPLATE, wait_for="delivered", delivery_timeout=10
    )
    assert delivered.status in ("delivered", "read")
    unknown = {**TEMPLATE, "name": "follow_up_v2"}
    with pytest.raises(DotoDeliveryError, match=r"\(#132001\)") as caught:
        DotoHook().send_message(cid, "Hi", template=unknown, wait_for="delivered", delivery_timeout=10)
    assert caught.value.external_error == UNKNOWN_TEMPLATE
    assert len(posts(doto_emulator)) == 2  # each created once, never re-sent


@senders
@pytest.mark.parametrize("open_window", [True, False], ids=["open", "closed"])
def test_the_fallback_is_sent_only_where_the_window_is_closed(
    doto_emulator: DotoEmulator, send: Callable[..., api.Message], open_window: bool
) -> None:
    cid = whatsapp(doto_emulator, open_window=open_window)
    message = send(cid, "Any news on your order?", fallback_template=TEMPLATE, check_reply_window=False)
    (post,) = posts(doto_emulator)
    assert ("template_params" in post.json) is (not open_window)
    assert conversation_reads(doto_emulator, cid) == 1  # the fallback implies the check: one GET
    assert message.content == "Any news on your order?"


@senders
def test_without_a_fallback_a_closed_window_still_sends_nothing(
    doto_emulator: DotoEmulator, send: Callable[..., api.Message]
) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    with pytest.raises(DotoReplyWindowError):
        send(cid, "Any news?", check_reply_window=True)
    assert posts(doto_emulator) == []


@senders
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"template": {**TEMPLATE, "category": "PROMO"}}, r"template\.category must be one of"),
        (
            {"fallback_template": {**TEMPLATE, "processed_params": {"body": {"1": 5}}}},
            r"^fallback_template\.processed_params\.body\['1'\]",
        ),
        ({"template": TEMPLATE, "fallback_template": TEMPLATE}, "not both"),
        ({"template": TEMPLATE, "private": True}, "public outgoing"),
    ],
)
def test_a_bad_template_fails_before_anything_is_sent(
    doto_emulator: DotoEmulator, send: Callable[..., api.Message], options: dict[str, Any], match: str
) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    doto_emulator.clear_requests()
    with pytest.raises(DotoConfigError, match=match):
        send(cid, "Any news?", **options)
    assert doto_emulator.requests == []


@pytest.mark.parametrize("first_open", [True, False], ids=["text-then-closed", "template-then-opened"])
@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_a_retry_never_sends_twice_whichever_was_chosen(
    doto_emulator: DotoEmulator, first_open: bool, sync: bool
) -> None:
    """The first try sends free text (window open) or the template (closed); the window changes
    before the retry; the retry finds the first try's message and sends nothing."""
    emu = doto_emulator
    t0 = emu.clock.freeze()
    cid = whatsapp(emu, open_window=first_open)
    kwargs: dict[str, Any] = {"key": "run-1-send", "look_back_since": t0 - 5, "fallback_template": TEMPLATE}

    def once() -> tuple[api.Message, bool]:
        if sync:
            return DotoHook().send_message_once(cid, "Any news on your order?", **kwargs)
        return asyncio.run(DotoAsyncHook().send_message_once(cid, "Any news on your order?", **kwargs))

    first, already = once()
    assert already is False
    (post,) = posts(emu)
    assert ("template_params" in post.json) is (not first_open)
    if first_open:
        emu.clock.advance(25 * 3600)  # the window closes
    else:
        emu.add_message(cid, "I'm back")  # the customer writes: the window opens
    again, already = once()
    assert already is True and again.id == first.id
    assert len(posts(emu)) == 1


def test_the_batch_sends_each_conversation_free_text_or_the_fallback(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    inbox = emu.add_inbox("whatsapp")
    emu.add_template(inbox, "follow_up", "en_US")
    opened = whatsapp(emu, open_window=True, inbox=inbox)
    closed = whatsapp(emu, open_window=False, inbox=inbox)
    web = emu.add_conversation(inbox_id=2)  # web widget: no window
    items = [api.BatchItem(cid, f"Any news, #{cid}?") for cid in (opened, closed, web)]

    results = asyncio.run(
        DotoAsyncHook().send_messages(
            items, delivery_keys=lambda cid: f"key-{cid}", fallback_template=TEMPLATE, check_reply_window=True
        )
    )

    assert [r.status for r in results] == ["sent", "sent", "sent"]
    templated = {
        cid: "template_params" in (emu.messages(cid)[-1].get("additional_attributes") or {})
        for cid in (opened, closed, web)
    }
    assert templated == {opened: False, closed: True, web: False}
    assert all(conversation_reads(emu, cid) == 1 for cid in (opened, closed, web))
    with pytest.raises(DotoConfigError, match="fallback_template lacks 'name'"):
        asyncio.run(
            DotoAsyncHook().send_messages(
                items, fallback_template={k: v for k, v in TEMPLATE.items() if k != "name"}
            )
        )
    assert len(posts(emu)) == 3
