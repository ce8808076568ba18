"""Conversations of an account: the :class:`Conversation` a payload becomes, the checked
:class:`ConversationQuery`, and the flows that list (a page at a time) or fetch them.

Rule: no I/O and no clock. Whatever the server sends becomes Conversations or a
:class:`DotoResponseError` naming the field; a query is checked when it is built (a
:class:`DotoConfigError` naming the argument), before anything is sent. ``active_since`` is a time
the caller gives, and so is ``now``, from which the ``updated_within`` window is counted: the hooks
read their clock when called, as the transports do when a response arrives.

How ``active_since`` is listed (Chatwoot's ``conversation_finder.rb``): first one request with
``updated_within`` (seconds, plus :data:`CLOCK_SLACK` for the servers' clocks), which a server since
February 2024 answers with every match and no paging. An older server ignores it and answers its
first page instead; that shows (:func:`ignored_updated_within`) as a conversation updated before
the window, or an answer of exactly one page that ``meta`` does not count as the whole list. Then the
list is paged by ``last_activity_at_desc`` and stops at the first conversation active before the
time. Either way each answer is de-duplicated by id, and a pager holds one page.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from airflow_provider_doto.api._http import (
    DotoRequest,
    DotoResponse,
    error_for_status,
    is_doto_not_found,
    parse_json,
)
from airflow_provider_doto.api._messages import Message, Sender, parse_message
from airflow_provider_doto.api._values import Timestamp, to_id, to_timestamp
from airflow_provider_doto.exceptions import DotoConfigError, DotoNotFoundError, DotoResponseError

# Chatwoot's page of conversations (server env CONVERSATION_RESULTS_PER_PAGE): a shorter one is the last.
PAGE_SIZE = 25
STATUSES = ("open", "resolved", "pending", "snoozed", "all")
ASSIGNEE_TYPES = ("me", "unassigned", "assigned", "all")
SORT_ORDERS = (
    "last_activity_at_desc",
    "last_activity_at_asc",
    "created_at_desc",
    "created_at_asc",
    "priority_desc",
    "priority_asc",
    "waiting_since_desc",
    "waiting_since_asc",
    "unread",
)
# The order ``active_since`` pages in when the server ignores ``updated_within``.
ACTIVITY_ORDER = "last_activity_at_desc"
# Seconds added to the ``updated_within`` window: the server counts it from its own clock, and the
# request takes time to arrive. Clocks up to this far apart either way are covered: an answer holding
# a conversation updated more than twice this before the time counts as unfiltered.
CLOCK_SLACK = 60
# Unix seconds that ``datetime`` can represent (years 1 to 9999).
_MIN_TIMESTAMP, _MAX_TIMESTAMP = -62135596800, 253402300799


@dataclass(frozen=True)
class Conversation:
    """A conversation of the account, normalised; absent optional keys become ``None`` (or ``()``/0).

    ``id`` is the display id (the one in message URLs and ``list_messages``). Times are Unix
    seconds; ``updated_at`` keeps the fraction Chatwoot sends. ``waiting_since`` is None when nobody
    waits (Chatwoot sends 0). ``can_reply`` is None when the server does not say. ``contact`` is the
    conversation's contact (``meta.sender``), ``last_message`` its latest incoming, outgoing or
    template message. ``raw`` keeps the payload as sent; ``to_dict()`` is the JSON-safe form (XCom).
    """

    id: int
    last_activity_at: int
    inbox_id: int | None = None
    channel: str | None = None
    status: str | None = None
    labels: tuple[str, ...] = ()
    priority: str | None = None
    assignee_id: int | None = None
    created_at: int | None = None
    updated_at: float | None = None
    waiting_since: int | None = None
    can_reply: bool | None = None
    unread_count: int = 0
    contact: Sender | None = None
    last_message: Message | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "inbox_id": self.inbox_id,
            "channel": self.channel,
            "status": self.status,
            "labels": list(self.labels),
            "priority": self.priority,
            "assignee_id": self.assignee_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_activity_at": self.last_activity_at,
            "waiting_since": self.waiting_since,
            "can_reply": self.can_reply,
            "unread_count": self.unread_count,
            "contact": None
            if self.contact is None
            else {"id": self.contact.id, "name": self.contact.name, "type": self.contact.type},
            "last_message": None if self.last_message is None else self.last_message.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """Rebuild from ``to_dict()`` output or a raw payload (same parser)."""
        return parse_conversation(data)


def parse_conversation(data: Any, *, where: str = "conversation") -> Conversation:
    """Normalise one conversation payload (Chatwoot's, or ``to_dict()``'s); :class:`DotoResponseError`
    names a required field (``id``, ``last_activity_at``) or a time that is present but unusable."""

    def bad(why: str) -> DotoResponseError:
        return DotoResponseError(f"Doto returned a {where} that is not a valid conversation: {why}")

    if not isinstance(data, Mapping):
        raise bad(f"expected an object, got {type(data).__name__}")
    cid = data.get("id")
    if not isinstance(cid, int) or isinstance(cid, bool) or cid <= 0:
        raise bad(f"'id' must be a positive integer, got {_shown(cid)}")

    def when(name: str, *, required: bool = False) -> float | None:
        value = data.get(name)
        if value is None and not required:
            return None
        if isinstance(value, str):
            try:
                value = to_timestamp(value, name=name)
            except DotoConfigError as err:  # names the value, clipped: never a body's worth of text
                raise bad(f"{name!r} is not a timestamp") from err
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(f"{name!r} must be a Unix timestamp, got {_shown(value)}")
        if not _MIN_TIMESTAMP <= value <= _MAX_TIMESTAMP:  # also NaN and infinities
            raise bad(f"{name!r} {value!r} is out of range")
        return value

    meta: Mapping[str, Any] = data["meta"] if isinstance(data.get("meta"), Mapping) else {}
    # Chatwoot's ``timestamp`` is ``last_activity_at`` again (the conversation list orders by it).
    older_name = data.get("last_activity_at") is None and data.get("timestamp") is not None
    activity = when("timestamp" if older_name else "last_activity_at", required=True)
    created, updated, waiting = when("created_at"), when("updated_at"), when("waiting_since")
    contact = _sender(meta.get("sender") if "sender" in meta else data.get("contact"), "contact")
    assignee = meta.get("assignee")
    assignee_id = assignee.get("id") if isinstance(assignee, Mapping) else data.get("assignee_id")
    last = data.get("last_non_activity_message", data.get("last_message"))
    try:
        last_message = None if last is None else parse_message(last, where=f"last message of {where}")
    except DotoResponseError as err:
        raise bad(f"'last_non_activity_message': {err}") from None
    labels = data.get("labels")
    unread = data.get("unread_count")
    channel = meta.get("channel", data.get("channel"))
    return Conversation(
        id=cid,
        last_activity_at=int(activity),  # type: ignore[arg-type]  # required: never None
        inbox_id=_positive(data.get("inbox_id")),
        channel=_text(channel),
        status=_text(data.get("status")),
        labels=tuple(x for x in labels if isinstance(x, str)) if isinstance(labels, list) else (),
        priority=_text(data.get("priority")),
        assignee_id=_positive(assignee_id),
        created_at=None if created is None else int(created),
        updated_at=None if updated is None else float(updated),
        waiting_since=int(waiting) if waiting else None,  # Chatwoot's 0: nobody waits
        can_reply=data.get("can_reply") if isinstance(data.get("can_reply"), bool) else None,
        unread_count=unread
        if isinstance(unread, int) and not isinstance(unread, bool) and unread >= 0
        else 0,
        contact=contact,
        last_message=last_message,
        raw=dict(data),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> int | None:
    return value if _is_int(value) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _shown(value: Any) -> str:
    """A value for an error message, clipped: never a body's worth of text."""
    text = repr(value)
    return text[:40] + "..." if len(text) > 40 else text


