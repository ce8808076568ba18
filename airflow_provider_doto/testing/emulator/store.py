"""The emulator's state: accounts, conversations and messages behind one lock.

The store owns what exists and in which order (seeding, POST, delete, the hidden and late
messages); what a message may be lives in ``messages``, Chatwoot's picking and rendering in
``chatwoot``, and the flavor presets in ``flavors``.
"""

from __future__ import annotations

import bisect
import copy
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_provider_doto.testing.emulator import account, chatwoot
from airflow_provider_doto.testing.emulator.account import (
    DEFAULT_STATUS,
    PRIORITIES,
    STATUSES,
    TEMPLATE_CHANNELS,
    UNKNOWN_TEMPLATE_ERROR,
    WINDOW_FAILURE_ERROR,
    Inbox,
)
from airflow_provider_doto.testing.emulator.attachments import (
    MAX_UPLOAD_BYTES,
    BlobStore,
    attachment_json,
    storage_location,
    upload_refusal,
)
from airflow_provider_doto.testing.emulator.chatwoot import CONVERSATIONS_PER_PAGE, ruby_to_i
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
    STATUS_UPDATE_FORBIDDEN,
    Forbidden,
    Invalid,
    NotFound,
    list_meta,
    marked_deleted,
    validate_post,
    validate_status_update,
)


@dataclass
class _Record:
    message: dict[str, Any]
    visible: bool = True
    late: int = 0  # later messages still to arrive before this one shows up
    deleted: Literal["soft", "hard"] | None = None
    # Status changes still to come, as the channel's job and receipts make them: (clock time, status).
    schedule: list[tuple[int, str]] = field(default_factory=list)
    # The external_error a scheduled "failed" sets (free text outside the window, or an unknown template).
    failure: str = WINDOW_FAILURE_ERROR

    @property
    def key(self) -> tuple[int, int]:
        return (self.message["created_at"], self.message["id"])


@dataclass
class _Conversation:
    account_id: int
    conversation_id: int
    api_inbox: bool
    inbox_id: int = 1
    contact_id: int = 1
    created_at: int = 0
    updated_at: float = 0.0  # moves forward only: commits of messages, other changes
    last_activity_at: int = 0  # the created_at of the last message committed
    status: str = DEFAULT_STATUS
    labels: list[str] = field(default_factory=list)
    priority: str | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    snoozed_until: int | None = None
    waiting_since: int | None = None
    first_reply_created_at: int | None = None
    last_incoming: tuple[int, int] | None = None  # (id, created_at) of the newest incoming message
    unread_count: int = 0
    records: list[_Record] = field(default_factory=list)  # sorted by (created_at, id)
    keys: list[tuple[int, int]] = field(default_factory=list)  # records' keys, for bisect
    waiting: list[_Record] = field(default_factory=list)  # records hidden by ``late``


