"""Polling for new messages: the :class:`MessageFilter` and the :class:`MessageWatch` cursor.

The watch re-reads ``overlap`` seconds behind its cursor and de-duplicates by id, so a late commit
is still found and nothing is reported twice; its state is plain JSON. A watcher's batches stay in
that state (``pending``) from before their event leaves until the event is surely stored, so a
restart announces them again instead of losing them. Rule: no I/O, no clock: the start point and
every "now" are given, and "new" is decided from the messages alone.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_doto.api._flavors import SERVER_FLAVORS, ServerReading, resolve_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.api._listing import (
    ID_ORDER_SLACK,
    id_paged_flow,
    list_messages_flow,
    window_start_id_flow,
)
from airflow_provider_doto.api._messages import Message, sort_messages
from airflow_provider_doto.api._values import DEFAULT_OVERLAP, MESSAGE_TYPES, to_id
from airflow_provider_doto.exceptions import DotoConfigError


def _sender_key(sender_type: str | None) -> str | None:
    """Doto's reference spells sender types "Contact", "User", "AgentBot"; Chatwoot's push data
    "contact", "user", "agent_bot". Compared without case and underscores, they are the same."""
    return None if sender_type is None else sender_type.lower().replace("_", "")


@dataclass(frozen=True)
class MessageFilter:
    """Which new messages count. Defaults: incoming, public, any sender, any text."""

    message_types: Sequence[str] = ("incoming",)  # stored as a tuple
    include_private: bool = False
    sender_types: Sequence[str] | None = None  # stored as a tuple; a bare string is one type
    content_pattern: str | None = None

    def __post_init__(self) -> None:
        types = self.message_types
        if (
            isinstance(types, str)
            or not isinstance(types, Iterable)
            or not (types := tuple(types))
            or not all(isinstance(t, str) and t in MESSAGE_TYPES for t in types)
        ):
            raise DotoConfigError(
                f"message_types must be a list drawn from {', '.join(MESSAGE_TYPES)} (at least one), got {self.message_types!r}."
            )
        object.__setattr__(self, "message_types", types)
        if self.sender_types is not None:
            senders = (self.sender_types,) if isinstance(self.sender_types, str) else self.sender_types
            senders = tuple(senders) if isinstance(senders, Iterable) else (None,)
            if not senders or not all(isinstance(s, str) and s for s in senders):
                raise DotoConfigError(
                    f"sender_types must be a list of sender types such as ['Contact'], got {self.sender_types!r}."
                )
            object.__setattr__(self, "sender_types", senders)
        if not isinstance(self.include_private, bool):
            raise DotoConfigError(f"include_private must be True or False, got {self.include_private!r}.")
        if self.content_pattern is not None:
            try:
                re.compile(self.content_pattern)
            except (re.error, TypeError) as err:
                raise DotoConfigError(
                    f"content_pattern {self.content_pattern!r} is not a valid regular expression: {err}"
                ) from None

    def matches(self, message: Message) -> bool:
        if message.message_type not in self.message_types:
            return False
        if message.private and not self.include_private:
            return False
        if self.sender_types is not None and _sender_key(message.sender_type) not in {
            _sender_key(s) for s in self.sender_types
        }:
            return False
        if self.content_pattern is not None:
            return re.search(self.content_pattern, message.content or "") is not None
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_types": list(self.message_types),
            "include_private": self.include_private,
            "sender_types": None if self.sender_types is None else list(self.sender_types),
            "content_pattern": self.content_pattern,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MessageFilter:
        sender_types = data.get("sender_types")
        return cls(
            message_types=tuple(data.get("message_types", ("incoming",))),
            include_private=bool(data.get("include_private", False)),
            sender_types=None if sender_types is None else tuple(sender_types),
            content_pattern=data.get("content_pattern"),
        )


@dataclass
class InFlight:
    """A batch whose event has been (or is about to be) announced but may not be stored yet."""

    messages: list[Message]
    handed_over_at: float | None = None  # when its event left the trigger; memory only


class Announcing:
    """A watcher's batches in flight, for a watch with a ``pending`` list of :class:`InFlight`."""

    pending: list[InFlight]

    def announce(self, batch: Sequence[Message]) -> None:
        """Hold ``batch`` as pending: call before its event leaves, and save the state first."""
        self.pending.append(InFlight(sort_messages(batch)))

    def handed_over(self, now: float) -> None:
        """The events of the pending batches have left the trigger (the consumer took them) at ``now``."""
        for batch in self.pending:
            if batch.handed_over_at is None:
                batch.handed_over_at = now

    def settle(self, now: float, after: float) -> bool:
        """Forget the batches handed over at least ``after`` seconds before ``now``; True if any went."""
        kept = [b for b in self.pending if b.handed_over_at is None or now - b.handed_over_at < after]
        settled, self.pending = len(kept) != len(self.pending), kept
        return settled

    def in_flight(self) -> list[Message]:
        """Every pending message, oldest first, each once: what to announce again after a restart."""
        return unique_messages(m for batch in self.pending for m in batch.messages)


