"""The emulator's state: accounts, conversations and messages, with Chatwoot-like knobs."""

from __future__ import annotations

import bisect
import copy
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_doto.testing.clock import Clock

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

Flavor = Literal["doto", "chatwoot"]
FLAVORS: tuple[str, ...] = ("doto", "chatwoot")
# Chatwoot: CONVERSATION_MESSAGE_PER_MINUTE_LIMIT (default 200) messages per conversation per minute.
CHATWOOT_RATE_LIMIT = (200, 60)
MAX_CONTENT_LENGTH = 150_000  # Chatwoot's Message validation
CONVERSATIONS_PER_PAGE = 25  # Chatwoot's conversation list page size
# Chatwoot's push-event ``type`` of each sender kind.
CHATWOOT_SENDER_TYPES = {"Contact": "contact", "User": "user", "AgentBot": "agent_bot"}
_TO_I = re.compile(r"\s*([+-]?\d+(?:_\d+)*)")


def check_flavor(flavor: str) -> Flavor:
    if flavor not in FLAVORS:
        raise ValueError(f"unknown flavor {flavor!r}; expected one of {FLAVORS}")
    return flavor  # type: ignore[return-value]


def ruby_to_i(value: str | None) -> int:
    """Ruby's ``String#to_i``: leading digits (optional sign, ``_`` separators), junk reads as 0."""
    match = _TO_I.match(value or "")
    return int(match.group(1).replace("_", "")) if match else 0


def present(value: str | None) -> bool:
    """Rails' ``present?`` for a request param: given and not only whitespace."""
    return value is not None and value.strip() != ""


class NotFound(LookupError):
    """The account, conversation or message does not exist (HTTP 404)."""


class Invalid(ValueError):
    """The request is well-formed HTTP but not an acceptable message (HTTP 422)."""


@dataclass
class _Record:
    message: dict[str, Any]
    visible: bool = True
    late: int = 0  # later messages still to arrive before this one shows up
    deleted: Literal["soft", "hard"] | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.message["created_at"], self.message["id"])


@dataclass
class _Conversation:
    account_id: int
    conversation_id: int
    api_inbox: bool
    records: list[_Record] = field(default_factory=list)  # sorted by (created_at, id)
    keys: list[tuple[int, int]] = field(default_factory=list)  # records' keys, for bisect
    waiting: list[_Record] = field(default_factory=list)  # records hidden by ``late``


