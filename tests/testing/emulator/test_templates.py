"""The emulator's template registry: a WhatsApp inbox's approved templates, on both flavors.

Facts from CHATWOOT-ACCOUNT.md: a message with ``template_params`` goes out as a template, window or
not; a name the channel does not know ends ``failed`` with Meta's error as ``external_error``; free
text outside the window fails with "Template not found or invalid template name". The parameters
are stored in the message's ``additional_attributes``, which Chatwoot's message views leave out.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from tests.testing.emulator.test_account import HOUR, T0, WINDOW_FAILURE, both, frozen, listed, post_reply
from tests.testing.emulator.test_emulator import headers, printed_values, serving, stop

UNKNOWN_TEMPLATE = "(#132001) Template name does not exist in the translation"


def template(name: str = "order_update", language: str = "en_US") -> dict[str, Any]:
    return {
        "name": name,
        "category": "UTILITY",
        "language": language,
        "processed_params": {"body": {"1": "#1042"}},
    }


def closed_whatsapp(emu: DotoEmulator, *templates: str) -> tuple[int, int]:
    """A WhatsApp conversation whose customer last wrote 25 hours ago, and its inbox."""
    inbox = emu.add_inbox("whatsapp")
    for name in templates:
        emu.add_template(inbox, name)
    cid = emu.add_conversation(inbox_id=inbox)
    emu.add_message(cid, "hi", created_at=T0 - 25 * HOUR)
    return cid, inbox


@both
def test_a_known_template_outside_the_window_is_delivered(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.window_failure_delay = 0
    emu.delivery_receipts = (1, 2)
    cid, _ = closed_whatsapp(emu, "order_update")
    answer = post_reply(emu, cid, template_params=template())
    assert answer["status"] == "sent"
    assert listed(emu, cid, answer["id"])["status"] == "sent"
    emu.clock.advance(1)
    assert listed(emu, cid, answer["id"])["status"] == "delivered"
    emu.clock.advance(1)
    read = listed(emu, cid, answer["id"])
    assert read["status"] == "read" and "external_error" not in read["content_attributes"]
    assert "additional_attributes" not in read  # Chatwoot's message views leave them out
    assert emu.message(answer["id"])["additional_attributes"] == {"template_params": template()}


@both
@pytest.mark.parametrize(
    "sent", [template("no_such_template"), template(language="pt_BR")], ids=["name", "language"]
)
def test_an_unknown_template_fails_after_the_delay_with_metas_error(
    doto_emulator: DotoEmulator, sent: dict[str, Any]
) -> None:
    emu = frozen(doto_emulator)
    emu.delivery_receipts = (0, 0)  # a known one would be read at once: this one never is
    inbox = emu.add_inbox("whatsapp")
    emu.add_template(inbox, "order_update", "en_US")
    cid = emu.add_conversation(inbox_id=inbox)
    emu.add_message(cid, "hi")  # inside the window: an unknown template fails all the same
    answer = post_reply(emu, cid, template_params=sent)
    assert answer["status"] == "sent"  # the 200 says nothing yet
    emu.clock.advance(2)
    assert listed(emu, cid, answer["id"])["status"] == "sent"
    emu.clock.advance(1)  # window_failure_delay, 3 s by default
    failed = listed(emu, cid, answer["id"])
    assert failed["status"] == "failed"
    assert failed["content_attributes"]["external_error"] == UNKNOWN_TEMPLATE


@both
def test_free_text_outside_the_window_keeps_its_own_error(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.window_failure_delay = 0
    cid, _ = closed_whatsapp(emu, "order_update")
    answer = post_reply(emu, cid)
    failed = listed(emu, cid, answer["id"])
    assert failed["status"] == "failed"
    assert failed["content_attributes"]["external_error"] == WINDOW_FAILURE
    assert "additional_attributes" not in emu.message(answer["id"])


@both
def test_a_template_in_a_channel_without_templates_changes_nothing(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.delivery_receipts = (0, 0)
    cid = emu.add_conversation(inbox_id=emu.add_inbox("web_widget"))
    answer = post_reply(emu, cid, template_params=template("anything"))
    assert listed(emu, cid, answer["id"])["status"] == "read"  # no window, no registry


@both
def test_template_params_must_be_an_object(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid, _ = closed_whatsapp(emu)
    body = {"content": "hi", "message_type": "outgoing", "template_params": "order_update"}
    response = requests.post(emu.messages_url(cid), headers=headers(emu), json=body, timeout=5)
    assert response.status_code == 422 and "template_params" in response.text
    assert emu.messages(cid)[-1]["content"] == "hi" and len(emu.messages(cid)) == 1


@both
def test_the_registry_is_per_inbox_checked_and_reset(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    one, two = emu.add_inbox("whatsapp"), emu.add_inbox("twilio_whatsapp")
    emu.add_template(one, "order_update", "en_US")
    emu.add_template(one, "welcome")
    assert emu.templates(one) == [("order_update", "en_US"), ("welcome", None)]
    assert emu.templates(two) == []
    with pytest.raises(ValueError, match="templates are for WhatsApp inboxes"):
        emu.add_template(1, "order_update")  # the API inbox
    with pytest.raises(ValueError, match="unknown inbox"):
        emu.add_template(99, "order_update")
    with pytest.raises(ValueError, match="non-empty name"):
        emu.add_template(one, "")
    emu.reset()
    emu.add_inbox("whatsapp", inbox_id=one)
    assert emu.templates(one) == []


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_cli_approves_templates_in_every_whatsapp_inbox(flavor: str) -> None:
    with serving(
        "--port", "0", "--conversations", "40", "--window-failure-delay", "0", "--delivery-receipts", "0,0",
        "--template", "order_update:en_US", "--flavor", flavor,
    ) as process:  # fmt: skip
        values = printed_values(process)
        conn = json.loads(shlex.split(values["AIRFLOW_CONN_DOTO_DEFAULT"])[0])
        base = f"{values['base_url']}/api/v1/accounts/1/conversations"
        auth = {"api_access_token": conn["password"]}
        conversations = []
        for page in (1, 2):
            params = {"status": "all", "page": page}
            conversations += requests.get(base, headers=auth, params=params, timeout=5).json()["data"][
                "payload"
            ]
        closed = next(
            c for c in conversations if c["meta"]["channel"] == "Channel::Whatsapp" and not c["can_reply"]
        )
        url = f"{base}/{closed['id']}/messages"
        statuses = {}
        for name in ("order_update", "unknown"):
            body = {"content": "Your order", "message_type": "outgoing", "template_params": template(name)}
            created = requests.post(url, headers=auth, json=body, timeout=5).json()
            listed_now = requests.get(url, headers=auth, timeout=5).json()["payload"]
            statuses[name] = next(m for m in listed_now if m["id"] == created["id"])
        assert statuses["order_update"]["status"] == "read"
        assert statuses["unknown"]["status"] == "failed"
        assert statuses["unknown"]["content_attributes"]["external_error"] == UNKNOWN_TEMPLATE
        stop(process)