def _sender(data: Any, default_type: str) -> Sender | None:
    """Chatwoot's ``meta.sender`` is the contact itself (its view has no ``type``)."""
    if not isinstance(data, Mapping):
        return None
    kind = _text(data.get("type")) or default_type
    return Sender(id=_positive(data.get("id")), name=_text(data.get("name")), type=kind)


class ConversationFields(TypedDict, total=False):
    """The fields of a :class:`ConversationQuery` as keyword arguments (the hooks' listing methods)."""

    status: str
    inbox_id: int | str
    team_id: int | str
    labels: Iterable[str]
    assignee_type: str
    q: str
    sort_by: str
    active_since: Timestamp


@dataclass(frozen=True)
class ConversationQuery:
    """Which conversations to list; checked when built, each bad field a :class:`DotoConfigError`.

    ``status`` defaults to ``open`` as on Chatwoot (``all`` for every status; a search ``q`` makes
    the server ignore it). ``labels`` match any. ``active_since`` (a :data:`Timestamp`) keeps the
    conversations with activity after that time, newest activity first (see the module's note);
    it pages by activity, so it takes no other ``sort_by``.
    """

    status: str = "open"
    inbox_id: int | str | None = None  # an int once built; digit strings (templates) are accepted
    team_id: int | str | None = None
    labels: Iterable[str] = ()  # a tuple once built
    assignee_type: str | None = None
    q: str | None = None
    sort_by: str | None = None
    active_since: Timestamp | None = None  # Unix seconds (an int) once built

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        _one_of("status", self.status, STATUSES)
        for name in ("inbox_id", "team_id"):
            if getattr(self, name) is not None:
                put(name, to_id(getattr(self, name), name=name))
        put("labels", _labels(self.labels))
        if self.assignee_type is not None:
            _one_of("assignee_type", self.assignee_type, ASSIGNEE_TYPES)
        if self.q is not None and (not isinstance(self.q, str) or not self.q.strip()):
            raise DotoConfigError(f"q must be a non-empty string, got {_shown(self.q)}.")
        if self.sort_by is not None:
            _one_of("sort_by", self.sort_by, SORT_ORDERS)
        if self.active_since is not None:
            put("active_since", to_timestamp(self.active_since, name="active_since"))
            if self.sort_by not in (None, ACTIVITY_ORDER):
                raise DotoConfigError(
                    f"active_since lists newest activity first (sort_by={ACTIVITY_ORDER!r}); "
                    f"it cannot be combined with sort_by={self.sort_by!r}."
                )

    @classmethod
    def of(
        cls, query: ConversationQuery | None = None, **fields: Unpack[ConversationFields]
    ) -> ConversationQuery:
        """A query from a ``query=`` or from keyword arguments (the hooks' signature), not both;
        a field given as None takes its default."""
        if query is None:
            return cls(**{k: v for k, v in fields.items() if v is not None})  # type: ignore[arg-type]
        if not isinstance(query, ConversationQuery):
            raise DotoConfigError(f"query must be a ConversationQuery, got {type(query).__name__}.")
        given = sorted(k for k, v in fields.items() if v is not None)
        if given:
            raise DotoConfigError(
                f"pass either query= or its fields, not both (got query= and {', '.join(given)})."
            )
        return query

    @property
    def since(self) -> int | None:
        """``active_since`` as Unix seconds."""
        return None if self.active_since is None else to_timestamp(self.active_since, name="active_since")

    def params(self) -> dict[str, int | str | tuple[str, ...]]:
        """The list request's filters (no page, no window)."""
        given: dict[str, Any] = {
            "status": self.status,
            "inbox_id": self.inbox_id,
            "team_id": self.team_id,
            "labels[]": tuple(self.labels) or None,
            "assignee_type": self.assignee_type,
            "q": self.q,
            "sort_by": ACTIVITY_ORDER if self.active_since is not None else self.sort_by,
        }
        return {k: v for k, v in given.items() if v is not None}


