"""Values a user passes in: timestamps, ids and a message to send.

Rule: pure functions of their arguments, the same checks at DAG parse and at run time; a bad value
raises :class:`DotoConfigError` naming it. No clock: a time is converted, never compared with now.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any, TypeAlias

from airflow_provider_doto.exceptions import DotoConfigError

# Chatwoot refuses longer content (validation, so a 422 after the request went out).
MAX_CONTENT_LENGTH = 150_000
MESSAGE_TYPES = ("incoming", "outgoing", "activity", "template")
SENDABLE_MESSAGE_TYPES = ("outgoing", "incoming")
# Seconds a watch re-reads behind its cursor on every poll: covers messages that share the cursor's
# second or commit late (an older ``created_at`` showing up after a newer message). Kept here, not
# in ``_watch``, as the sensor's default argument: a DAG file importing the sensor loads no more.
DEFAULT_OVERLAP = 10

Timestamp: TypeAlias = "int | float | dt.datetime | str"


def to_timestamp(value: Timestamp, *, name: str = "timestamp") -> int:
    """Unix seconds from an int/float, a (pendulum) datetime or an ISO-8601 / digit string.

    Naive datetimes are taken as UTC, as Airflow does.
    """
    if isinstance(value, bool):
        raise DotoConfigError(f"{name} must be a Unix timestamp or a datetime, got {value!r}.")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise DotoConfigError(f"{name} must be a finite Unix timestamp, got {value!r}.")
        return int(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp())
    if isinstance(value, str):
        text = value.strip()
        # At most 30 digits: int() refuses more than 4,300 with a bare ValueError, and no
        # timestamp needs more than 12 (longer ones still end up refused as out of range).
        if re.fullmatch(r"-?\d{1,30}(\.\d+)?", text):
            return int(text.split(".")[0])  # truncates like int(float), without overflow
        try:
            return to_timestamp(dt.datetime.fromisoformat(text.replace("Z", "+00:00")), name=name)
        except ValueError:
            pass
    shown = value[:40] + "..." if isinstance(value, str) and len(value) > 40 else value
    raise DotoConfigError(
        f"{name} must be a Unix timestamp, a datetime or an ISO-8601 string, got {shown!r}."
    )


def to_id(value: Any, *, name: str) -> int:
    """A positive integer id (conversation, message); strings of digits are accepted (templates)."""
    if isinstance(value, bool):
        raise DotoConfigError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not '²'
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0:
        raise DotoConfigError(f"{name} must be a positive integer, got {value!r}.")
    return value


def validate_send(
    content: Any, message_type: Any, private: Any, content_type: Any, content_attributes: Any
) -> None:
    """Check a message before it is sent; the same rules at DAG parse and at run time."""
    validate_content(content)
    validate_options(message_type, private, content_type, content_attributes)


def validate_content(content: Any) -> None:
    """A message's text: a non-empty string Doto accepts."""
    if not isinstance(content, str) or not content.strip():
        raise DotoConfigError(f"content must be a non-empty string, got {content!r}.")
    if len(content) > MAX_CONTENT_LENGTH:
        raise DotoConfigError(
            f"content is {len(content):,} characters long; Doto accepts at most "
            f"{MAX_CONTENT_LENGTH:,} (MAX_CONTENT_LENGTH)."
        )


def validate_options(message_type: Any, private: Any, content_type: Any, content_attributes: Any) -> None:
    """Everything about a message but its text (known before the text is: a template renders later)."""
    if message_type not in SENDABLE_MESSAGE_TYPES:
        raise DotoConfigError(
            f"message_type must be one of {', '.join(SENDABLE_MESSAGE_TYPES)}, got {message_type!r}."
        )
    if not isinstance(private, bool):
        raise DotoConfigError(f"private must be True or False, got {private!r}.")
    if private and message_type == "incoming":
        raise DotoConfigError("private=True is only for outgoing messages (a note from the team).")
    if not isinstance(content_type, str) or not content_type:
        raise DotoConfigError(f"content_type must be a non-empty string, got {content_type!r}.")
    if content_attributes is not None and not isinstance(content_attributes, Mapping):
        raise DotoConfigError(f"content_attributes must be a dict, got {type(content_attributes).__name__}.")


# What a send may wait for (``api._status`` reads the message back), in the order a message goes
# through them: a later status satisfies an earlier one.
WAIT_FOR: tuple[str, ...] = ("sent", "delivered", "read")
DEFAULT_DELIVERY_TIMEOUT = 60.0  # seconds


def check_attachments_alone(attachments: Any, template: Any, fallback_template: Any = None) -> None:
    """A message with files carries no template (``template`` or ``fallback_template``): the create
    request takes one or the other. Checked before anything is sent."""
    if attachments and (template is not None or fallback_template is not None):
        raise DotoConfigError(
            "a template message cannot carry attachments; send them in a message of their own"
        )


def check_wait_for(wait_for: Any, delivery_timeout: Any = DEFAULT_DELIVERY_TIMEOUT) -> None:
    """``wait_for`` is None or one of :data:`WAIT_FOR`; ``delivery_timeout`` seconds, finite and >= 0."""
    if wait_for is not None and wait_for not in WAIT_FOR:
        raise DotoConfigError(f"wait_for must be None or one of {', '.join(WAIT_FOR)}, got {wait_for!r}.")
    if (
        isinstance(delivery_timeout, bool)
        or not isinstance(delivery_timeout, int | float)
        or not math.isfinite(delivery_timeout)
        or delivery_timeout < 0
    ):
        raise DotoConfigError(f"delivery_timeout must be a number of seconds >= 0, got {delivery_timeout!r}.")
