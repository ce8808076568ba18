"""``_templates``: Chatwoot's ``template_params``, checked, and the sends that carry one."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._delivery import check_send_once, send_once_flow
from airflow_provider_doto.api._flows import send_message_flow
from airflow_provider_doto.api._http import send_request
from airflow_provider_doto.api._templates import check_template, check_template_use
from airflow_provider_doto.exceptions import DotoConfigError, DotoReplyWindowError

from ._support import T0, answer, drive, msg
from .test_window import conversation_body

TEMPLATE: dict[str, Any] = {
    "name": "order_confirmation",
    "category": "MARKETING",
    "language": "en",
    "processed_params": {
        "body": {"1": "121212"},
        "header": {"media_url": "https://picsum.photos/200/300", "media_type": "image"},
        "buttons": [{"type": "copy_code", "parameter": "SAVE20"}],
    },
}


def with_(path: str, value: Any) -> dict[str, Any]:
    """TEMPLATE with the field at ``path`` (dotted; ``-`` deletes it) set to ``value``."""
    template = copy.deepcopy(TEMPLATE)
    *parents, last = path.split(".")
    node: Any = template
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value == "-":
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return template


def test_chatwoots_documented_examples_pass_as_they_are():
    assert check_template(TEMPLATE) == TEMPLATE
    named_body = {
        "name": "discount_coupon",
        "category": "MARKETING",
        "language": "en",
        "processed_params": {
            "body": {"discount_percentage": "30"},
            "buttons": [{"type": "copy_code", "parameter": "SAVE20"}],
        },
    }
    assert check_template(named_body) == named_body
    assert check_template(with_("processed_params", {}))["processed_params"] == {}


def test_the_checked_copy_is_plain_json_and_not_the_callers_object():
    given = with_("processed_params.buttons", ({"type": "url", "parameter": "x"},))
    checked = check_template(given)
    assert checked["processed_params"]["buttons"] == [{"type": "url", "parameter": "x"}]
    checked["processed_params"]["body"]["1"] = "changed"
    assert given["processed_params"]["body"]["1"] == "121212"


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("name", "-", r"template lacks 'name'"),
        ("language", "", r"template\.language must be a non-empty string"),
        ("category", "PROMO", r"template\.category must be one of UTILITY, MARKETING"),
        ("processed_params", [], r"template\.processed_params must be a dict, got list"),
        ("processed_params.params", {}, r"template\.processed_params has unknown key\(s\) 'params'"),
        ("processed_params.body.1", 3, r"template\.processed_params\.body\['1'\] must be a non-empty string"),
        ("processed_params.header.media_type", "audio", r"header\.media_type must be one of image, video"),
        ("processed_params.header.media_url", "-", r"template\.processed_params\.header lacks 'media_url'"),
        ("processed_params.buttons", {"type": "url"}, r"template\.processed_params\.buttons must be a list"),
        ("processed_params.buttons.0.type", "call", r"buttons\[0\]\.type must be one of url, copy_code"),
        ("processed_params.buttons.0.parameter", "-", r"buttons\[0\] lacks 'parameter'"),
        ("params", {}, r"template has unknown key\(s\) 'params'"),
    ],
)
def test_a_wrong_field_is_named(path: str, value: Any, match: str):
    with pytest.raises(DotoConfigError, match=match):
        check_template(with_(path, value))


def test_not_a_dict_is_refused_with_its_name():
    with pytest.raises(DotoConfigError, match=r"fallback_template must be a dict, got str"):
        check_template("order_confirmation", name="fallback_template")


def test_pending_leaves_pass_at_parse_and_the_structure_is_still_checked():
    def pending(value: Any) -> bool:
        return isinstance(value, str) and "{{" in value

    check_template(with_("category", "{{ params.category }}"), pending=pending)
    check_template(with_("processed_params.body.1", "{{ params.order }}"), pending=pending)
    with pytest.raises(DotoConfigError, match="unknown key"):
        check_template(with_("nam", "{{ x }}"), pending=pending)


@pytest.mark.parametrize(
    ("template", "fallback", "message_type", "private", "match"),
    [
        (TEMPLATE, TEMPLATE, "outgoing", False, "not both"),
        (TEMPLATE, None, "outgoing", True, r"template is for public outgoing messages"),
        (None, TEMPLATE, "incoming", False, r"fallback_template is for public outgoing messages"),
    ],
)
def test_where_a_template_may_go(template, fallback, message_type, private, match):
    with pytest.raises(DotoConfigError, match=match):
        check_template_use(template, fallback, message_type, private)


def test_the_create_body_carries_template_params():
    request = send_request(1, 7, "Your order 121212 is confirmed.", template_params=TEMPLATE)
    assert request.json is not None and request.json["template_params"] == TEMPLATE
    assert "template_params" not in (send_request(1, 7, "hi").json or {})


CREATED = answer(msg(11, T0, message_type="outgoing", content="hi"))


def test_a_template_is_sent_without_reading_the_window():
    message, sent = drive(
        send_message_flow(1, 7, "hi", template=TEMPLATE, check_reply_window=True), [CREATED]
    )
    assert message.id == 11 and [r.method for r in sent] == ["POST"]
    assert sent[0].json is not None and sent[0].json["template_params"] == TEMPLATE


@pytest.mark.parametrize(("can_reply", "templated"), [(True, False), (False, True), (None, False)])
def test_the_fallback_is_sent_only_when_the_window_is_closed(can_reply, templated):
    flow = send_message_flow(1, 7, "hi", fallback_template=TEMPLATE, check_reply_window=False)
    _message, sent = drive(flow, [answer(conversation_body(can_reply=can_reply)), CREATED])
    assert [r.method for r in sent] == ["GET", "POST"]  # the fallback implies the check
    body = sent[1].json or {}
    assert body["content"] == "hi" and ("template_params" in body) is templated


def test_without_a_fallback_a_closed_window_still_sends_nothing():
    with pytest.raises(DotoReplyWindowError):
        drive(
            send_message_flow(1, 7, "hi", check_reply_window=True),
            [answer(conversation_body(can_reply=False))],
        )


def test_the_error_names_the_argument_that_was_wrong():
    with pytest.raises(DotoConfigError, match=r"^fallback_template\.category must be one of"):
        drive(send_message_flow(1, 7, "hi", fallback_template=with_("category", "x")), [])
    with pytest.raises(DotoConfigError, match=r"^template lacks 'language'"):
        drive(send_message_flow(1, 7, "hi", template=with_("language", "-")), [])


def test_a_bad_template_sends_nothing_not_even_the_window_read():
    for kwargs in ({"template": with_("category", "x")}, {"fallback_template": with_("name", "-")}):
        with pytest.raises(DotoConfigError):
            drive(send_message_flow(1, 7, "hi", check_reply_window=True, **kwargs), [])
        with pytest.raises(DotoConfigError):
            check_send_once(7, "hi", **kwargs)
        with pytest.raises(DotoConfigError):
            drive(send_once_flow(1, 7, "hi", key="k", look_back_since=T0, flavor="doto", **kwargs), [])


@pytest.mark.parametrize("can_reply", [True, False])
def test_a_retry_finds_what_an_earlier_try_sent_free_text_or_template(can_reply):
    """The key and the content are the same whichever was chosen: the retry never sends again,
    even when the window changed in between (it looks back before it reads the window)."""
    key = "k1"
    earlier = msg(
        5,
        T0,
        message_type="outgoing",
        content="hi",
        content_attributes={api.DELIVERY_KEY_ATTRIBUTE: key},
        **({} if can_reply else {"additional_attributes": {"template_params": TEMPLATE}}),
    )
    flow = send_once_flow(1, 7, "hi", key=key, look_back_since=T0, flavor="doto", fallback_template=TEMPLATE)
    (message, already), sent = drive(flow, [answer({"payload": [earlier]})])
    assert (message.id, already) == (5, True) and [r.method for r in sent] == ["GET"]


def test_a_first_try_with_a_fallback_stamps_the_key_on_the_template_too():
    flow = send_once_flow(1, 7, "hi", key="k9", flavor="doto", fallback_template=TEMPLATE)
    (_message, already), sent = drive(flow, [answer(conversation_body(can_reply=False)), CREATED])
    body = sent[-1].json or {}
    assert already is False and body["template_params"] == TEMPLATE
    assert body["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] == "k9"