QUERY_FIELDS = tuple(ConversationFields.__annotations__)


def query_from(value: Any, *, name: str = "conversation_query") -> ConversationQuery:
    """A :class:`ConversationQuery` as given, or built from a mapping of its fields (an operator's
    rendered ``conversation_query``); a field given as None or ``""`` takes its default. A wrong
    field is a :class:`DotoConfigError` naming ``name`` (if any: an operator's own fields need none)."""
    if isinstance(value, ConversationQuery):
        return value
    if not isinstance(value, Mapping):
        raise DotoConfigError(
            f"{name or 'query'} must be a mapping of the query's fields or a ConversationQuery, got {_shown(value)}."
        )
    unknown = sorted(str(k) for k in value if k not in QUERY_FIELDS)
    if unknown:
        raise DotoConfigError(
            f"{name or 'query'} has no field {', '.join(unknown)}; its fields are {', '.join(QUERY_FIELDS)}."
        )
    try:
        return ConversationQuery(**{k: v for k, v in value.items() if v is not None and v != ""})
    except DotoConfigError as err:
        if not name:
            raise
        raise DotoConfigError(f"{name}: {err}") from err


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DotoConfigError(f"{name} must be one of {', '.join(allowed)}, got {_shown(value)}.")


def _labels(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise DotoConfigError(f"labels must be a list of strings, got {_shown(value)}.")
    labels = tuple(value)
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise DotoConfigError(f"labels must be non-empty strings, got {_shown(label)} in labels.")
    return labels


# ---- requests ---------------------------------------------------------------------------------


def conversations_path(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/conversations"


def conversation_list_request(
    account_id: int, query: ConversationQuery, *, page: int = 1, updated_within: int | None = None
) -> DotoRequest:
    """One page (1-based, :data:`PAGE_SIZE` a page) of the list; ``updated_within`` in seconds."""
    params = query.params()
    params["page"] = page
    if updated_within is not None:
        params["updated_within"] = updated_within
    return DotoRequest("GET", conversations_path(account_id), params)


def conversation_request(account_id: int, conversation_id: int) -> DotoRequest:
    return DotoRequest("GET", f"{conversations_path(account_id)}/{conversation_id}")


def window_seconds(since: int, now: Timestamp) -> int:
    """``updated_within`` for "updated after ``since``", counted from ``now``, with the clock slack."""
    elapsed = to_timestamp(now, name="now") - since
    return max(1, math.ceil(elapsed)) + CLOCK_SLACK


# ---- responses --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversationPage:
    """One answer of the list: its conversations, in the server's order, and ``meta``'s counts."""

    conversations: list[Conversation]
    counts: Mapping[str, int]


def conversation_page_flow(
    account_id: int, query: ConversationQuery, *, page: int = 1, updated_within: int | None = None
) -> Generator[DotoRequest, DotoResponse, ConversationPage]:
    """One answer of the list: page ``page``, or (``updated_within``) every match if the server honours it."""
    request = conversation_list_request(account_id, query, page=page, updated_within=updated_within)
    return parse_conversation_page(request, (yield request), account_id)


def _not_found(request: DotoRequest, response: DotoResponse, what: str) -> DotoNotFoundError | None:
    """A 404, told apart: Doto's own (``what`` is missing) or the router's (no such endpoint)."""
    error = error_for_status(request, response)
    if not isinstance(error, DotoNotFoundError):
        return None
    where = response.base_url or "this Base URL"
    if is_doto_not_found(error.doto_error):
        text = f"Doto {request.describe()} failed with HTTP 404: {what} does not exist (at {where})"
    else:
        text = (
            f"The server at {where} has no conversation list or conversation endpoint ({request.describe()} "
            "answered HTTP 404, not Doto's own 404): it serves only the Messages API, or the Base URL's "
            "path is wrong"
        )
    return DotoNotFoundError(
        text, method=request.method, path=request.path, status=404, doto_error=error.doto_error
    )


def parse_conversation_page(
    request: DotoRequest, response: DotoResponse, account_id: int
) -> ConversationPage:
    """Chatwoot's ``{"data": {"meta": {...}, "payload": [...]}}`` (a bare ``payload`` is read too)."""
    team = request.params.get("team_id")
    what = f"account {account_id}" + (f" or its team {team}" if team is not None else "")
    missing = _not_found(request, response, what)
    if missing is not None:
        raise missing
    data = parse_json(request, response)
    body = data.get("data", data) if isinstance(data, Mapping) else None
    payload = body.get("payload") if isinstance(body, Mapping) else None
    if not isinstance(payload, list):
        raise DotoResponseError(
            f"Doto {request.describe()} returned no 'data.payload' list of conversations",
            method=request.method,
            path=request.path,
        )
    meta = body.get("meta") if isinstance(body, Mapping) else None
    counts = (
        {k: v for k, v in meta.items() if _is_int(v) and k.endswith("_count")}
        if isinstance(meta, Mapping)
        else {}
    )
    try:
        conversations = [
            parse_conversation(c, where=f"conversation in {request.describe()}") for c in payload
        ]
    except DotoResponseError as error:
        error.method, error.path = request.method, request.path
        raise
    return ConversationPage(conversations, counts)


def parse_single_conversation(request: DotoRequest, response: DotoResponse, account_id: int) -> Conversation:
    conversation_id = request.path.rsplit("/", 1)[1]
    missing = _not_found(request, response, f"conversation {conversation_id} of account {account_id}")
    if missing is not None:
        raise missing
    data = parse_json(request, response)
    # Some deployments wrap single objects as {"payload": {...}}.
    if isinstance(data, Mapping) and "id" not in data and isinstance(data.get("payload"), Mapping):
        data = data["payload"]
    try:
        return parse_conversation(data, where=f"answer to {request.describe()}")
    except DotoResponseError as error:
        error.method, error.path = request.method, request.path
        raise


def ignored_updated_within(page: ConversationPage, since: int) -> bool:
    """Whether an answer to ``updated_within`` may be a server's ordinary first page instead.

    A conversation updated before the window (beyond its slack and :data:`CLOCK_SLACK` for a server
    clock behind ours) shows the filter was not applied. Otherwise an answer of any length but
    :data:`PAGE_SIZE` is whole: longer, no page; shorter, a first page that is the whole list.
    Exactly a page is whole only if ``meta`` counts that many conversations in all (Chatwoot counts
    before the window applies, so a larger count says nothing either way): else it may have been
    cut, and is read as ignored. A wrong "ignored" only costs the paged reading; a wrong "honoured"
    would lose conversations.
    """
    conversations = page.conversations
    if any(c.updated_at is not None and c.updated_at < since - 2 * CLOCK_SLACK for c in conversations):
        return True
    if len(conversations) != PAGE_SIZE:
        return False
    return page.counts.get("all_count") != PAGE_SIZE


# ---- flows ------------------------------------------------------------------------------------


class ConversationPager:
    """The conversations of a :class:`ConversationQuery`, one answer at a time, in the server's order.

    Each :meth:`next_page_flow` makes one request and returns that page's new conversations (by id;
    only the previous page's ids are kept, for the conversations a shifting list repeats across
    the page boundary). ``done`` once the last page is in. With ``active_since`` the first request
    asks with ``updated_within`` (counted from ``now``, which is then required); ``mode`` tells
    what the server did: ``"updated_within"`` (one answer held every match) or ``"paged"`` (also
    from the start with ``try_updated_within=False``, for a server known to ignore it). A
    conversation whose new activity moves it up the list while later pages are read can be missed
    here; its activity is after the listing began, so a next window from then on finds it. A flow
    that raised (a failed request) leaves the pager as it was: it may be asked again.
    """

    def __init__(
        self,
        account_id: int,
        query: ConversationQuery | None = None,
        *,
        now: Timestamp | None = None,
        try_updated_within: bool = True,
    ) -> None:
        self.account_id = account_id
        self.query = query if query is not None else ConversationQuery()
        if not isinstance(self.query, ConversationQuery):
            raise DotoConfigError(f"query must be a ConversationQuery, got {type(self.query).__name__}.")
        self.since = self.query.since
        self._within: int | None = None
        if self.since is not None:
            if now is None:
                raise DotoConfigError(
                    "active_since needs now (when the listing starts) to count updated_within."
                )
            self._within = window_seconds(self.since, now)
        # try_updated_within=False: the caller knows the server ignores it (a watch remembers).
        self.mode: str | None = None if self.since is not None and try_updated_within else "paged"
        self.pages = 0  # answers read
        self.done = False
        self._page = 1
        self._previous: frozenset[int] = frozenset()

    def next_page_flow(self) -> Generator[DotoRequest, DotoResponse, list[Conversation]]:
        """The next answer's new conversations (may be empty); ``[]`` once ``done``."""
        if self.done:
            return []
        if self.mode is None:  # active_since: ask for the window first
            assert self.since is not None
            page = yield from conversation_page_flow(
                self.account_id, self.query, page=1, updated_within=self._within
            )
            self.pages += 1
            if ignored_updated_within(page, self.since):
                self.mode = "paged"  # page from the start: this answer is dropped, not trusted
                return []
            self.mode, self.done = "updated_within", True
            return _unique(c for c in page.conversations if _updated_since(c, self.since))
        page = yield from conversation_page_flow(self.account_id, self.query, page=self._page)
        self.pages += 1
        conversations = page.conversations
        fresh = _unique(c for c in conversations if c.id not in self._previous)
        stale = not fresh and bool(conversations)  # a server that ignores ``page``: stop rather than loop
        past = False  # newest activity first: a conversation active before the time ends the listing
        if self.since is not None:
            since = self.since
            past = any(c.last_activity_at <= since for c in conversations)
            fresh = [c for c in fresh if c.last_activity_at > since]
        self._previous = frozenset(c.id for c in conversations)
        self._page += 1
        self.done = len(conversations) < PAGE_SIZE or stale or past
        return fresh


def _updated_since(conversation: Conversation, since: int) -> bool:
    """In the window: updated after ``since`` (a server without ``updated_at``: active after it)."""
    if conversation.updated_at is not None:
        return conversation.updated_at > since
    return conversation.last_activity_at > since


def _unique(conversations: Iterable[Conversation]) -> list[Conversation]:
    by_id: dict[int, Conversation] = {}
    for conversation in conversations:
        by_id.setdefault(conversation.id, conversation)
    return list(by_id.values())


def list_conversations_flow(
    account_id: int, query: ConversationQuery | None = None, *, now: Timestamp | None = None
) -> Generator[DotoRequest, DotoResponse, list[Conversation]]:
    """Every conversation of the query, each once, in the server's order: the pages of a
    :class:`ConversationPager`, collected (one request when the server honours ``updated_within``)."""
    pager = ConversationPager(account_id, query, now=now)
    conversations: list[Conversation] = []
    seen: set[int] = set()
    while not pager.done:
        for conversation in (yield from pager.next_page_flow()):
            if conversation.id not in seen:
                seen.add(conversation.id)
                conversations.append(conversation)
    return conversations


def get_conversation_flow(
    account_id: int, conversation_id: int | str
) -> Generator[DotoRequest, DotoResponse, Conversation]:
    """One conversation by its display id; a missing one is :class:`DotoNotFoundError`."""
    request = conversation_request(account_id, to_id(conversation_id, name="conversation_id"))
    return parse_single_conversation(request, (yield request), account_id)
