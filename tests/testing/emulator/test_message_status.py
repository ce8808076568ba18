"""``PATCH .../messages/:id``: the integrator sets a message's status on an API-channel inbox, on both
flavors, over real HTTP; and the provider's ``DotoHook.wait_for_delivery`` sees what was set.

Facts from CHATWOOT-ACCOUNT.md ("Message status, templates, attachments"): ``status`` is an enum
(``sent``, ``delivered``, ``read``, ``failed``); on API-channel inboxes the integrator may set it
with ``PATCH .../messages/:id`` (``status``, ``external_error``), other inboxes answer 403 there.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
import requests

from airflow_provider_doto.api import Message
from airflow_provider_doto.exceptions import DotoDeliveryError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.stack.local_airflow import wait_until
from tests.testing.emulator.test_account import both, listed, post_reply
from tests.testing.emulator.test_emulator import headers

FORBIDDEN = {"error": "Message status can only be updated on API inboxes"}
NOT_FOUND = {"error": "Resource could not be found"}


def message_url(emu: DotoEmulator, cid: int, message_id: int | str) -> str:
    return f"{emu.messages_url(cid)}/{message_id}"


def patch(
    emu: DotoEmulator, cid: int, message_id: int | str, body: Any, *, token: str | None = None
) -> requests.Response:
    return requests.patch(
        message_url(emu, cid, message_id), headers=headers(emu, token), json=body, timeout=5
    )


@both
@pytest.mark.parametrize("status", ["delivered", "read", "failed", "sent"])
def test_an_api_inbox_message_takes_the_status_patched(doto_emulator: DotoEmulator, status: str) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()  # the API inbox
    sent = post_reply(emu, cid)
    if status == "sent":  # back to sent from a later status: the enum allows any value
        assert patch(emu, cid, sent["id"], {"status": "read"}).status_code == 200

    response = patch(emu, cid, sent["id"], {"status": status})

    assert response.status_code == 200, response.text
    answer = response.json()
    # The updated message, rendered as the flavor renders messages (chatwoot: integer types).
    assert answer["id"] == sent["id"] and answer["status"] == status
    assert answer["message_type"] == sent["message_type"] and answer["content"] == sent["content"]
    assert "external_error" not in answer["content_attributes"]
    # Every later read shows it: the list, the stored message, the conversation's last message.
    assert listed(emu, cid, sent["id"])["status"] == status
    assert emu.message(sent["id"])["status"] == status
    assert emu.conversation(cid)["messages"][0]["status"] == status


@both
def test_failed_with_an_external_error_keeps_the_other_content_attributes(
    doto_emulator: DotoEmulator,
) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = post_reply(emu, cid, content_attributes={"doto": {"key": "k1"}})
    why = "Carrier rejected the message (code 4711)"

    response = patch(emu, cid, sent["id"], {"status": "failed", "external_error": why})

    assert response.status_code == 200, response.text
    expected = {"doto": {"key": "k1"}, "external_error": why}
    assert response.json()["content_attributes"] == expected
    shown = listed(emu, cid, sent["id"])
    assert (shown["status"], shown["content_attributes"]) == ("failed", expected)
    assert emu.message(sent["id"])["content_attributes"] == expected


@both
@pytest.mark.parametrize(
    "body",
    [
        {"status": "bounced"},
        {"status": "Delivered"},
        {"status": ""},
        {"status": None},
        {"external_error": "no status"},
        {"status": "failed", "external_error": 42},
        ["delivered"],
    ],
    ids=["unknown", "capitalised", "empty", "null", "missing", "error-not-string", "not-object"],
)
def test_a_status_off_the_enum_is_422_and_changes_nothing(doto_emulator: DotoEmulator, body: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = post_reply(emu, cid)
    response = patch(emu, cid, sent["id"], body)
    assert response.status_code == 422, response.text
    assert "error" in response.json()
    assert emu.message(sent["id"])["status"] == "sent"
    assert "external_error" not in emu.message(sent["id"])["content_attributes"]


@both
@pytest.mark.parametrize("channel", ["web_widget", "whatsapp", "email"])
def test_other_inboxes_answer_403(doto_emulator: DotoEmulator, channel: str) -> None:
    emu = doto_emulator
    cid = emu.add_conversation(inbox_id=emu.add_inbox(channel))
    emu.add_message(cid, "Hi")  # the customer wrote: a WhatsApp window is open
    sent = post_reply(emu, cid)
    response = patch(emu, cid, sent["id"], {"status": "delivered"})
    assert (response.status_code, response.json()) == (403, FORBIDDEN)
    assert emu.message(sent["id"])["status"] == "sent"
    # The inbox is checked before the message (a before-action): an unknown one is 403 there too.
    assert patch(emu, cid, 999_999, {"status": "delivered"}).status_code == 403


@both
def test_unknown_messages_and_conversations_are_404(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid, other = emu.add_conversation(), emu.add_conversation()
    sent = post_reply(emu, cid)
    for conversation, message_id in ((cid, 999_999), (other, sent["id"]), (999, sent["id"]), (cid, "abc")):
        response = patch(emu, conversation, message_id, {"status": "delivered"})
        assert (response.status_code, response.json()) == (404, NOT_FOUND), (conversation, message_id)
    assert emu.message(sent["id"])["status"] == "sent"


@both
def test_a_deleted_message_is_404_unless_soft_deleted(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = post_reply(emu, cid)
    assert requests.delete(message_url(emu, cid, sent["id"]), headers=headers(emu), timeout=5).ok
    response = patch(emu, cid, sent["id"], {"status": "delivered"})
    if emu.soft_delete:  # chatwoot: the row stays, so it can still be updated
        assert response.status_code == 200 and response.json()["status"] == "delivered"
    else:
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


@both
def test_put_routes_to_the_same_update(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = post_reply(emu, cid)
    response = requests.put(
        message_url(emu, cid, sent["id"]), headers=headers(emu), json={"status": "read"}, timeout=5
    )
    assert response.status_code == 200 and response.json()["status"] == "read"


@both
def test_the_update_needs_the_users_token(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    sent = post_reply(emu, cid)
    url = message_url(emu, cid, sent["id"])
    assert requests.patch(url, json={"status": "read"}, timeout=5).status_code == 401
    assert patch(emu, cid, sent["id"], {"status": "read"}, token="wrong-token").status_code == 401
    emu.add_bot_token("bot-token")
    by_bot = patch(emu, cid, sent["id"], {"status": "read"}, token="bot-token")
    assert (by_bot.status_code, by_bot.json()) == (
        401,
        {"error": "Access to this endpoint is not authorized for bots"},
    )
    assert emu.message(sent["id"])["status"] == "sent"


# -- what the provider sees ---------------------------------------------------------------------------


def read_backs(emu: DotoEmulator, cid: int) -> int:
    """GETs of the conversation's messages that read one message back (a ``before`` bound)."""
    path = emu.messages_url(cid).split(emu.base_url, 1)[1]
    return sum(1 for r in emu.requests if r.method == "GET" and r.path == path and "before" in r.query)