@dataclass
class MessageWatch(Announcing):
    """State of a wait for new messages, shared by the sensor (all modes) and the trigger.

    New means ``created_at >= start``, not reported before, not deleted, and matching the filter.
    Each poll asks for ``after = position - overlap``; ``seen`` holds the ids inside that overlap
    so nothing is reported twice, and a message that commits late (an older ``created_at`` after a
    newer message was seen) is still inside the window and still found. On a server that reads
    ``after`` as an id (Chatwoot) the same overlap is kept in ids: ``after_id`` is the newest id
    that left the overlap window, so a lower id committed late is still above it. ``to_state()``
    is plain JSON (with the server's reading once known), so the watch survives reschedules, trigger
    restarts and serialisation without probing the server again.

    A watcher, whose events nobody acknowledges, keeps each batch it announces in ``pending``
    (:meth:`announce`, saved before the event leaves) until the event has been handed over for
    long enough to be stored (:meth:`handed_over`, :meth:`settle`). A watch restored with
    batches pending announces them again, merged into one (:meth:`in_flight`): at least once,
    with duplicates bounded to those batches.
    """

    start: int
    filter: MessageFilter = field(default_factory=MessageFilter)
    min_messages: int = 1
    overlap: int = DEFAULT_OVERLAP
    position: int | None = None
    seen: dict[int, int] = field(default_factory=dict)  # id -> created_at
    matched: list[Message] = field(default_factory=list)  # found, not yet reported (< min_messages)
    reading: ServerReading = field(default_factory=ServerReading)  # how the server reads before/after
    after_id: int | None = None  # chatwoot: ids at or below this are behind the overlap window
    pending: list[InFlight] = field(default_factory=list)  # announced, not surely stored yet

    def __post_init__(self) -> None:
        if (
            isinstance(self.min_messages, bool)
            or not isinstance(self.min_messages, int)
            or self.min_messages < 1
        ):
            raise DotoConfigError(f"min_messages must be a positive integer, got {self.min_messages!r}.")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or self.overlap < 0:
            raise DotoConfigError(f"overlap must be a non-negative integer of seconds, got {self.overlap!r}.")
        if self.position is None:
            self.position = self.start - 1

    @property
    def poll_after(self) -> int:
        """The ``after`` to ask with: the cursor, less the overlap."""
        assert self.position is not None
        return self.position - self.overlap

    def poll_flow(
        self, account_id: int, conversation_id: int | str, flavor: str | ServerReading = "auto"
    ) -> Generator[DotoRequest, DotoResponse, list[Message] | None]:
        """One poll: list from the cursor (paging if needed) and :meth:`feed` the result.

        ``flavor`` is the caller's reading of the server; what this watch found earlier (an earlier
        try or process) saves a new probe, and what it finds now is kept in ``reading``.
        """
        conversation_id = to_id(conversation_id, name="conversation_id")
        given = ServerReading.of(flavor).learned(self.reading.known)
        reading = yield from resolve_flow(given, account_id, conversation_id)
        if reading.known is None:  # auto, and nothing in the conversation yet: nothing new either
            return self.feed([])
        if reading.known != self.reading.known:
            self.after_id = None
        self.reading = reading
        if reading.known == "chatwoot":
            if self.after_id is None:
                self.after_id = yield from window_start_id_flow(account_id, conversation_id, self.poll_after)
            page = yield from id_paged_flow(account_id, conversation_id, after_id=self.after_id)
        else:
            page = yield from list_messages_flow(
                account_id, conversation_id, after=self.poll_after, flavor=reading
            )
        return self.feed(page)

    def feed(self, messages: Sequence[Message]) -> list[Message] | None:
        """Take one poll's messages; return the batch of new matches once there are ``min_messages``."""
        assert self.position is not None
        for message in sort_messages(messages):
            if message.id in self.seen:
                continue
            self.seen[message.id] = message.created_at
            if message.created_at >= self.start and not message.is_deleted and self.filter.matches(message):
                self.matched.append(message)
        if messages:
            self.position = max(self.position, max(m.created_at for m in messages))
        horizon = self.position - self.overlap
        if self.reading.known == "chatwoot":
            # Ids leave ``seen`` only by moving below ``after_id``, so no re-read id is new again.
            horizon -= ID_ORDER_SLACK
            left = [mid for mid, ts in self.seen.items() if ts < horizon]
            if left:
                self.after_id = max(self.after_id or 0, *left)
        self.seen = {mid: ts for mid, ts in self.seen.items() if ts >= horizon}
        if len(self.matched) >= self.min_messages:
            batch, self.matched = sort_messages(self.matched), []
            return batch
        return None

    # ---- state --------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "start": self.start,
            "position": self.position,
            "seen": [[mid, ts] for mid, ts in self.seen.items()],
            "matched": [m.to_dict() for m in self.matched],
            "flavor": self.reading.known,
            "after_id": self.after_id,
        }
        if self.pending:  # only watchers have any; the sensor's state keeps its shape
            state["pending"] = [[m.to_dict() for m in b.messages] for b in self.pending]
        return state

    def restore(self, state: Mapping[str, Any] | None) -> MessageWatch:
        """Continue from ``to_state()`` output taken with the same start point; ignore anything else."""
        if not state or state.get("start") != self.start or state.get("account"):
            return self
        self.position = int(state["position"])
        self.seen = {int(mid): int(ts) for mid, ts in state.get("seen", [])}
        self.matched = [Message.from_dict(m) for m in state.get("matched", [])]
        flavor = state.get("flavor")
        self.reading = ServerReading().learned(flavor if flavor in SERVER_FLAVORS else None)
        after_id = state.get("after_id")
        self.after_id = int(after_id) if self.reading.known == "chatwoot" and after_id is not None else None
        # Announced by a run that may have died before the event was stored: one batch to announce again.
        pending = unique_messages(Message.from_dict(m) for batch in state.get("pending", []) for m in batch)
        self.pending = [InFlight(pending)] if pending else []
        return self


def unique_messages(messages: Iterable[Message]) -> list[Message]:
    """Oldest first, each message (of each conversation) once."""
    return sort_messages({(m.conversation_id, m.id): m for m in messages}.values())
