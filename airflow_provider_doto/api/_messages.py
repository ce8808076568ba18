"""Messages: the typed :class:`Message` a payload becomes, and the parsers of Doto's answers.

Rule: whatever the server sends becomes Messages or a :class:`DotoResponseError`, never a bare
exception; ``raw`` keeps the payload as sent. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_doto.api._attachments import Attachment, parse_attachments
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, parse_json
from airflow_provider_doto.api._values import MESSAGE_TYPES, to_timestamp
from airflow_provider_doto.exceptions import DotoConfigError, DotoResponseError

# Chatwoot sends message_type as an integer in lists.
_MESSAGE_TYPE_BY_INT = dict(enumerate(MESSAGE_TYPES))
# created_at bounds that datetime can represent (years 1 to 9999).
_MIN_TIMESTAMP, _MAX_TIMESTAMP = -62135596800, 253402300799


@dataclass(frozen=True)
class Sender:
    id: int | None
    name: str | None
    type: str | None


@dataclass(frozen=True)
class Message:
    """A Doto message, normalised: ``message_type`` is always a string, absent keys defaulted.

    ``raw`` keeps the payload exactly as the server sent it. ``to_dict()`` is the JSON-safe form
    that goes to XCom and trigger events.
    """

    id: int
    content: str | None
    message_type: str
    created_at: int
    private: bool = False
    status: str | None = None
    content_type: str = "text"
    content_attributes: Mapping[str, Any] = field(default_factory=dict)
    sender: Sender | None = None
    # Its files (``api._attachments``): each one's ``data_url`` redirects to where the bytes are.
    attachments: tuple[Attachment, ...] = ()
    # Why the channel refused it (``content_attributes.external_error``), set with status "failed".
    external_error: str | None = None
    # Set by the account watch, which reports messages of many conversations; None elsewhere.
    conversation_id: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def created_at_datetime(self):
        """``created_at`` as a pendulum DateTime in UTC."""
        import pendulum

        return pendulum.from_timestamp(self.created_at, tz="UTC")

    @property
    def is_deleted(self) -> bool:
        """Chatwoot deletes softly: the message stays with ``content_attributes.deleted``."""
        return bool(self.content_attributes.get("deleted"))

    @property
    def sender_type(self) -> str | None:
        return self.sender.type if self.sender else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "message_type": self.message_type,
            "created_at": self.created_at,
            "private": self.private,
            "status": self.status,
            "content_type": self.content_type,
            "content_attributes": dict(self.content_attributes),
            "sender": None
            if self.sender is None
            else {"id": self.sender.id, "name": self.sender.name, "type": self.sender.type},
            "attachments": [a.to_dict() for a in self.attachments],  # always there: XComs read it
        } | (
            ({} if self.conversation_id is None else {"conversation_id": self.conversation_id})
            | ({} if self.external_error is None else {"external_error": self.external_error})
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """Rebuild from ``to_dict()`` output or a raw payload (same parser), ``conversation_id`` too."""
        message = parse_message(data)
        cid = data.get("conversation_id")
        if isinstance(cid, int) and not isinstance(cid, bool) and cid > 0:
            return replace(message, conversation_id=cid)
        return message


def parse_message(data: Any, *, where: str = "message") -> Message:
    """Normalise one message payload; anything unusable raises :class:`DotoResponseError`."""

    def bad(why: str) -> DotoResponseError:
        return DotoResponseError(f"Doto returned a {where} that is not a valid message: {why}")

    if not isinstance(data, Mapping):
        raise bad(f"expected an object, got {type(data).__name__}")
    mid = data.get("id")
    if isinstance(mid, bool) or not isinstance(mid, int):
        raise bad(f"'id' must be an integer, got {type(mid).__name__}")
    created = data.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        if isinstance(created, str):
            try:
                created = to_timestamp(created, name="created_at")
            except DotoConfigError as err:  # names the value, clipped: never a body's worth of text
                raise bad("'created_at' is not a timestamp") from err
        else:
            raise bad(f"'created_at' must be a Unix timestamp, got {type(created).__name__}")
    if not _MIN_TIMESTAMP <= created <= _MAX_TIMESTAMP:  # also NaN and infinities (json accepts them)
        raise bad(f"'created_at' {created!r} is out of range")
    raw_type = data.get("message_type")
    if isinstance(raw_type, int) and not isinstance(raw_type, bool) and raw_type in _MESSAGE_TYPE_BY_INT:
        message_type = _MESSAGE_TYPE_BY_INT[raw_type]
    elif isinstance(raw_type, str) and raw_type:
        message_type = raw_type
    else:
        raise bad(f"unknown 'message_type' {raw_type!r}")
    content = data.get("content")
    if content is not None and not isinstance(content, str):
        content = str(content)
    attributes = data.get("content_attributes")
    attributes = dict(attributes) if isinstance(attributes, Mapping) else {}
    sender_data = data.get("sender")
    sender = None
    if isinstance(sender_data, Mapping):
        sid = sender_data.get("id")
        sender = Sender(
            id=sid if isinstance(sid, int) and not isinstance(sid, bool) else None,
            name=sender_data.get("name") if isinstance(sender_data.get("name"), str) else None,
            type=sender_data.get("type") if isinstance(sender_data.get("type"), str) else None,
        )
    status = data.get("status")
    content_type = data.get("content_type")
    external_error = attributes.get("external_error")
    return Message(
        id=mid,
        content=content,
        message_type=message_type,
        created_at=int(created),
        private=data.get("private") is True,
        status=status if isinstance(status, str) else None,
        content_type=content_type if isinstance(content_type, str) and content_type else "text",
        content_attributes=attributes,
        sender=sender,
        attachments=parse_attachments(data.get("attachments")),
        external_error=external_error if isinstance(external_error, str) and external_error else None,
        raw=dict(data),
    )


def parse_message_list(request: DotoRequest, response: DotoResponse) -> list[Message]:
    data = parse_json(request, response)
    payload = data.get("payload") if isinstance(data, Mapping) else data
    if not isinstance(payload, list):
        raise DotoResponseError(
            f"Doto {request.describe()} returned no 'payload' list of messages",
            method=request.method,
            path=request.path,
        )
    try:
        return [parse_message(item, where=f"message in {request.describe()}") for item in payload]
    except DotoResponseError as error:
        error.method, error.path = request.method, request.path
        raise


def parse_single_message(request: DotoRequest, response: DotoResponse) -> Message:
    data = parse_json(request, response)
    # Some deployments wrap single objects as {"payload": {...}}.
    if isinstance(data, Mapping) and "id" not in data and isinstance(data.get("payload"), Mapping):
        data = data["payload"]
    return parse_message(data, where=f"answer to {request.describe()}")


def sort_messages(messages: Iterable[Message]) -> list[Message]:
    """Oldest first; ids break ties inside one second."""
    return sorted(messages, key=lambda m: (m.created_at, m.id))
