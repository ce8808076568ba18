"""Listing a window of messages from a capped server: every message once, oldest first.

Two paging strategies, one per server flavor: by time (Doto's reference reads ``before``/``after``
as Unix timestamps) and by id (Chatwoot reads them as ids and caps its pages). Rule: no I/O, no
clock; callers give the window as times, and each page is de-duplicated by id.
"""

from __future__ import annotations

from collections.abc import Generator

from airflow_provider_doto.api._flavors import ServerFlavor
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._messages import Message, parse_message_list, sort_messages
from airflow_provider_doto.api._values import Timestamp, to_id, to_timestamp

# Chatwoot's smallest page is 20 (lists without ``after``); a shorter page cannot have been cut.
PAGE_FULL_AT = 20
# Chatwoot's page caps: ``after`` alone answers at most 100 messages, ``before_timestamp`` 20.
CHATWOOT_AFTER_PAGE = 100
CHATWOOT_BEFORE_PAGE = 20
# Seconds by which ids and ``created_at`` may disagree on order: both are assigned at insert, but
# concurrent inserts can take them in different orders. Id cursors step back this far in time.
ID_ORDER_SLACK = 2


def list_messages_flow(
    account_id: int,
    conversation_id: int | str,
    *,
    before: Timestamp | None = None,
    after: Timestamp | None = None,
    flavor: str | ServerFlavor = "doto",
    page_full_at: int = PAGE_FULL_AT,
    max_pages: int = 100_000,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Every message with ``after < created_at < before`` exactly once, oldest first.

    ``before``/``after`` are always times here; ``flavor`` says how the server is asked for them
    (``auto`` detects it first, see :class:`ServerFlavor`).
    """
    conversation_id = to_id(conversation_id, name="conversation_id")
    before = None if before is None else to_timestamp(before, name="before")
    after = None if after is None else to_timestamp(after, name="after")
    server = ServerFlavor.of(flavor)
    resolved = yield from server.resolve_flow(account_id, conversation_id)
    if resolved is None:  # auto, and the conversation has no messages yet
        return []
    if resolved == "chatwoot":
        found = yield from id_paged_flow(
            account_id, conversation_id, after=after, until=before, max_pages=max_pages
        )
        return [m for m in found if _in_window(m, after, before)]
    return (
        yield from _timestamp_paged_flow(
            account_id, conversation_id, before, after, page_full_at=page_full_at, max_pages=max_pages
        )
    )


def _in_window(message: Message, after: int | None, before: int | None) -> bool:
    return (after is None or message.created_at > after) and (before is None or message.created_at < before)


def id_paged_flow(
    account_id: int,
    conversation_id: int,
    *,
    after: int | None = None,
    after_id: int | None = None,
    until: int | None = None,
    max_pages: int = 100_000,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Chatwoot: every message with an id above ``after_id``, oldest first, paging forwards by id.

    Without ``after_id`` the window's first id is looked up from the time ``after``: the newest
    messages created before it (``before_timestamp``, one request) end below the window, so a
    recent window never reads the whole history. Pages answer at most 100 messages ordered by
    ``created_at``; the next page starts from an id safely behind the page's end
    (:data:`ID_ORDER_SLACK`), re-reading a little and de-duplicating. Paging stops at a short page,
    or once a page lies wholly after ``until`` (a time).
    """
    if after_id is None:
        after_id = (
            0 if after is None else (yield from window_start_id_flow(account_id, conversation_id, after))
        )
    by_id: dict[int, Message] = {}
    for _ in range(max_pages):
        request = list_request(account_id, conversation_id, after=after_id)
        page = parse_message_list(request, (yield request))
        by_id.update((m.id, m) for m in page if m.id > after_id)
        if len(page) < CHATWOOT_AFTER_PAGE:
            break
        if until is not None and min(m.created_at for m in page) > until + ID_ORDER_SLACK:
            break
        newest = max(m.created_at for m in page)
        settled = [m.id for m in page if m.created_at < newest - ID_ORDER_SLACK and m.id > after_id]
        next_id = max(settled) if settled else max(m.id for m in page)
        if next_id <= after_id:  # a server that ignores ``after``: stop rather than loop
            break
        after_id = next_id
    return sort_messages(by_id.values())


def window_start_id_flow(
    account_id: int, conversation_id: int, after: int
) -> Generator[DotoRequest, DotoResponse, int]:
    """Chatwoot: an id below every message created after ``after`` (0 if none is older)."""
    request = list_request(account_id, conversation_id, before_timestamp=after - ID_ORDER_SLACK + 1)
    older = parse_message_list(request, (yield request))
    return max((m.id for m in older), default=0)


def _timestamp_paged_flow(
    account_id: int,
    conversation_id: int,
    before: int | None,
    after: int | None,
    *,
    page_full_at: int,
    max_pages: int,
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Doto's reference: ``before``/``after`` are times; pages through a capped server too.

    A capped server answers with the oldest page after ``after``, or the newest page before
    ``before`` when there is no ``after``. A page that could have been cut is followed by the
    next one, overlapping by one second (timestamps are whole seconds) and de-duplicated by id.
    A full page that brings nothing new means one second holds a whole page: paging steps past
    that second (going backwards, after reading it forwards, where pages are larger).
    Paging stops at a short page.
    """
    by_id: dict[int, Message] = {}
    forward = after is not None
    page_before, page_after = before, after
    for _ in range(max_pages):
        request = list_request(account_id, conversation_id, before=page_before, after=page_after)
        page = parse_message_list(request, (yield request))
        # The window is strict on both ends; drop anything a lax server sent outside it.
        page = [
            m
            for m in page
            if (after is None or m.created_at > after) and (before is None or m.created_at < before)
        ]
        fresh = [m for m in page if m.id not in by_id]
        by_id.update((m.id, m) for m in fresh)
        if len(page) < page_full_at:
            break
        if fresh:
            # The page may end inside a second: the next page re-reads that second.
            if forward:
                page_after = max(m.created_at for m in page) - 1
            else:
                page_before = min(m.created_at for m in page) + 1
            continue
        # A full page of known messages: one second holds a whole page. Step past it, or stop
        # if that makes no progress (a server that ignores before/after).
        if forward:
            crowded = max(m.created_at for m in page)
            if page_after is not None and crowded <= page_after:
                break
            page_after = crowded
        else:
            crowded = min(m.created_at for m in page)
            if page_before is not None and crowded >= page_before:
                break
            request = list_request(account_id, conversation_id, before=crowded + 1, after=crowded - 1)
            rest = parse_message_list(request, (yield request))
            by_id.update((m.id, m) for m in rest if m.created_at == crowded and m.id not in by_id)
            page_before = crowded
    return sort_messages(by_id.values())