def patch_after_first_read(
    emu: DotoEmulator, cid: int, message: Message, body: dict[str, Any]
) -> threading.Thread:
    """An integrator in another thread: once the hook has read the message back (still ``sent``),
    it waits a little more and PATCHes ``body``."""

    def integrator() -> None:
        wait_until(lambda: read_backs(emu, cid) >= 1, 10, "the hook's first read", interval=0.02)
        threading.Event().wait(0.5)
        response = patch(emu, cid, message.id, body)
        assert response.status_code == 200, response.text

    thread = threading.Thread(target=integrator, name="integrator", daemon=True)
    thread.start()
    return thread


@both
def test_wait_for_delivery_sees_a_status_patched_by_the_integrator(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    hook = DotoHook()
    message = hook.send_message(cid, "Your order has shipped.")
    assert message.status == "sent"
    emu.clear_requests()
    integrator = patch_after_first_read(emu, cid, message, {"status": "delivered"})

    delivered = hook.wait_for_delivery(cid, message, "delivered", timeout=20, poll_interval=0.1)

    integrator.join(5)
    assert (delivered.id, delivered.status) == (message.id, "delivered")
    assert read_backs(emu, cid) >= 2  # it read "sent" first, then the PATCHed status


@both
def test_wait_for_delivery_raises_the_integrators_external_error(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    hook = DotoHook()
    message = hook.send_message(cid, "Your order has shipped.")
    emu.clear_requests()
    why = "Carrier rejected the message (code 4711)"
    integrator = patch_after_first_read(emu, cid, message, {"status": "failed", "external_error": why})

    with pytest.raises(
        DotoDeliveryError, match=rf"marked failed by its channel: {re.escape(why)}$"
    ) as caught:
        hook.wait_for_delivery(cid, message, "delivered", timeout=20, poll_interval=0.1)

    integrator.join(5)
    assert (caught.value.message_id, caught.value.external_error) == (message.id, why)
    assert read_backs(emu, cid) >= 2
    assert [r.method for r in emu.requests].count("POST") == 0  # the wait never sends again
