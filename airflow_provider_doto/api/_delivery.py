"""Duplicate-safe sending: a delivery key per task instance and conversation.

A retried task must not post its message twice. The key rides in the message's
``content_attributes``; a retry first lists what was sent since its run started and looks for the
message an earlier try delivered. Rule: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from airflow_provider_doto.api._messages import Message

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
    """
    candidates = [m for m in messages if not m.is_deleted]
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
