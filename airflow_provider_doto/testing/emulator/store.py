"""The emulator's state: accounts, conversations and messages behind one lock.

The store owns what exists and in which order (seeding, POST, delete, the hidden and late
messages); what a message may be lives in ``messages``, Chatwoot's picking and rendering in
``chatwoot``, and the flavor presets in ``flavors``.
"""

from __future__ import annotations

import bisect
import copy
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_doto.testing.emulator import chatwoot
from airflow_provider_doto.testing.emulator.chatwoot import CONVERSATIONS_PER_PAGE
from airflow_provider_doto.testing.emulator.clock import Clock
from airflow_provider_doto.testing.emulator.flavors import (
    CHATWOOT_RATE_LIMIT,
    MAX_CONTENT_LENGTH,
    Flavor,
    check_flavor,
)
from airflow_provider_doto.testing.emulator.messages import (
    DEFAULT_AGENT,
    DEFAULT_BOT,
    DEFAULT_CONTACT,
    MESSAGE_TYPES,
    Invalid,
    NotFound,
    list_meta,
    marked_deleted,
    validate_post,
)


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
            return {"meta": list_meta(), "payload": payload}

    def list_chatwoot(
        self, account_id: int, conversation_id: int, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """The body of a list response exactly as Chatwoot's MessageFinder picks and orders it."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            shown = [r.message for r in conversation.records if r.visible and r.deleted != "hard"]
            payload = [self._render(m) for m in chatwoot.find_messages(shown, params)]
            return {"meta": chatwoot.list_meta(), "payload": payload}

    def post(self, account_id: int, conversation_id: int, body: Any, bot: bool = False) -> dict[str, Any]:
        """Create a message from a POST body, or raise Invalid with Chatwoot-like wording."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            if self.flavor == "chatwoot" and isinstance(body, dict) and body.get("message_type") is None:
                body = {**body, "message_type": "outgoing"}  # Chatwoot's default
            fields = validate_post(body)
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
            user_id = self._people[("User", DEFAULT_AGENT)]
            return chatwoot.render_profile(user_id, self.default_account_id, sorted(self._accounts))

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
            page_rows = conversations[start : start + CONVERSATIONS_PER_PAGE]
            return chatwoot.conversation_list(
                [self._render_conversation(c) for c in page_rows], len(conversations)
            )

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
                # Replace, never mutate: rendered copies may still be serialising on another thread.
                record.message = marked_deleted(record.message, soft=self.soft_delete)
                record.deleted = "soft" if self.soft_delete else "hard"
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
            return chatwoot.render_message(message, self.int_message_types)
        rendered = dict(message)
        if self.int_message_types:
            rendered["message_type"] = MESSAGE_TYPES.index(message["message_type"])
        return rendered

    def _render_conversation(self, conversation: _Conversation) -> dict[str, Any]:
        visible = [r for r in conversation.records if r.visible and r.deleted != "hard"]
        created = conversation.records[0].message["created_at"] if conversation.records else 0
        return chatwoot.render_conversation(
            conversation.conversation_id,
            conversation.account_id,
            api_inbox=conversation.api_inbox,
            created_at=created,
            last=self._render(visible[-1].message) if visible else None,
        )
