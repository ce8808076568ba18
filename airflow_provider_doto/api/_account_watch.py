"""Watching every conversation of an account with one cursor: the :class:`AccountWatch`.

Each poll is one conversation list narrowed to what changed since the last poll (``updated_within``
from the previous listing, less the overlap), so an idle poll is one request whatever the
account's size. A conversation is read only when it changed: its ``updated_at`` moved (a late-committed message
moves ``last_activity_at`` back, ``updated_at`` only forward: CHATWOOT-ACCOUNT.md), or its last
message, unread count or last activity did (:data:`Version`); and then with its own
:class:`~airflow_provider_doto.api._watch.MessageWatch` cursor, so the guarantees of one
conversation hold in each: nothing lost, nothing twice, late commits, soft deletes, both readings.

The state stays bounded: a conversation's cursor is kept while it may still change within the
horizon (``overlap`` plus the clock slack) and dropped after. Dropping is safe because of the
``floor``: every message created before it in a conversation without a cursor has been seen, and
none created at or after it has been reported, so a dropped conversation that changes again starts
a fresh cursor at the floor. Rule, as in ``_watch``: no I/O and no clock; ``now`` is given.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_doto.api._conversations import (
    CLOCK_SLACK,
    Conversation,
    ConversationPager,
    ConversationQuery,
    query_from,
)
from airflow_provider_doto.api._flavors import SERVER_FLAVORS, ServerReading
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, is_doto_not_found
from airflow_provider_doto.api._messages import Message, sort_messages
from airflow_provider_doto.api._values import DEFAULT_OVERLAP, Timestamp, to_timestamp
from airflow_provider_doto.api._watch import (
    Announcing,
    InFlight,
    MessageFilter,
    MessageWatch,
    unique_messages,
)
from airflow_provider_doto.exceptions import DotoConfigError, DotoNotFoundError

# What narrows an account watch: the list's filters that say which conversations, not how to order.
WATCH_QUERY_FIELDS = ("status", "inbox_id", "team_id", "labels", "assignee_type")
# Every status by default: a message in a resolved or snoozed conversation counts too (it reopens it).
WATCH_STATUS = "all"
LISTINGS = ("updated_within", "paged")


def watch_query(
    value: ConversationQuery | Mapping[str, Any] | None, *, name: str = "conversation_query"
) -> ConversationQuery:
    """The conversations an account watch covers: every status unless narrowed; only the fields of
    :data:`WATCH_QUERY_FIELDS` (the watch sets the time window and the order itself)."""
    if value is None:
        return ConversationQuery(status=WATCH_STATUS)
    if isinstance(value, Mapping):
        value = {"status": WATCH_STATUS, **value}
    query = query_from(value, name=name)
    extra = sorted(name for name in ("q", "sort_by", "active_since") if getattr(query, name) is not None)
    if extra:
        raise DotoConfigError(
            f"{name} of a watch takes only {', '.join(WATCH_QUERY_FIELDS)}; "
            f"it sets the time window and order itself (got {', '.join(extra)})."
        )
    return query


def query_fields(query: ConversationQuery) -> dict[str, Any]:
    """A watch query as plain JSON (trigger kwargs, deterministic: only what differs from the default)."""
    fields: dict[str, Any] = {
        "status": query.status,
        "inbox_id": query.inbox_id,
        "team_id": query.team_id,
        "labels": sorted(query.labels) or None,
        "assignee_type": query.assignee_type,
    }
    return {k: v for k, v in fields.items() if v is not None and not (k == "status" and v == WATCH_STATUS)}


# What the list shows of a conversation's change: ``updated_at`` (moves forward on every commit and
# every other change), ``last_activity_at`` (the created_at of the message committed last: a late
# commit moves it back), the id of its last message and ``unread_count``. ``updated_at`` alone misses
# a message committed in the same ``updated_at`` as the read before it (a server whose updated_at has
# whole seconds); the others change with that message.
Version = tuple[float | None, int, int | None, int]


def version_of(conversation: Conversation) -> Version:
    messages = conversation.raw.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    last_id = last.get("id") if isinstance(last, Mapping) else None
    return (
        conversation.updated_at,
        conversation.last_activity_at,
        last_id if isinstance(last_id, int) and not isinstance(last_id, bool) else None,
        conversation.unread_count,
    )


def _listed(version: Version | None) -> list[Any] | None:
    return None if version is None else list(version)  # JSON has lists, not tuples


def _restored_version(value: Any) -> Version | None:
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None  # unknown: the conversation is read again
    updated_at, last_activity_at, last_id, unread = value
    return (None if updated_at is None else float(updated_at), int(last_activity_at), last_id, int(unread))


@dataclass
class AccountWatch(Announcing):
    """State of a wait for new messages in any conversation of an account (or of a query).

    New means, as in :class:`MessageWatch`: created at or after ``start``, not reported before, not
    deleted, matching the filter. Each message found carries its ``conversation_id``. ``listed_at``
    is the caller's clock when the last complete listing began; the next one asks for conversations
    updated since then, less ``overlap`` (and :data:`CLOCK_SLACK`, in the request). ``versions``
    holds each tracked conversation's :data:`Version` when its messages were last read, ``cursors``
    its message cursor. ``listing`` remembers a server that ignores ``updated_within``.
    """

    start: int
    filter: MessageFilter = field(default_factory=MessageFilter)
    min_messages: int = 1
    overlap: int = DEFAULT_OVERLAP
    query: ConversationQuery = field(default_factory=lambda: watch_query(None))
    listed_at: float | None = None
    listing: str | None = None  # "updated_within" or "paged", once the server has shown which
    reading: ServerReading = field(default_factory=ServerReading)
    cursors: dict[int, MessageWatch] = field(default_factory=dict)
    versions: dict[int, Version | None] = field(default_factory=dict)
    matched: list[Message] = field(default_factory=list)
    pending: list[InFlight] = field(default_factory=list)

    def __post_init__(self) -> None:
        # MessageWatch checks min_messages and overlap, naming them.
        MessageWatch(
            start=self.start, filter=self.filter, min_messages=self.min_messages, overlap=self.overlap
        )
        if not isinstance(self.query, ConversationQuery):
            raise DotoConfigError(f"query must be a ConversationQuery, got {type(self.query).__name__}.")

    @property
    def floor(self) -> int:
        """Created before this, a message of a conversation without a cursor is no longer new.

        The previous listing covered every commit until ``listed_at``; a message committed after it
        was created at most ``overlap`` before its commit, by a clock at most :data:`CLOCK_SLACK` off.
        """
        if self.listed_at is None:
            return self.start
        return max(self.start, math.floor(self.listed_at) - self.overlap - CLOCK_SLACK)

    def _since(self) -> int:
        """Conversations updated after this (Unix seconds) are listed by the next poll."""
        if self.listed_at is None:
            return self.start - self.overlap
        return math.floor(self.listed_at) - self.overlap

    def poll_flow(
        self, account_id: int, now: Timestamp, flavor: str | ServerReading = "auto"
    ) -> Generator[DotoRequest, DotoResponse, list[Message] | None]:
        """One poll: list what changed, read each changed conversation, return the new matches once
        there are ``min_messages`` (oldest first, each with its ``conversation_id``), else None.

        A poll that raises leaves every conversation it finished read (their matches kept for the
        next poll) and the listing to do again; nothing is lost or reported twice.
        """
        now = to_timestamp(now, name="now")
        given = ServerReading.of(flavor).learned(self.reading.known)
        if given.known != self.reading.known:
            self.reading = given
        query = replace(self.query, active_since=self._since())
        pager = ConversationPager(account_id, query, now=now, try_updated_within=self.listing != "paged")
        floor = self.floor
        changed: set[int] = set()
        while not pager.done:
            page = yield from pager.next_page_flow()
            for conversation in page:
                if self._changed(conversation):
                    changed.add(conversation.id)
                    yield from self._read_flow(account_id, conversation, floor)
        self.listing = pager.mode
        self.listed_at = float(now)
        self._forget(changed)
        if len(self.matched) >= self.min_messages:
            batch, self.matched = sort_messages(self.matched), []
            return batch
        return None

    def _changed(self, conversation: Conversation) -> bool:
        known = self.versions.get(conversation.id)
        return known is None or conversation.updated_at is None or version_of(conversation) != known

    def _read_flow(
        self, account_id: int, conversation: Conversation, floor: int
    ) -> Generator[DotoRequest, DotoResponse, None]:
        cid = conversation.id
        cursor = self.cursors.get(cid) or MessageWatch(
            start=max(self.start, floor), filter=self.filter, overlap=self.overlap
        )
        try:
            batch = yield from cursor.poll_flow(account_id, cid, self.reading)
        except DotoNotFoundError as error:
            if not is_doto_not_found(error.doto_error):
                raise  # no such endpoint: the whole watch is wrong, not this conversation
            # Deleted between the list and the read: nothing more will come from it.
            self.cursors.pop(cid, None)
            self.versions.pop(cid, None)
            return
        self.reading = self.reading.learned(cursor.reading.known)
        self.cursors[cid] = cursor
        self.versions[cid] = version_of(conversation)
        if batch:
            self.matched.extend(replace(m, conversation_id=cid) for m in batch)

    def _forget(self, changed: set[int]) -> None:
        """Drop the cursors of conversations quiet since before the (new) floor."""
        floor = self.floor
        for cid in [c for c in self.cursors if c not in changed]:
            cursor, version = self.cursors[cid], self.versions.get(cid)
            assert cursor.position is not None
            updated_at = None if version is None else version[0]
            if cursor.position < floor and updated_at is not None and updated_at < floor:
                del self.cursors[cid]
                self.versions.pop(cid, None)

    # ---- state --------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain JSON, compact: a cursor is ``[id, version, start, position, after_id, seen]``."""
        cursors = []
        for cid, cursor in self.cursors.items():
            seen = [[mid, ts] for mid, ts in cursor.seen.items()]
            cursors.append(
                [cid, _listed(self.versions.get(cid)), cursor.start, cursor.position, cursor.after_id, seen]
            )
        state: dict[str, Any] = {
            "account": True,
            "start": self.start,
            "listed_at": self.listed_at,
            "listing": self.listing,
            "flavor": self.reading.known,
            "cursors": cursors,
            "matched": [m.to_dict() for m in self.matched],
        }
        if self.pending:
            state["pending"] = [[m.to_dict() for m in b.messages] for b in self.pending]
        return state

    def restore(self, state: Mapping[str, Any] | None) -> AccountWatch:
        """Continue from ``to_state()`` output taken with the same start point; ignore anything else
        (a single conversation's state included)."""
        if not state or not state.get("account") or state.get("start") != self.start:
            return self
        listed_at = state.get("listed_at")
        self.listed_at = None if listed_at is None else float(listed_at)
        listing = state.get("listing")
        self.listing = listing if listing in LISTINGS else None
        flavor = state.get("flavor")
        self.reading = ServerReading().learned(flavor if flavor in SERVER_FLAVORS else None)
        self.cursors, self.versions = {}, {}
        for cid, version, start, position, after_id, seen in state.get("cursors", []):
            cursor_state = {"start": start, "position": position, "seen": seen, "after_id": after_id}
            cursor = MessageWatch(start=int(start), filter=self.filter, overlap=self.overlap)
            self.cursors[int(cid)] = cursor.restore({**cursor_state, "flavor": self.reading.known})
            self.versions[int(cid)] = _restored_version(version)
        self.matched = [Message.from_dict(m) for m in state.get("matched", [])]
        pending = unique_messages(Message.from_dict(m) for batch in state.get("pending", []) for m in batch)
        self.pending = [InFlight(pending)] if pending else []
        return self