class Store:
    """All mutable emulator state behind one lock, shared by the HTTP thread and the test thread."""

    def __init__(
        self,
        account_id: int,
        clock: Clock,
        flavor: str = "doto",
        first_message_id: int = 1,
        id_step: int = 1,
    ) -> None:
        if int(first_message_id) < 1 or int(id_step) < 1:
            raise ValueError("first_message_id and id_step must be positive")
        self.lock = threading.RLock()
        self.clock = clock
        self.default_account_id = account_id
        self.first_message_id = int(first_message_id)
        self.id_step = int(id_step)
        self.flavor: Flavor = check_flavor(flavor)
        self.generation = 0  # bumped by reset(), so delayed requests from before it can be discarded
        self.reset()

    def apply_flavor_defaults(self, flavor: str) -> None:
        """Switch flavor and set the flavor-dependent knobs to that flavor's defaults (data kept)."""
        with self.lock:
            self.flavor = check_flavor(flavor)
            chatwoot = self.flavor == "chatwoot"
            self.int_message_types = chatwoot
            self.soft_delete = chatwoot
            self.rate_limit: tuple[int, int] | None = CHATWOOT_RATE_LIMIT if chatwoot else None

    def reset(self, flavor: str | None = None) -> None:
        """Forget every conversation and message and restore the knobs' defaults (for ``flavor``)."""
        with self.lock:
            self.generation += 1
            self.apply_flavor_defaults(self.flavor if flavor is None else flavor)
            self.page_cap: int | None = None
            self.drop_content_attributes = False
            self.max_content_length: int | None = MAX_CONTENT_LENGTH
            self.bot_tokens: set[str] = set()
            self._accounts = {self.default_account_id}
            self._conversations: dict[tuple[int, int], _Conversation] = {}
            self._records: dict[int, _Record] = {}
            # Fixed ids for the default people, so ids don't depend on request order.
            self._people: dict[tuple[str, str], int] = {
                ("Contact", DEFAULT_CONTACT): 1,
                ("User", DEFAULT_AGENT): 2,
            }
            self._next_message_id = self.first_message_id
            self._next_conversation_id = 1

    # -- seeding and inspection (Python API) -------------------------------------------------

    def add_account(self, account_id: int) -> int:
        with self.lock:
            self._accounts.add(int(account_id))
        return int(account_id)

    def add_conversation(
        self, conversation_id: int | None = None, account_id: int | None = None, api_inbox: bool = True
    ) -> int:
        with self.lock:
            account = self.default_account_id if account_id is None else int(account_id)
            if account not in self._accounts:
                raise ValueError(f"unknown account {account}; call add_account({account}) first")
            cid = self._next_conversation_id if conversation_id is None else int(conversation_id)
            if (account, cid) in self._conversations:
                raise ValueError(f"conversation {cid} already exists in account {account}")
            self._conversations[(account, cid)] = _Conversation(account, cid, api_inbox)
            self._next_conversation_id = max(self._next_conversation_id, cid + 1)
            return cid

    def add_message(
        self,
        conversation_id: int,
        content: str | None,
        *,
        message_type: str | int = "incoming",
        private: bool = False,
        created_at: int | None = None,
        sender_type: str | None = None,
        sender_name: str | None = None,
        content_attributes: dict[str, Any] | None = None,
        content_type: str = "text",
        visible: bool = True,
        late: int = 0,
        account_id: int | None = None,
    ) -> dict[str, Any]:
        if isinstance(message_type, int) and 0 <= message_type < len(MESSAGE_TYPES):
            message_type = MESSAGE_TYPES[message_type]
        if message_type not in MESSAGE_TYPES:
            raise ValueError(f"message_type must be one of {MESSAGE_TYPES}, not {message_type!r}")
        if late < 0:
            raise ValueError("late must be >= 0")
        with self.lock:
            account = self.default_account_id if account_id is None else int(account_id)
            conversation = self._conversation(account, int(conversation_id))
            record = self._create(
                conversation,
                content=content,
                message_type=message_type,
                private=private,
                created_at=created_at,
                sender_type=sender_type,
                sender_name=sender_name,
                content_attributes=copy.deepcopy(content_attributes or {}),
                content_type=content_type,
            )
            record.late = late
            record.visible = visible and late == 0
            self._append(conversation, record)
            return copy.deepcopy(record.message)

    def reveal(self, message_id: int) -> None:
        with self.lock:
            record = self._records.get(message_id)
            if record is None:
                raise KeyError(f"no message {message_id}")
            record.visible, record.late = True, 0

    def messages(
        self, conversation_id: int, include_deleted: bool = True, account_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Every stored message, hidden ones included, oldest first (string message types)."""
        with self.lock:
            account = self.default_account_id if account_id is None else int(account_id)
            conversation = self._conversation(account, int(conversation_id))
            return [
                copy.deepcopy(r.message) for r in conversation.records if include_deleted or not r.deleted
            ]

    def message(self, message_id: int) -> dict[str, Any]:
        with self.lock:
            record = self._records.get(message_id)
            if record is None:
                raise KeyError(f"no message {message_id}")
            return copy.deepcopy(record.message)

    # -- HTTP operations ---------------------------------------------------------------------

    def list_page(
        self, account_id: int, conversation_id: int, after: float | None, before: float | None
    ) -> dict[str, Any]:
        """The body of a list response: strict ``after < created_at < before``, capped like Chatwoot."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            low = 0 if after is None else bisect.bisect_right(conversation.keys, (after, math.inf))
            high = (
                len(conversation.keys)
                if before is None
                else bisect.bisect_left(conversation.keys, (before, -math.inf))
            )
            window = [r for r in conversation.records[low:high] if r.visible and r.deleted != "hard"]
            cap = self.page_cap
            if cap is not None:
                # Chatwoot: oldest page forward from ``after``, otherwise the newest page.
                window = window[:cap] if after is not None else window[-cap:] if cap > 0 else []
            payload = [self._render(r.message) for r in window]
            return {"meta": _meta(), "payload": payload}

    def list_chatwoot(
        self, account_id: int, conversation_id: int, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The body of a list response exactly as Chatwoot's MessageFinder picks and orders it."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            rows = [r for r in conversation.records if r.visible and r.deleted != "hard"]
            if present(params.get("filter_internal_messages")):
                rows = [
                    r for r in rows if not (r.message["private"] or r.message["message_type"] == "activity")
                ]
            after, before = params.get("after"), params.get("before")
            # ``rows`` is ordered by created_at (ties by id): asc = as is, "desc ... reverse" = tail.
            if present(after) and present(before):
                low, high = ruby_to_i(after), ruby_to_i(before)
                rows = [r for r in rows if low <= r.message["id"] < high][:1000]
            elif present(before):
                high = ruby_to_i(before)
                rows = [r for r in rows if r.message["id"] < high][-20:]
            elif present(after):
                low = ruby_to_i(after)
                rows = [r for r in rows if r.message["id"] > low][:100]
            elif present(params.get("before_timestamp")):
                ts = ruby_to_i(params.get("before_timestamp"))
                rows = [r for r in rows if r.message["created_at"] < ts][-20:]
            else:
                rows = rows[-20:]
            payload = [self._render(r.message) for r in rows]
            return {"meta": _chatwoot_meta(), "payload": payload}

    def post(self, account_id: int, conversation_id: int, body: Any, bot: bool = False) -> dict[str, Any]:
        """Create a message from a POST body, or raise Invalid with Chatwoot-like wording."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            if self.flavor == "chatwoot" and isinstance(body, dict) and body.get("message_type") is None:
                body = {**body, "message_type": "outgoing"}  # Chatwoot's default
            fields = _validate_post(body)
            if self.max_content_length is not None and len(fields["content"]) > self.max_content_length:
                raise Invalid(f"Content is too long (maximum is {self.max_content_length} characters)")
            if self.drop_content_attributes:
                fields["content_attributes"] = {}
            if fields["message_type"] == "incoming" and not conversation.api_inbox:
                raise Invalid("Incoming messages are only allowed in Api inboxes")
            if self.rate_limit is not None:
                limit, window = self.rate_limit
                since = self.clock.now() - window
                recent = sum(1 for r in conversation.records if r.message["created_at"] > since)
                if recent >= limit:
                    raise Invalid("Too many messages")
            record = self._create(
                conversation,
                created_at=None,
                sender_type="AgentBot" if bot else None,
                sender_name=None,
                **fields,
            )
            self._append(conversation, record)
            return self._render(record.message)

    def profile(self) -> dict[str, Any]:
        """``GET /api/v1/profile``: the token's user and every account the emulator knows."""
        with self.lock:
            accounts = [
                {"id": a, "name": f"Account {a}", "role": "administrator", "status": "active"}
                for a in sorted(self._accounts)
            ]
            return {
                "id": self._people[("User", DEFAULT_AGENT)],
                "name": DEFAULT_AGENT,
                "available_name": DEFAULT_AGENT,
                "display_name": DEFAULT_AGENT,
                "email": DEFAULT_AGENT_EMAIL,
                "account_id": self.default_account_id,
                "role": "administrator",
                "type": "user",
                "accounts": accounts,
            }

    def list_conversations(self, account_id: int, page: int = 1) -> dict[str, Any]:
        """``GET /api/v1/accounts/{id}/conversations``: Chatwoot's shape, 25 per page, newest first."""
        with self.lock:
            if account_id not in self._accounts:
                raise NotFound(f"account {account_id}")
            conversations = sorted(
                (c for (a, _), c in self._conversations.items() if a == account_id),
                key=lambda c: c.conversation_id,
                reverse=True,
            )
            start = (max(page, 1) - 1) * CONVERSATIONS_PER_PAGE
            payload = [
                self._render_conversation(c) for c in conversations[start : start + CONVERSATIONS_PER_PAGE]
            ]
            count = len(conversations)
            meta = {"mine_count": 0, "assigned_count": 0, "unassigned_count": count, "all_count": count}
            return {"data": {"meta": meta, "payload": payload}}

    def delete(self, account_id: int, conversation_id: int, message_id: int) -> dict[str, Any]:
        """Soft or hard delete; deleting a soft-deleted message again answers 200, like Chatwoot."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            record = self._records.get(message_id)
            if (
                record is None
                or record.message["conversation_id"] != conversation.conversation_id
                or record.message["account_id"] != conversation.account_id
                or record.deleted == "hard"
            ):
                raise NotFound(f"message {message_id}")
            if record.deleted is None:
                message = record.message
                if self.soft_delete:
                    # Replace, never mutate: rendered copies may still be serialising on another thread.
                    record.message = {
                        **message,
                        "content": DELETED_CONTENT,
                        "content_type": "text",
                        "content_attributes": {"deleted": True},
                        "attachments": [],
                    }
                    record.deleted = "soft"
                else:
                    record.message = {
                        **message,
                        "content_attributes": {**message["content_attributes"], "deleted": True},
                    }
                    record.deleted = "hard"
            return self._render(record.message)

    # -- internals -----------------------------------------------------------------------------

    def _conversation(self, account_id: int, conversation_id: int) -> _Conversation:
        if account_id not in self._accounts:
            raise NotFound(f"account {account_id}")
        conversation = self._conversations.get((account_id, conversation_id))
        if conversation is None:
            raise NotFound(f"conversation {conversation_id}")
        return conversation

    def _person(self, kind: str, name: str) -> int:
        return self._people.setdefault((kind, name), len(self._people) + 1)

    def _create(
        self,
        conversation: _Conversation,
        *,
        content: str | None,
        message_type: str,
        private: bool,
        created_at: int | None,
        sender_type: str | None,
        sender_name: str | None,
        content_attributes: dict[str, Any],
        content_type: str,
    ) -> _Record:
        message_id = self._next_message_id
        self._next_message_id += self.id_step
        if sender_type is None and message_type != "activity":
            sender_type = "Contact" if message_type == "incoming" else "User"
        message: dict[str, Any] = {
            "id": message_id,
            "content": content,
            "account_id": conversation.account_id,
            "inbox_id": 1,
            "conversation_id": conversation.conversation_id,
            "message_type": message_type,
            "created_at": self.clock.now() if created_at is None else int(created_at),
            "private": bool(private),
            "status": "sent",
            "source_id": None,
            "content_type": content_type,
            "content_attributes": content_attributes,
            "attachments": [],
        }
        if sender_type is not None:  # Chatwoot's activity messages carry no sender
            defaults = {"Contact": DEFAULT_CONTACT, "AgentBot": DEFAULT_BOT}
            name = sender_name or defaults.get(sender_type, DEFAULT_AGENT)
            message["sender"] = {"id": self._person(sender_type, name), "name": name, "type": sender_type}
        record = _Record(message)
        self._records[message_id] = record
        return record

    def _append(self, conversation: _Conversation, record: _Record) -> None:
        index = bisect.bisect_right(conversation.keys, record.key)
        conversation.keys.insert(index, record.key)
        conversation.records.insert(index, record)
        # A late message shows up once enough newer messages have landed in its conversation.
        for waiting in conversation.waiting:
            if waiting.late > 0:
                waiting.late -= 1
                if waiting.late == 0:
                    waiting.visible = True
        conversation.waiting = [w for w in conversation.waiting if w.late > 0]
        if record.late > 0:
            conversation.waiting.append(record)

    def _render(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.flavor == "chatwoot":
            return self._render_chatwoot(message)
        rendered = dict(message)
        if self.int_message_types:
            rendered["message_type"] = MESSAGE_TYPES.index(message["message_type"])
        return rendered

    def _render_chatwoot(self, message: dict[str, Any]) -> dict[str, Any]:
        """Chatwoot's ``_message.json.jbuilder``: no account_id, lower-case sender types."""
        message_type: str | int = message["message_type"]
        if self.int_message_types:
            message_type = MESSAGE_TYPES.index(message["message_type"])
        rendered: dict[str, Any] = {
            "id": message["id"],
            "content": message["content"],
            "inbox_id": message["inbox_id"],
            "conversation_id": message["conversation_id"],
            "message_type": message_type,
            "content_type": message["content_type"],
            "status": message["status"],
            "content_attributes": message["content_attributes"],
            "created_at": message["created_at"],
            "private": message["private"],
            "source_id": message["source_id"],
        }
        sender = message.get("sender")
        if sender is not None:
            kind = CHATWOOT_SENDER_TYPES.get(sender["type"], str(sender["type"]).lower())
            rendered["sender"] = {**sender, "type": kind, "thumbnail": ""}
        if message.get("attachments"):
            rendered["attachments"] = message["attachments"]
        return rendered

    def _render_conversation(self, conversation: _Conversation) -> dict[str, Any]:
        visible = [r for r in conversation.records if r.visible and r.deleted != "hard"]
        last = visible[-1].message if visible else None
        created = conversation.records[0].message["created_at"] if conversation.records else 0
        return {
            "id": conversation.conversation_id,
            "account_id": conversation.account_id,
            "inbox_id": 1,
            "status": "open",
            "messages": [] if last is None else [self._render(last)],
            "meta": {
                "sender": {"id": 1, "name": DEFAULT_CONTACT, "type": "contact"},
                "channel": "Channel::Api" if conversation.api_inbox else "Channel::WebWidget",
                "assignee": None,
            },
            "unread_count": 0,
            "created_at": created,
            "timestamp": created if last is None else last["created_at"],
            "last_activity_at": created if last is None else last["created_at"],
            "labels": [],
            "additional_attributes": {},
            "custom_attributes": {},
        }


def _meta() -> dict[str, Any]:
    return {
        "labels": [],
        "additional_attributes": {},
        "contact": {"id": 1, "name": DEFAULT_CONTACT},
        "assignee": None,
        "agent_last_seen_at": None,
        "assignee_last_seen_at": None,
    }


def _chatwoot_meta() -> dict[str, Any]:
    """Chatwoot's list ``meta`` for an unassigned conversation (no ``assignee`` key then)."""
    return {
        "labels": [],
        "additional_attributes": {},
        "contact": {"id": 1, "name": DEFAULT_CONTACT, "type": "contact", "thumbnail": ""},
        "contact_id": 1,
        "agent_last_seen_at": None,
        "assignee_last_seen_at": None,
    }


def _validate_post(body: Any) -> dict[str, Any]:
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
    return {
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": content_type,
        "content_attributes": copy.deepcopy(attributes),
    }