class _Unset:
    """The default of ``update_conversation``'s arguments: leave the field as it is."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
# Seconds between the 200 and "failed" for free text outside a WhatsApp window (Chatwoot: a job's delay).
DEFAULT_WINDOW_FAILURE_DELAY = 3
LABEL_POOL = ("billing", "bug", "feedback", "refund", "shipping", "vip")
SEED_AGENTS = ("Doto Agent", "Sam Rivera", "Kim Lee")
SEED_CHANNELS = ("api", "web_widget", "email", "whatsapp", "facebook", "instagram", "tiktok", "sms")


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
        self.blobs = BlobStore()  # attachments' bytes (the storage listener serves them)
        self.api_url: str | None = None  # the API's base URL, in each attachment's data_url
        self.storage_url: str | None = None  # the storage listener's, where a data_url redirects
        # Starts the storage listener (the server sets it): called when a POST brings the first files.
        self.start_storage: Callable[[], object] | None = None
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
            self.max_upload_bytes = MAX_UPLOAD_BYTES  # per file; checked for web-widget inboxes only
            self.bot_tokens: set[str] = set()
            self.supports_updated_within = True  # False: an older server that ignores the param
            # Seconds after the 200 at which a WhatsApp free-text message outside the window fails.
            self.window_failure_delay = DEFAULT_WINDOW_FAILURE_DELAY
            # (delivered after, read after) seconds for public outgoing messages of messaging
            # channels inside their window; None: they stay "sent" (the default).
            self.delivery_receipts: tuple[int, int] | None = None
            # Each WhatsApp inbox's approved templates: (name, language or None for any language).
            self._templates: dict[int, set[tuple[str, str | None]]] = {}
            self._scheduled: list[_Record] = []  # records with status changes still to come
            self._accounts = {self.default_account_id}
            self._conversations: dict[tuple[int, int], _Conversation] = {}
            self._records: dict[int, _Record] = {}
            # Fixed ids for the default people, so ids don't depend on request order.
            self._people: dict[tuple[str, str], int] = {
                ("Contact", DEFAULT_CONTACT): 1,
                ("User", DEFAULT_AGENT): 2,
            }
            self._names: dict[int, str] = {1: DEFAULT_CONTACT, 2: DEFAULT_AGENT}
            self._next_message_id = self.first_message_id
            self._next_conversation_id = 1
            self._next_attachment_id = 1
            self.blobs.clear()
            # The account's other records and the indexes the conversation finder filters on.
            self._inboxes: dict[int, Inbox] = {}
            self._teams: dict[tuple[int, int], str] = {}
            self._by_account: dict[int, dict[int, _Conversation]] = {}
            self._by_status: dict[tuple[int, str], set[int]] = {}
            self._by_inbox: dict[int, set[int]] = {}
            self._by_label: dict[tuple[int, str], set[int]] = {}
            # Fixed ids for the default account's two inboxes: 1 is an API inbox, 2 a web widget.
            self.add_inbox("api", "API", inbox_id=1)
            self.add_inbox("web_widget", "Website", inbox_id=2)

    # -- seeding and inspection (Python API) -------------------------------------------------

    def add_account(self, account_id: int) -> int:
        with self.lock:
            self._accounts.add(int(account_id))
        return int(account_id)

    def add_inbox(
        self,
        channel: str,
        name: str | None = None,
        *,
        inbox_id: int | None = None,
        account_id: int | None = None,
        agent_reply_time_window: int | None = None,
        human_agent: bool = False,
    ) -> int:
        account.check_channel(channel)
        if agent_reply_time_window is not None and (
            channel != "api" or not isinstance(agent_reply_time_window, int) or agent_reply_time_window < 1
        ):
            raise ValueError("agent_reply_time_window (hours, a positive int) is for API inboxes only")
        with self.lock:
            owner = self._account(account_id)
            iid = max(self._inboxes, default=0) + 1 if inbox_id is None else int(inbox_id)
            if iid in self._inboxes:
                raise ValueError(f"inbox {iid} already exists")
            self._inboxes[iid] = Inbox(
                iid, owner, channel, name or f"{channel} inbox", agent_reply_time_window, human_agent
            )
            self._by_inbox[iid] = set()
            return iid

    def add_template(self, inbox_id: int, name: str, language: str | None = None) -> None:
        """Approve a template in a WhatsApp inbox: ``name`` in ``language`` (None: in any language)."""
        if not isinstance(name, str) or not name or not (language is None or isinstance(language, str)):
            raise ValueError("a template has a non-empty name and a language string (or None)")
        with self.lock:
            inbox = self._inboxes.get(int(inbox_id))
            if inbox is None:
                raise ValueError(f"unknown inbox {inbox_id}")
            if inbox.channel not in TEMPLATE_CHANNELS:
                raise ValueError(f"inbox {inbox_id} is {inbox.channel}: templates are for WhatsApp inboxes")
            self._templates.setdefault(inbox.inbox_id, set()).add((name, language))

    def templates(self, inbox_id: int) -> list[tuple[str, str | None]]:
        """The templates approved in an inbox, sorted."""
        with self.lock:
            return sorted(self._templates.get(int(inbox_id), ()), key=lambda t: (t[0], t[1] or ""))

    def _knows_template(self, inbox_id: int, template: Any) -> bool:
        if not isinstance(template, dict):
            return False
        name, language = template.get("name"), template.get("language")
        return any(
            name == known and (known_language is None or language == known_language)
            for known, known_language in self._templates.get(inbox_id, ())
        )

    def inboxes(self, account_id: int | None = None) -> list[Inbox]:
        with self.lock:
            owner = self._account(account_id)
            return [copy.copy(i) for i in self._inboxes.values() if i.account_id == owner]

    def add_team(self, name: str, team_id: int | None = None, account_id: int | None = None) -> int:
        with self.lock:
            owner = self._account(account_id)
            tid = max((t for _, t in self._teams), default=0) + 1 if team_id is None else int(team_id)
            if (owner, tid) in self._teams:
                raise ValueError(f"team {tid} already exists in account {owner}")
            self._teams[(owner, tid)] = name
            return tid

    def add_conversation(
        self,
        conversation_id: int | None = None,
        account_id: int | None = None,
        api_inbox: bool = True,
        *,
        inbox_id: int | None = None,
        status: str = DEFAULT_STATUS,
        labels: Sequence[str] = (),
        priority: str | None = None,
        assignee: str | None = None,
        team_id: int | None = None,
        contact: str | None = None,
        created_at: int | None = None,
    ) -> int:
        with self.lock:
            owner = self._account(account_id)
            cid = self._next_conversation_id if conversation_id is None else int(conversation_id)
            if (owner, cid) in self._conversations:
                raise ValueError(f"conversation {cid} already exists in account {owner}")
            found = None if inbox_id is None else self._inboxes.get(int(inbox_id))
            if inbox_id is not None and (found is None or found.account_id != owner):
                raise ValueError(f"unknown inbox {inbox_id} in account {owner}; call add_inbox() first")
            inbox = found or self._default_inbox(owner, "api" if api_inbox else "web_widget")
            born = self.clock.now() if created_at is None else int(created_at)
            conversation = _Conversation(
                owner,
                cid,
                inbox.channel == "api",
                inbox_id=inbox.inbox_id,
                contact_id=self._person("Contact", contact or DEFAULT_CONTACT),
                created_at=born,
                updated_at=float(born),
                last_activity_at=born,
            )
            self._conversations[(owner, cid)] = conversation
            self._by_account.setdefault(owner, {})[cid] = conversation
            self._by_inbox[inbox.inbox_id].add(cid)
            self._by_status.setdefault((owner, DEFAULT_STATUS), set()).add(cid)
            self._next_conversation_id = max(self._next_conversation_id, cid + 1)
            self._change(
                conversation,
                status=status,
                labels=labels,
                priority=priority,
                assignee=assignee,
                team_id=team_id,
                touch=False,
            )
            return cid

    def update_conversation(
        self,
        conversation_id: int,
        *,
        status: str = UNSET,
        labels: Sequence[str] = UNSET,
        priority: str | None = UNSET,
        assignee: str | None = UNSET,
        team_id: int | None = UNSET,
        snoozed_until: int | None = UNSET,
        account_id: int | None = None,
    ) -> None:
        with self.lock:
            conversation = self._conversation(self._account(account_id), int(conversation_id))
            self._change(
                conversation,
                status=status,
                labels=labels,
                priority=priority,
                assignee=assignee,
                team_id=team_id,
                snoozed_until=snoozed_until,
            )

    def conversation_state(self, conversation_id: int, account_id: int | None = None) -> dict[str, Any]:
        """The conversation as ``GET .../conversations/:id`` renders it."""
        with self.lock:
            self._settle()
            return self._render_conversation(
                self._conversation(self._account(account_id), int(conversation_id))
            )

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
        attachments: Sequence[tuple[str, bytes] | tuple[str, bytes, str | None]] = (),
    ) -> dict[str, Any]:
        if isinstance(message_type, int) and 0 <= message_type < len(MESSAGE_TYPES):
            message_type = MESSAGE_TYPES[message_type]
        if message_type not in MESSAGE_TYPES:
            raise ValueError(f"message_type must be one of {MESSAGE_TYPES}, not {message_type!r}")
        if late < 0:
            raise ValueError("late must be >= 0")
        with self.lock:
            owner = self.default_account_id if account_id is None else int(account_id)
            conversation = self._conversation(owner, int(conversation_id))
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
            self._attach(record.message, attachments)
            self._append(conversation, record)
            return copy.deepcopy(record.message)

    def _attach(
        self, message: dict[str, Any], files: Sequence[tuple[str, bytes] | tuple[str, bytes, str | None]]
    ) -> None:
        """Store ``files`` (file name, bytes[, content type]) and list them in ``message``."""
        if files and self.api_url is None:
            raise RuntimeError("attachments need a running emulator (their data_url names its address)")
        for file in files:
            filename, data, *rest = file
            blob = self.blobs.add(filename, data, rest[0] if rest else None)
            message["attachments"].append(
                attachment_json(
                    self._next_attachment_id, message["id"], message["account_id"], blob, str(self.api_url)
                )
            )
            self._next_attachment_id += 1

    def blob_location(self, key: str) -> str:
        """Where Active Storage's redirect for blob ``key`` points: the storage listener."""
        blob = self.blobs.get(key)
        if blob is None or self.storage_url is None:
            raise NotFound(key)
        return storage_location(self.storage_url, blob)

    def reveal(self, message_id: int) -> None:
        with self.lock:
            record = self._records.get(message_id)
            if record is None:
                raise KeyError(f"no message {message_id}")
            if not record.visible and record.deleted != "hard":
                conversation = self._conversations[
                    (record.message["account_id"], record.message["conversation_id"])
                ]
                conversation.waiting = [w for w in conversation.waiting if w is not record]
                record.visible, record.late = True, 0
                self._commit(conversation, record)

    def messages(
        self, conversation_id: int, include_deleted: bool = True, account_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Every stored message, hidden ones included, oldest first (string message types)."""
        with self.lock:
            self._settle()
            owner = self.default_account_id if account_id is None else int(account_id)
            conversation = self._conversation(owner, int(conversation_id))
            return [
                copy.deepcopy(r.message) for r in conversation.records if include_deleted or not r.deleted
            ]

    def message(self, message_id: int) -> dict[str, Any]:
        with self.lock:
            self._settle()
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
            self._settle()
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
            self._settle()
            conversation = self._conversation(account_id, conversation_id)
            shown = [r.message for r in conversation.records if r.visible and r.deleted != "hard"]
            payload = [self._render(m) for m in chatwoot.find_messages(shown, params)]
            return {"meta": chatwoot.list_meta(), "payload": payload}

    def post(
        self,
        account_id: int,
        conversation_id: int,
        body: Any,
        bot: bool = False,
        files: Sequence[tuple[str, bytes, str | None]] = (),
    ) -> dict[str, Any]:
        """Create a message from a POST body, or raise Invalid with Chatwoot-like wording.

        ``files``: a multipart create's ``attachments[]`` (name, bytes, content type), stored and
        listed in the answer; a web-widget inbox refuses a file over ``max_upload_bytes`` or of a
        type off Chatwoot's allow-list (other inboxes take anything, as the server does).
        """
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            if self.flavor == "chatwoot" and isinstance(body, dict) and body.get("message_type") is None:
                body = {**body, "message_type": "outgoing"}  # Chatwoot's default
            fields = validate_post(body)
            if self.max_content_length is not None and len(fields["content"]) > self.max_content_length:
                raise Invalid(f"Content is too long (maximum is {self.max_content_length} characters)")
            if self._inboxes[conversation.inbox_id].channel == "web_widget":
                for _, data, kind in files:
                    refusal = upload_refusal(kind, len(data), self.max_upload_bytes)
                    if refusal is not None:
                        raise Invalid(f"Validation failed: {refusal}")
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
            if files and self.storage_url is None and self.start_storage is not None:
                self.start_storage()
            self._attach(record.message, files)
            self._append(conversation, record)
            answer = self._render(record.message)  # "sent": what the channel does comes later
            self._schedule_delivery(conversation, record)
            return answer

    def profile(self) -> dict[str, Any]:
        """``GET /api/v1/profile``: the token's user and every account the emulator knows."""
        with self.lock:
            user_id = self._people[("User", DEFAULT_AGENT)]
            return chatwoot.render_profile(user_id, self.default_account_id, sorted(self._accounts))

    def list_conversations(self, account_id: int, params: Mapping[str, list[str]]) -> dict[str, Any]:
        """``GET /api/v1/accounts/{id}/conversations``: ConversationFinder's page and counts."""
        with self.lock:
            self._settle()
            rows, counts = self._find(account_id, params)
            within = params.get("updated_within", [""])[-1]
            if self.supports_updated_within and chatwoot.present(within):
                since = self.clock.now() - ruby_to_i(within)
                rows = [c for c in rows if c.updated_at > since]  # every match, no paging
            else:
                start = (account.page_number(params.get("page", [""])[-1]) - 1) * CONVERSATIONS_PER_PAGE
                rows = rows[start : start + CONVERSATIONS_PER_PAGE]
            return account.list_body([self._render_conversation(c) for c in rows], counts)

    def conversation_meta(self, account_id: int, params: Mapping[str, list[str]]) -> dict[str, Any]:
        """``GET /api/v1/accounts/{id}/conversations/meta``: the list's counts alone."""
        with self.lock:
            return account.meta_body(self._find(account_id, params, sort=False)[1])

    def show_conversation(self, account_id: int, conversation_id: int) -> dict[str, Any]:
        """``GET /api/v1/accounts/{id}/conversations/{display_id}``."""
        with self.lock:
            self._settle()
            return self._render_conversation(self._conversation(account_id, conversation_id))

    def toggle_status(self, account_id: int, conversation_id: int, body: Any) -> dict[str, Any]:
        """``POST .../toggle_status``: ``status`` given, else open <-> resolved."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            status = body.get("status") if isinstance(body, dict) else None
            if status is None:
                status = "resolved" if conversation.status == "open" else "open"
            if status not in STATUSES:
                raise Invalid(f"'{status}' is not a valid status")
            snoozed = body.get("snoozed_until") if isinstance(body, dict) and status == "snoozed" else None
            self._change(conversation, status=status, snoozed_until=ruby_to_i(str(snoozed)) or None)
            return {
                "meta": {},
                "payload": {"success": True, "current_status": status, "conversation_id": conversation_id},
            }

    def toggle_priority(self, account_id: int, conversation_id: int, body: Any) -> None:
        """``POST .../toggle_priority``: ``priority`` one of low/medium/high/urgent, or none/null."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            priority = body.get("priority") if isinstance(body, dict) else None
            if priority not in (None, "none", *PRIORITIES):
                raise Invalid(f"'{priority}' is not a valid priority")
            self._change(conversation, priority=None if priority == "none" else priority)

    def set_labels(self, account_id: int, conversation_id: int, body: Any) -> dict[str, Any]:
        """``POST .../labels``: replace the conversation's labels; answers them."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            labels = body.get("labels") if isinstance(body, dict) else None
            if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
                raise Invalid("labels must be a list of strings")
            self._change(conversation, labels=labels)
            return {"payload": list(conversation.labels)}

    def build_account(
        self,
        conversations: int,
        messages: int,
        lines: Sequence[tuple[str, str]],
        *,
        spacing: int = 20,
        seed: int = 0,
        account_id: int | None = None,
    ) -> list[int]:
        """Create ``conversations`` realistic conversations of ``messages`` lines each; returns their ids.

        The first is an open, unassigned API-inbox conversation whose last line is now; the others
        spread over inboxes of every common channel, statuses, labels, priorities, agents and teams,
        last active within the past 30 days. Lines go round-robin (line 1 of every conversation,
        then line 2...), so a conversation's message ids are increasing but not consecutive.
        """
        if conversations < 1 or messages < 0:
            raise ValueError("conversations must be at least 1 and messages at least 0")
        rng = random.Random(seed)
        with self.lock:
            owner = self._account(account_id)
            inboxes = [self._default_inbox(owner, channel).inbox_id for channel in SEED_CHANNELS]
            teams = [t for (a, t) in self._teams if a == owner] or [
                self.add_team("Support", account_id=owner),
                self.add_team("Sales", account_id=owner),
            ]
            now = self.clock.now()
            plans: list[tuple[_Conversation, int, dict[str, Any]]] = []
            for n in range(conversations):
                last = now if n == 0 else now - rng.randint(0, 30 * 86_400)
                start = last - max(messages - 1, 0) * spacing
                cid = self.add_conversation(
                    account_id=owner,
                    inbox_id=inboxes[0] if n == 0 else rng.choice(inboxes),
                    contact=f"Customer {n + 1}" if n else None,
                    created_at=start - rng.randint(0, 300) * (n > 0),
                )
                change: dict[str, Any] = {}
                if n:
                    change = {
                        "status": rng.choices(STATUSES, weights=(50, 30, 10, 10))[0],
                        "labels": rng.sample(LABEL_POOL, rng.choice((0, 0, 1, 1, 2))),
                        "priority": rng.choice((None, None, None, *PRIORITIES)),
                        "assignee": rng.choice((None, *SEED_AGENTS)),
                        "team_id": rng.choice((None, *teams)),
                    }
                plans.append((self._by_account[owner][cid], start, change))
            for i in range(messages):
                message_type, text = lines[i % len(lines)]
                for conversation, start, _ in plans:
                    created = start + i * spacing
                    record = self._create(
                        conversation,
                        content=text,
                        message_type=message_type,
                        private=False,
                        created_at=created,
                        sender_type=None,
                        sender_name=None,
                        content_attributes={},
                        content_type="text",
                    )
                    self._append(conversation, record, committed_at=float(created))
            for conversation, _, change in plans:
                self._change(conversation, touch=False, **change)
            return [c.conversation_id for c, _, _ in plans]

    def delete(self, account_id: int, conversation_id: int, message_id: int) -> dict[str, Any]:
        """Soft or hard delete; deleting a soft-deleted message again answers 200, like Chatwoot."""
        with self.lock:
            conversation = self._conversation(account_id, conversation_id)
            record = self._message_of(conversation, message_id)
            if record.deleted is None:
                # Replace, never mutate: rendered copies may still be serialising on another thread.
                record.message = marked_deleted(record.message, soft=self.soft_delete)
                record.deleted = "soft" if self.soft_delete else "hard"
            return self._render(record.message)

    def _message_of(self, conversation: _Conversation, message_id: int) -> _Record:
        """The message's record, when it is this conversation's and not hard-deleted (else 404)."""
        record = self._records.get(message_id)
        if (
            record is None
            or record.message["conversation_id"] != conversation.conversation_id
            or record.message["account_id"] != conversation.account_id
            or record.deleted == "hard"
        ):
            raise NotFound(f"message {message_id}")
        return record

    def update_status(
        self, account_id: int, conversation_id: int, message_id: int, body: Any
    ) -> dict[str, Any]:
        """``PATCH .../messages/:id``: the integrator sets an API-inbox message's ``status`` (and
        ``content_attributes.external_error`` when given); answers the message.

        Checked in the order Chatwoot's controller would meet them: the conversation (404), its
        inbox (403 unless an API inbox, a before-action), the message (404), the status (422).
        """
        with self.lock:
            self._settle()
            conversation = self._conversation(account_id, conversation_id)
            if self._inboxes[conversation.inbox_id].channel != "api":
                raise Forbidden(STATUS_UPDATE_FORBIDDEN)
            record = self._message_of(conversation, message_id)
            status, external_error = validate_status_update(body)
            # Replace, never mutate: rendered copies may still be serialising on another thread.
            message = {**record.message, "status": status}
            if external_error is not None:
                message["content_attributes"] = {
                    **message["content_attributes"],
                    "external_error": external_error,
                }
            record.message = message
            return self._render(message)

    # -- internals -----------------------------------------------------------------------------

    def _conversation(self, account_id: int, conversation_id: int) -> _Conversation:
        if account_id not in self._accounts:
            raise NotFound(f"account {account_id}")
        conversation = self._conversations.get((account_id, conversation_id))
        if conversation is None:
            raise NotFound(f"conversation {conversation_id}")
        return conversation

    def _person(self, kind: str, name: str) -> int:
        person = self._people.setdefault((kind, name), len(self._people) + 1)
        self._names[person] = name
        return person

    def _account(self, account_id: int | None) -> int:
        owner = self.default_account_id if account_id is None else int(account_id)
        if owner not in self._accounts:
            raise ValueError(f"unknown account {owner}; call add_account({owner}) first")
        return owner

    def _default_inbox(self, account_id: int, channel: str) -> Inbox:
        """The account's first inbox of ``channel`` (default settings), created when it has none."""
        for inbox in self._inboxes.values():
            if (
                inbox.account_id == account_id
                and inbox.channel == channel
                and inbox.reply_window
                in (
                    None,
                    account.CHANNELS[channel][1],
                )
            ):
                return inbox
        names = {"api": "API", "web_widget": "Website", "email": "Email", "whatsapp": "WhatsApp"}
        iid = self.add_inbox(
            channel, names.get(channel, channel.replace("_", " ").title()), account_id=account_id
        )
        return self._inboxes[iid]

    def _change(
        self,
        conversation: _Conversation,
        *,
        status: str = UNSET,
        labels: Sequence[str] = UNSET,
        priority: str | None = UNSET,
        assignee: str | None = UNSET,
        team_id: int | None = UNSET,
        snoozed_until: int | None = UNSET,
        touch: bool = True,
    ) -> None:
        """Change what is given (checked first, all or nothing); a change moves ``updated_at`` to now."""
        owner, cid = conversation.account_id, conversation.conversation_id
        if status is not UNSET and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        if priority is not UNSET and priority is not None and priority not in PRIORITIES:
            raise ValueError(f"priority must be one of {PRIORITIES} or None, not {priority!r}")
        if team_id is not UNSET and team_id is not None and (owner, int(team_id)) not in self._teams:
            raise ValueError(f"unknown team {team_id} in account {owner}; call add_team() first")
        if labels is not UNSET and (isinstance(labels, str) or not all(isinstance(x, str) for x in labels)):
            raise ValueError("labels must be a sequence of strings")
        if status is not UNSET:
            self._by_status[(owner, conversation.status)].discard(cid)
            self._by_status.setdefault((owner, status), set()).add(cid)
            conversation.status = status
            if status != "snoozed":
                conversation.snoozed_until = None
        if snoozed_until is not UNSET:
            conversation.snoozed_until = None if snoozed_until is None else int(snoozed_until)
        if labels is not UNSET:
            for label in conversation.labels:
                self._by_label[(owner, label)].discard(cid)
            conversation.labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
            for label in conversation.labels:
                self._by_label.setdefault((owner, label), set()).add(cid)
        if priority is not UNSET:
            conversation.priority = priority
        if assignee is not UNSET:
            conversation.assignee_id = None if assignee is None else self._person("User", assignee)
        if team_id is not UNSET:
            conversation.team_id = None if team_id is None else int(team_id)
        if touch:
            conversation.updated_at = max(conversation.updated_at, float(self.clock.now()))

    def _commit(
        self, conversation: _Conversation, record: _Record, committed_at: float | None = None
    ) -> None:
        """What committing a message does to its conversation (Chatwoot's Message callbacks)."""
        message = record.message
        created = message["created_at"]
        # last_activity_at follows the message committed last, even an older one; updated_at only moves on.
        conversation.last_activity_at = created
        now = float(self.clock.now()) if committed_at is None else committed_at
        conversation.updated_at = max(conversation.updated_at, now)
        kind = message["message_type"]
        if kind == "incoming":
            if conversation.status in ("resolved", "snoozed"):
                self._change(conversation, status="open", touch=False)
            if conversation.waiting_since is None:
                conversation.waiting_since = created
            if conversation.last_incoming is None or message["id"] > conversation.last_incoming[0]:
                conversation.last_incoming = (message["id"], created)
            conversation.unread_count += 1
        elif kind == "outgoing" and not message["private"]:
            sender = message.get("sender") or {}
            if sender.get("type") in ("User", "AgentBot"):
                conversation.waiting_since = None  # a public reply by an agent or a bot
            if sender.get("type") == "User" and conversation.first_reply_created_at is None:
                conversation.first_reply_created_at = created

    def _find(
        self, account_id: int, params: Mapping[str, list[str]], sort: bool = True
    ) -> tuple[list[_Conversation], dict[str, int]]:
        """ConversationFinder: the filtered conversations (sorted) and the counts of the list's meta.

        The counts are taken before ``assignee_type`` filters and ``updated_within`` applies.
        """
        if account_id not in self._accounts:
            raise NotFound(f"account {account_id}")

        def last(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        found: set[int] | None = None

        def narrow(ids: set[int]) -> None:
            nonlocal found
            found = set(ids) if found is None else found & ids

        inbox_id = last("inbox_id")
        if inbox_id is not None:
            inbox = self._inboxes.get(ruby_to_i(inbox_id))
            narrow(self._by_inbox[inbox.inbox_id] if inbox and inbox.account_id == account_id else set())
        query = last("q")
        if query is None:
            status = last("status")
            if status != "all":
                narrow(self._by_status.get((account_id, DEFAULT_STATUS if status is None else status), set()))
        labels = account.query_list(params, "labels")
        if labels is not None:
            narrow(set().union(*(self._by_label.get((account_id, label), set()) for label in labels)))
        conversations = self._by_account.get(account_id, {})
        rows = list(conversations.values()) if found is None else [conversations[c] for c in found]
        team_id = last("team_id")
        if team_id is not None:
            team = ruby_to_i(team_id)
            if (account_id, team) not in self._teams:
                raise NotFound(f"team {team_id}")
            rows = [c for c in rows if c.team_id == team]
        if query is not None:
            needle = query.lower()
            rows = [c for c in rows if self._mentions(c, needle)]
        me = self._people[("User", DEFAULT_AGENT)]
        unassigned = sum(1 for c in rows if c.assignee_id is None)
        counts = {
            "mine_count": sum(1 for c in rows if c.assignee_id == me),
            "assigned_count": len(rows) - unassigned,
            "unassigned_count": unassigned,
            "all_count": len(rows),
        }
        assignee_type = last("assignee_type")
        if assignee_type == "me":
            rows = [c for c in rows if c.assignee_id == me]
        elif assignee_type == "unassigned":
            rows = [c for c in rows if c.assignee_id is None]
        elif assignee_type == "assigned":
            rows = [c for c in rows if c.assignee_id is not None]
        if sort:
            key, reverse = account.sort_key(last("sort_by"), self.clock.now())
            rows.sort(key=key, reverse=reverse)
        return rows, counts

    @staticmethod
    def _mentions(conversation: _Conversation, needle: str) -> bool:
        """Whether an incoming or outgoing message of the conversation contains ``needle`` (ILIKE)."""
        return any(
            r.visible
            and r.deleted != "hard"
            and r.message["message_type"] in ("incoming", "outgoing")
            and needle in (r.message["content"] or "").lower()
            for r in conversation.records
        )

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
        template_params: dict[str, Any] | None = None,
    ) -> _Record:
        message_id = self._next_message_id
        self._next_message_id += self.id_step
        if sender_type is None and message_type != "activity":
            sender_type = "Contact" if message_type == "incoming" else "User"
        message: dict[str, Any] = {
            "id": message_id,
            "content": content,
            "account_id": conversation.account_id,
            "inbox_id": conversation.inbox_id,
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
        if template_params is not None:  # where Chatwoot keeps them
            message["additional_attributes"] = {"template_params": template_params}
        if sender_type is not None:  # Chatwoot's activity messages carry no sender
            defaults = {"Contact": self._names[conversation.contact_id], "AgentBot": DEFAULT_BOT}
            name = sender_name or defaults.get(sender_type, DEFAULT_AGENT)
            message["sender"] = {"id": self._person(sender_type, name), "name": name, "type": sender_type}
        record = _Record(message)
        self._records[message_id] = record
        return record

    def _append(
        self, conversation: _Conversation, record: _Record, committed_at: float | None = None
    ) -> None:
        index = bisect.bisect_right(conversation.keys, record.key)
        conversation.keys.insert(index, record.key)
        conversation.records.insert(index, record)
        if record.visible:
            self._commit(conversation, record, committed_at)
        # A late message shows up once enough newer messages have landed in its conversation:
        # it is committed then, with its older created_at.
        for waiting in conversation.waiting:
            if waiting.late > 0:
                waiting.late -= 1
                if waiting.late == 0:
                    waiting.visible = True
                    self._commit(conversation, waiting)
        conversation.waiting = [w for w in conversation.waiting if w.late > 0]
        if record.late > 0:
            conversation.waiting.append(record)

    def _schedule_delivery(self, conversation: _Conversation, record: _Record) -> None:
        """What the channel does with a POSTed public outgoing message, after the 200.

        WhatsApp outside its window: the free text is not sent (no template), the message fails
        ``window_failure_delay`` seconds later with Chatwoot's ``external_error``. A WhatsApp message
        with ``template_params`` is sent as a template, window or not: one the inbox knows
        (:meth:`add_template`) goes on like free text inside the window, an unknown one fails the
        same delay later with Meta's error. Inside a messaging channel's window, with
        ``delivery_receipts`` on: delivered, then read. API inboxes get no receipts (the integrator
        sets the status there).
        """
        message = record.message
        if message["message_type"] != "outgoing" or message["private"]:
            return
        inbox = self._inboxes[conversation.inbox_id]
        now = self.clock.now()
        last_incoming_at = None if conversation.last_incoming is None else conversation.last_incoming[1]
        template = message.get("additional_attributes", {}).get("template_params")
        templated = template is not None and inbox.channel in TEMPLATE_CHANNELS
        if templated and not self._knows_template(inbox.inbox_id, template):
            record.schedule = [(now + self.window_failure_delay, "failed")]
            record.failure = UNKNOWN_TEMPLATE_ERROR
        elif not templated and not account.can_reply(inbox, last_incoming_at, now):
            if inbox.channel in TEMPLATE_CHANNELS:
                record.schedule = [(now + self.window_failure_delay, "failed")]
        elif self.delivery_receipts is not None and inbox.channel != "api":
            delivered, read = self.delivery_receipts
            record.schedule = sorted([(now + delivered, "delivered"), (now + max(read, delivered), "read")])
        if record.schedule:
            self._scheduled.append(record)

    def _settle(self) -> None:
        """Apply every status change whose time has come on the clock (read before any answer)."""
        if not self._scheduled:
            return
        now = self.clock.now()
        for record in self._scheduled:
            while record.schedule and record.schedule[0][0] <= now:
                _, status = record.schedule.pop(0)
                record.message["status"] = status
                if status == "failed":
                    record.message["content_attributes"] = {
                        **record.message["content_attributes"],
                        "external_error": record.failure,
                    }
        self._scheduled = [r for r in self._scheduled if r.schedule]

    def _render(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.flavor == "chatwoot":
            return chatwoot.render_message(message, self.int_message_types)
        rendered = dict(message)
        # Chatwoot's message views leave additional_attributes (a template's parameters) out.
        rendered.pop("additional_attributes", None)
        if self.int_message_types:
            rendered["message_type"] = MESSAGE_TYPES.index(message["message_type"])
        return rendered

    def _render_conversation(self, conversation: _Conversation) -> dict[str, Any]:
        """``_conversation.json.jbuilder``: one conversation as the list and show endpoints answer it."""
        shown = [r for r in conversation.records if r.visible and r.deleted != "hard"]
        last = max(shown, key=lambda r: r.message["id"], default=None)
        last_chat = max(
            (r for r in shown if r.message["message_type"] != "activity"),
            key=lambda r: r.message["id"],
            default=None,
        )
        inbox = self._inboxes[conversation.inbox_id]
        owner = conversation.account_id
        contact = conversation.contact_id
        meta: dict[str, Any] = {
            "sender": account.render_contact(
                contact, self._names[contact], conversation.created_at, conversation.last_activity_at
            ),
            "channel": inbox.channel_type,
        }
        if conversation.assignee_id is not None:
            meta["assignee"] = account.render_agent(
                conversation.assignee_id, self._names[conversation.assignee_id], owner
            )
        if conversation.team_id is not None:
            meta["team"] = account.render_team(
                conversation.team_id, self._teams[(owner, conversation.team_id)], owner
            )
        meta["hmac_verified"] = False
        last_incoming_at = None if conversation.last_incoming is None else conversation.last_incoming[1]
        return {
            "meta": meta,
            "id": conversation.conversation_id,
            "messages": [] if last is None else [self._render(last.message)],
            "account_id": owner,
            "uuid": f"00000000-0000-4000-8000-{owner:04d}{conversation.conversation_id:08d}"[-36:],
            "additional_attributes": {},
            "agent_last_seen_at": 0,
            "assignee_last_seen_at": 0,
            "can_reply": account.can_reply(inbox, last_incoming_at, self.clock.now()),
            "contact_last_seen_at": 0,
            "custom_attributes": {},
            "inbox_id": conversation.inbox_id,
            "labels": list(conversation.labels),
            "muted": False,
            "snoozed_until": conversation.snoozed_until,
            "status": conversation.status,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "timestamp": conversation.last_activity_at,
            "first_reply_created_at": conversation.first_reply_created_at or 0,
            "unread_count": conversation.unread_count,
            "last_non_activity_message": None if last_chat is None else self._render(last_chat.message),
            "last_activity_at": conversation.last_activity_at,
            "priority": conversation.priority,
            "waiting_since": conversation.waiting_since or 0,
            "sla_policy_id": None,
        }
