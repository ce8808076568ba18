"""Duplicate-safe sending: a delivery key per task instance and conversation, and the send-once flow.

A retried task must not post its message twice. The key rides in the message's
``content_attributes``; a retry first lists what was sent since its run started and returns the
message an earlier try delivered. Rule: no I/O, no clock: the caller gives the key and the time to
look back from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_doto.api._conversations import Conversation
from airflow_provider_doto.api._flavors import ServerReading
from airflow_provider_doto.api._flows import send_message_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.api._listing import list_messages_flow
from airflow_provider_doto.api._messages import Message
from airflow_provider_doto.api._templates import check_template, check_template_use
from airflow_provider_doto.api._uploads import Upload
from airflow_provider_doto.api._values import Timestamp, to_id, to_timestamp, validate_send
from airflow_provider_doto.api._window import check_listed

DELIVERY_KEY_ATTRIBUTE = "airflow_delivery_key"


def delivery_key(
    dag_id: str, task_id: str, run_id: str, map_index: int = -1, conversation_id: int = 0
) -> str:
    """A stable key for "this task instance's message to this conversation" (not secret)."""
    text = f"{dag_id}\x1f{task_id}\x1f{run_id}\x1f{map_index}\x1f{conversation_id}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def find_delivered(
    messages: Iterable[Message], key: str, content: str, message_type: str, private: bool
) -> Message | None:
    """The message an earlier try already delivered, if any.

    Matched by the delivery key stamped in ``content_attributes``; when the server does not echo
    content attributes back, by identical content, type and privacy (the caller bounds the window).
    A message its channel marked ``failed`` was not delivered: a retry may send it again.
    """
    candidates = [m for m in messages if not m.is_deleted and m.status != "failed"]
    for message in candidates:
        if message.content_attributes.get(DELIVERY_KEY_ATTRIBUTE) == key:
            return message
    for message in candidates:
        if (
            DELIVERY_KEY_ATTRIBUTE not in message.content_attributes
            and message.content == content
            and message.message_type == message_type
            and message.private == private
        ):
            return message
    return None


def check_send_once(
    conversation_id: int | str,
    content: str,
    *,
    look_back_since: Timestamp | None = None,
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: Mapping[str, Any] | None = None,
    check_reply_window: bool = False,
    template: Mapping[str, Any] | None = None,
    fallback_template: Mapping[str, Any] | None = None,
    conversation: Conversation | None = None,
) -> int:
    """What :func:`send_once_flow` checks before its first request; the conversation id, checked.

    A caller that probes the server's reading before the flow runs checks this first, so bad input
    sends nothing, not even the probe.
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    check_listed(conversation, conversation_id)
    validate_send(content, message_type, private, content_type, content_attributes)
    check_template_use(template, fallback_template, message_type, private)
    for name, value in (("template", template), ("fallback_template", fallback_template)):
        if value is not None:
            check_template(value, name=name)
    if look_back_since is not None:
        to_timestamp(look_back_since, name="look_back_since")
    return conversation_id


def send_once_flow(
    account_id: int,
    conversation_id: int | str,
    content: str,
    *,
    key: str,
    look_back_since: Timestamp | None = None,
    flavor: str | ServerReading = "auto",
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: Mapping[str, Any] | None = None,
    check_reply_window: bool = False,
    template: Mapping[str, Any] | None = None,
    fallback_template: Mapping[str, Any] | None = None,
    attachments: Sequence[Upload] = (),
    conversation: Conversation | None = None,
) -> Generator[DotoRequest, DotoResponse, tuple[Message, bool]]:
    """Send a message at most once per delivery ``key``: ``(message, already_delivered)``.

    The message carries ``key`` in its ``content_attributes``. With ``look_back_since`` (a retry:
    when its run started) the conversation's messages created since then are listed first
    (``flavor`` says how to page them), and the one an earlier try delivered is returned instead
    of posting again (:func:`find_delivered`); without it, the message is simply sent. Everything
    is checked before the first request. ``check_reply_window``: a message not delivered yet is
    sent only when its conversation's reply window is open (``send_message_flow``; a listed
    ``conversation`` decides it without a request).
    ``template`` / ``fallback_template``: as for ``send_message_flow``; the key and the content are
    the same whether the free text or the template was sent, so a retry finds either, never sends twice.
    ``attachments`` (checked :class:`~api._uploads.Upload` values) go as a multipart form whose
    ``content_attributes`` field carries the key as well, so a retry finds an attachment message too.
    """
    conversation_id = check_send_once(
        conversation_id,
        content,
        look_back_since=look_back_since,
        message_type=message_type,
        private=private,
        content_type=content_type,
        content_attributes=content_attributes,
        template=template,
        fallback_template=fallback_template,
        conversation=conversation,
    )
    if look_back_since is not None:
        # ``after`` is strict: a message created in the very second the run started counts too.
        since = to_timestamp(look_back_since, name="look_back_since") - 1
        earlier = yield from list_messages_flow(account_id, conversation_id, after=since, flavor=flavor)
        found = find_delivered(earlier, key, content, message_type, private)
        if found is not None:
            return found, True
    message = yield from send_message_flow(
        account_id,
        conversation_id,
        content,
        message_type=message_type,
        private=private,
        content_type=content_type,
        content_attributes={**(content_attributes or {}), DELIVERY_KEY_ATTRIBUTE: key},
        check_reply_window=check_reply_window,
        template=template,
        fallback_template=fallback_template,
        attachments=attachments,
        conversation=conversation,
    )
    return message, False
