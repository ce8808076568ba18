"""``_window``: whether a public outgoing message may be sent now, decided from the conversation."""

from __future__ import annotations

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._delivery import send_once_flow
from airflow_provider_doto.api._flows import send_message_flow
from airflow_provider_doto.api._window import needs_reply_window, reply_window_error, reply_window_flow
from airflow_provider_doto.exceptions import DotoConfigError, DotoReplyWindowError

from ._support import T0, answer, drive, msg


def conversation_body(cid: int = 7, *, can_reply: object = True, channel: str = "Channel::Whatsapp") -> dict:
    body = {"id": cid, "last_activity_at": T0, "inbox_id": 3, "meta": {"channel": channel}}
    if can_reply is not None:
        body["can_reply"] = can_reply
    return body


@pytest.mark.parametrize(
    ("message_type", "private", "needed"),
    [("outgoing", False, True), ("outgoing", True, False), ("incoming", False, False)],
)
def test_only_public_outgoing_messages_need_the_window(message_type, private, needed):
    assert needs_reply_window(message_type, private) is needed


def test_a_closed_window_names_the_conversation_its_channel_and_the_window():
    conversation = api.Conversation.from_dict(conversation_body(can_reply=False))
    error = reply_window_error(conversation)
    assert isinstance(error, DotoReplyWindowError)
    assert (error.conversation_id, error.channel) == (7, "Channel::Whatsapp")
    text = str(error)
    assert "conversation 7" in text and "Channel::Whatsapp" in text and "24 hours" in text
    assert "nothing was sent" in text


@pytest.mark.parametrize("can_reply", [True, None], ids=["open", "server-does-not-say"])
def test_an_open_or_unknown_window_sends(can_reply):
    assert reply_window_error(api.Conversation.from_dict(conversation_body(can_reply=can_reply))) is None


def test_an_unknown_channel_still_names_what_it_can():
    conversation = api.Conversation.from_dict({"id": 3, "last_activity_at": T0, "can_reply": False})
    error = reply_window_error(conversation)
    assert error is not None and error.channel is None and "conversation 3" in str(error)


def test_the_flow_reads_the_conversation_once_and_raises_when_closed():
    with pytest.raises(DotoReplyWindowError):
        drive(reply_window_flow(1, 7), [answer(conversation_body(can_reply=False))])
    found, sent = drive(reply_window_flow(1, 7), [answer(conversation_body())])
    assert found.id == 7 and [(r.method, r.path) for r in sent] == [
        ("GET", "/api/v1/accounts/1/conversations/7")
    ]


def test_private_notes_and_incoming_messages_are_never_checked():
    assert drive(reply_window_flow(1, 7, private=True), []) == (None, [])
    assert drive(reply_window_flow(1, 7, message_type="incoming"), []) == (None, [])


def test_a_checked_send_posts_only_after_an_open_window():
    created = answer(msg(11, T0, message_type="outgoing"))
    message, sent = drive(
        send_message_flow(1, 7, "hi", check_reply_window=True), [answer(conversation_body()), created]
    )
    assert message.id == 11 and [r.method for r in sent] == ["GET", "POST"]
    with pytest.raises(DotoReplyWindowError):
        drive(
            send_message_flow(1, 7, "hi", check_reply_window=True),
            [answer(conversation_body(can_reply=False))],
        )
    _note, sent = drive(send_message_flow(1, 7, "hi", private=True, check_reply_window=True), [created])
    assert [r.method for r in sent] == ["POST"]


def test_bad_input_is_refused_before_the_window_is_read():
    with pytest.raises(DotoConfigError):
        drive(send_message_flow(1, 7, "", check_reply_window=True), [])


def test_send_once_looks_back_before_the_window():
    """A retry finds what an earlier try delivered even when the window has closed since."""
    key = "k1"
    delivered = msg(
        5, T0, message_type="outgoing", content="hi", content_attributes={api.DELIVERY_KEY_ATTRIBUTE: key}
    )
    (message, already), sent = drive(
        send_once_flow(1, 7, "hi", key=key, look_back_since=T0, flavor="doto", check_reply_window=True),
        [answer({"payload": [delivered]})],
    )
    assert (message.id, already) == (5, True) and [r.method for r in sent] == ["GET"]
    with pytest.raises(DotoReplyWindowError):
        drive(
            send_once_flow(1, 7, "hi", key=key, look_back_since=T0, flavor="doto", check_reply_window=True),
            [answer({"payload": []}), answer(conversation_body(can_reply=False))],
        )


def test_a_listed_conversation_decides_the_window_without_a_request():
    created = answer(msg(11, T0, message_type="outgoing"))
    listed_open = api.Conversation.from_dict(conversation_body())
    message, sent = drive(
        send_message_flow(1, 7, "hi", check_reply_window=True, conversation=listed_open), [created]
    )
    assert message.id == 11 and [r.method for r in sent] == ["POST"]
    listed_closed = api.Conversation.from_dict(conversation_body(can_reply=False))
    with pytest.raises(DotoReplyWindowError):
        drive(send_message_flow(1, 7, "hi", check_reply_window=True, conversation=listed_closed), [])
    template = {
        "name": "t",
        "category": "UTILITY",
        "language": "en_US",
        "processed_params": {"body": {"1": "x"}},
    }
    _message, sent = drive(
        send_once_flow(1, 7, "hi", key="k", fallback_template=template, conversation=listed_closed), [created]
    )
    assert [r.method for r in sent] == ["POST"] and sent[0].json["template_params"] == template


def test_a_listed_conversation_must_be_the_one_the_message_goes_to():
    other = api.Conversation.from_dict(conversation_body(8))
    for flow in (
        send_message_flow(1, 7, "hi", check_reply_window=True, conversation=other),
        send_once_flow(1, 7, "hi", key="k", check_reply_window=True, conversation=other),
        send_message_flow(1, 7, "hi", conversation={"id": 7, "can_reply": True}),  # type: ignore[arg-type]
    ):
        with pytest.raises(DotoConfigError, match="conversation"):
            drive(flow, [])
