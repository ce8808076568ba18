"""DeliveryTrigger: its kwargs (plain, no token, rebuilt as they were) and its one event against the
emulator (both flavors): the message with its final status, its channel's failure, the time up."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest
from known_tokens import TEST_TOKEN

from airflow_provider_doto.exceptions import DotoConfigError, DotoDeliveryError, DotoTriggerError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.delivery import DeliveryTrigger, message_from_event

WHY = "Template not found or invalid template name"


def whatsapp(emu: DotoEmulator, *, open_window: bool) -> int:
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    if open_window:
        emu.add_message(cid, "Where is my order?")
    return cid


def trigger_for(cid: int, message: Any, **kwargs: Any) -> DeliveryTrigger:
    options: dict[str, Any] = {
        "wait_for": "delivered",
        "delivery_timeout": 10,
        "deferred_at": time.time(),
        "poll_interval": 0.2,
        **kwargs,
    }
    return DeliveryTrigger(
        conversation_id=cid,
        message_id=message.id,
        created_at=message.created_at,
        status=message.status,
        **options,
    )


def events(trigger: DeliveryTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), 30))


def test_serializes_plain_kwargs_without_the_token_and_rebuilds_the_same() -> None:
    trigger = DeliveryTrigger(
        conversation_id=7,
        message_id=41,
        created_at=1_767_225_600,
        status="sent",
        wait_for="read",
        delivery_timeout=60,
        deferred_at=1_767_225_601.5,
        first_read_after=10,
        doto_conn_id="doto_prod",
    )
    path, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs and TEST_TOKEN not in json.dumps(kwargs)
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs) == trigger.serialize()  # deterministic
    assert kwargs["wait_for"] == "read" and kwargs["deferred_at"] == 1_767_225_601.5


@pytest.mark.parametrize(("wait_for", "timeout"), [("delivred", 10), (None, 10), ("read", -1)])
def test_bad_kwargs_are_refused_when_built(wait_for: Any, timeout: Any) -> None:
    with pytest.raises(DotoConfigError):
        DeliveryTrigger(
            conversation_id=7,
            message_id=41,
            created_at=0,
            status="sent",
            wait_for=wait_for,
            delivery_timeout=timeout,
            deferred_at=0,
        )


def test_fires_with_the_message_once_its_status_is_reached(doto_emulator: DotoEmulator) -> None:
    doto_emulator.delivery_receipts = (2, 3600)
    cid = whatsapp(doto_emulator, open_window=True)
    message = DotoHook().send_message(cid, "Your parcel is on its way.")
    [event] = events(trigger_for(cid, message))
    assert event["status"] == "success"
    got = message_from_event(event)
    assert (got["id"], got["status"], got["content"]) == (
        message.id,
        "delivered",
        "Your parcel is on its way.",
    )


def test_a_message_its_channel_failed_ends_with_the_servers_reason(doto_emulator: DotoEmulator) -> None:
    doto_emulator.window_failure_delay = 1
    cid = whatsapp(doto_emulator, open_window=False)
    message = DotoHook().send_message(cid, "Hello?")
    [event] = events(trigger_for(cid, message))
    assert (event["status"], event["error_type"]) == ("error", "DotoDeliveryError")
    with pytest.raises(DotoDeliveryError, match=WHY) as caught:
        message_from_event(event)
    assert (caught.value.message_id, caught.value.message_status, caught.value.external_error) == (
        message.id,
        "failed",
        WHY,
    )


def test_the_deadline_counts_from_the_deferral(doto_emulator: DotoEmulator) -> None:
    cid = whatsapp(doto_emulator, open_window=True)  # receipts off: the message stays sent
    message = DotoHook().send_message(cid, "Anyone there?")
    started = time.monotonic()
    [event] = events(trigger_for(cid, message, delivery_timeout=5, deferred_at=time.time() - 4.5))
    assert time.monotonic() - started < 3  # half a second left of the five, not five
    with pytest.raises(DotoDeliveryError, match=r"timed out after 5 s .*last status was 'sent'"):
        message_from_event(event)


def test_an_event_without_a_message_is_a_trigger_error() -> None:
    with pytest.raises(DotoTriggerError, match="ended without a message"):
        message_from_event({"status": "success"})
