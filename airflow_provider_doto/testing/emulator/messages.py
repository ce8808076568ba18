"""What the emulator accepts as a message: the type vocabulary, the POST body rules, the errors.

Everything here holds for both flavors. ``Invalid`` becomes a 422, ``Forbidden`` a 403 and
``NotFound`` a 404 in the app; ``validate_post`` is the one place a POST body is judged (with
Chatwoot's wording), ``validate_status_update`` the one place a status PATCH is, and
``marked_deleted`` the one place a message is deleted.
"""

from __future__ import annotations

import copy
from typing import Any

# Position = the integer Chatwoot uses for the type in lists.
MESSAGE_TYPES: tuple[str, ...] = ("incoming", "outgoing", "activity", "template")
CONTENT_TYPES = frozenset(
    {
        "text", "input_text", "input_textarea", "input_email", "input_select", "cards", "form",
        "article", "incoming_email", "input_csat", "integrations", "sticker", "voice_call",
    }
)  # fmt: skip
DELETED_CONTENT = "This message was deleted"
DEFAULT_CONTACT = "Jane Doe"
DEFAULT_AGENT = "Doto Agent"
DEFAULT_BOT = "Doto Bot"
DEFAULT_AGENT_EMAIL = "agent@doto.example"


class NotFound(LookupError):
    """The account, conversation or message does not exist (HTTP 404)."""


class Invalid(ValueError):
    """The request is well-formed HTTP but not an acceptable message (HTTP 422)."""


class Forbidden(PermissionError):
    """The token may not do this to this resource (HTTP 403)."""


# ``Message.statuses`` (enum 0-3): what a PATCH may set on an API-inbox message.
MESSAGE_STATUSES: tuple[str, ...] = ("sent", "delivered", "read", "failed")
STATUS_UPDATE_FORBIDDEN = "Message status can only be updated on API inboxes"


def validate_post(body: Any) -> dict[str, Any]:
    """The fields of a new message from a POST body, or ``Invalid`` naming the first bad one."""
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object")
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise Invalid("Content can't be blank")
    message_type = body.get("message_type")
    if message_type not in ("outgoing", "incoming"):
        raise Invalid(f"'{message_type}' is not a valid message_type; use 'outgoing' or 'incoming'")
    private = body.get("private")
    if private is None:
        private = False
    if not isinstance(private, bool):
        raise Invalid("private must be a boolean")
    content_type = body.get("content_type") or "text"
    if content_type not in CONTENT_TYPES:
        raise Invalid(f"'{content_type}' is not a valid content_type")
    attributes = body.get("content_attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise Invalid("content_attributes must be an object")
    template_params = body.get("template_params")
    if template_params is not None and not isinstance(template_params, dict):
        raise Invalid("template_params must be an object")
    return {
        "template_params": copy.deepcopy(template_params),
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": content_type,
        "content_attributes": copy.deepcopy(attributes),
    }


def validate_status_update(body: Any) -> tuple[str, str | None]:
    """``status`` and ``external_error`` (None: not given) of a PATCH body, or ``Invalid``: a status
    off the enum is refused as Rails refuses an enum value it does not know."""
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object")
    status = body.get("status")
    if status not in MESSAGE_STATUSES:
        raise Invalid(f"'{status}' is not a valid status")
    external_error = body.get("external_error")
    if external_error is not None and not isinstance(external_error, str):
        raise Invalid("external_error must be a string")
    return status, external_error


def list_meta() -> dict[str, Any]:
    """The doto flavor's list ``meta``: the conversation's contact, nobody assigned."""
    return {
        "labels": [],
        "additional_attributes": {},
        "contact": {"id": 1, "name": DEFAULT_CONTACT},
        "assignee": None,
        "agent_last_seen_at": None,
        "assignee_last_seen_at": None,
    }


def marked_deleted(message: dict[str, Any], soft: bool) -> dict[str, Any]:
    """A deleted copy of ``message``: soft = Chatwoot's placeholder, hard = flagged and hidden."""
    if soft:
        return {
            **message,
            "content": DELETED_CONTENT,
            "content_type": "text",
            "content_attributes": {"deleted": True},
            "attachments": [],
        }
    return {**message, "content_attributes": {**message["content_attributes"], "deleted": True}}
