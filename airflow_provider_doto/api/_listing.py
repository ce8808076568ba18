"""Listing a window of messages from a capped server: every message once, oldest first.

Two paging strategies, one per server flavor: by time (Doto's reference reads ``before``/``after``
as Unix timestamps) and by id (Chatwoot reads them as ids and caps its pages). :class:`MessagePager`
pages forwards and hands out one page of new messages at a time, so a caller can stream a window
holding no more than a page (on Chatwoot, a page within the id-order slack also holds the ids below
its end, read as one range); :func:`list_messages_flow` collects the same pages (and pages a
timestamp server backwards when the window has no start). Rule: no I/O, no clock; callers give the
window as times, and each page is de-duplicated by id.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable

from airflow_provider_doto.api._flavors import ServerReading, resolve_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._messages import Message, parse_message_list, sort_messages
from airflow_provider_doto.api._values import Timestamp, to_id, to_timestamp

# Chatwoot's smallest page is 20 (lists without ``after``); a shorter page cannot have been cut.
PAGE_FULL_AT = 20
# Chatwoot's page caps: ``after`` alone answers at most 100 messages, ``before_timestamp`` 20,
# ``after`` with ``before`` (a range of ids) 1,000.
CHATWOOT_AFTER_PAGE = 100
CHATWOOT_BEFORE_PAGE = 20
CHATWOOT_RANGE_PAGE = 1000
# Seconds by which ids and ``created_at`` may disagree on order: both are assigned at insert, but
# concurrent inserts can take them in different orders. Id cursors step back this far in time.
ID_ORDER_SLACK = 2
# Where a forward read of a timestamp server starts when the window has none: no message is older.
EPOCH = 0


class MessagePager:
    """A window ``after < created_at < before`` of one conversation, a page at a time, oldest first.

    Each :meth:`next_page_flow` reads one page forwards (after resolving the server's reading, kept
    in ``reading`` for the caller, and on Chatwoot looking up the window's first id, on the first call) and returns the messages that
    are new and settled: nothing a later page can bring sorts before them. Messages of the page's
    newest second wait for the next page, which re-reads that second. Only what de-duplication
    across the page boundary needs is kept: the ids the next request can answer again (that second
    on a timestamp server; the ids above the cursor on Chatwoot). ``done`` once the last page is in.
    A flow that raised (a failed request) leaves the pager as it was: it may be asked again.
    """

    def __init__(
        self,
        account_id: int,
        conversation_id: int | str,
        *,
        before: Timestamp | None = None,
        after: Timestamp | None = None,
        flavor: str | ServerReading = "auto",
        after_id: int | None = None,
    ) -> None:
        """``after_id`` (Chatwoot only): page from above this id instead of looking the window's first id up."""
        self.account_id = account_id
        self.conversation_id = to_id(conversation_id, name="conversation_id")
        self.before = None if before is None else to_timestamp(before, name="before")
        self.after = None if after is None else to_timestamp(after, name="after")
        self.reading = ServerReading.of(flavor)
        self.pages = 0  # list pages read (not counting the flavor probe or the first-id lookup)
        self.done = False
        self._started = False
        self._after_id = after_id
        # Timestamp server: the ``after`` of the next page (a time); Chatwoot: the id above which it reads.
        self._cursor: int | None = None
        self._seen: dict[int, int] = {}  # id -> created_at, of what the next page may answer again
        self._waiting: list[Message] = []  # new, in the window, not yet settled

    def next_page_flow(self) -> Generator[DotoRequest, DotoResponse, list[Message]]:
        """The next page's new messages, oldest first (may be empty); ``[]`` once ``done``."""
        if self.done:
            return []
        if not self._started:
            reading = yield from resolve_flow(self.reading, self.account_id, self.conversation_id)
            if reading.known is None:  # auto, and the conversation has no messages yet
                self.done = True
                return []
            if reading.known == "chatwoot":
                if self._after_id is not None:
                    self._cursor = self._after_id
                elif self.after is None:
                    self._cursor = 0
                else:
                    self._cursor = yield from window_start_id_flow(
                        self.account_id, self.conversation_id, self.after
                    )
            else:
                self._cursor = EPOCH if self.after is None else self.after
            self.reading, self._started = reading, True
        if self.reading.known == "chatwoot":
            return (yield from self._id_page_flow())
        return (yield from self._time_page_flow())

    def _in_window(self, message: Message) -> bool:
        return _in_window(message, self.after, self.before)

    def _time_page_flow(self) -> Generator[DotoRequest, DotoResponse, list[Message]]:
        """Timestamp server: the oldest page after the cursor; the next re-reads its newest second.

        A full page that brings nothing new means one second holds a whole page: paging steps past
        that second. Paging stops at a short page.
        """
        assert self._cursor is not None
        cursor = self._cursor
        request = list_request(self.account_id, self.conversation_id, before=self.before, after=cursor)
        # The window is strict on both ends; drop anything a lax server sent outside it.
        page = [m for m in parse_message_list(request, (yield request)) if self._in_window(m)]
        self.pages += 1
        # Anything at or before the cursor was settled already (or lies outside what was asked).
        fresh = self._take(m for m in page if m.created_at > cursor)
        if len(page) < PAGE_FULL_AT:
            return self._finish()
        newest = max(m.created_at for m in page)
        if fresh:
            self._cursor = newest - 1  # the page may end inside its newest second: read it again
            return self._settle(below=newest, keep=lambda mid, ts: ts >= newest)
        if newest <= cursor:  # a server that ignores ``after``: stop rather than loop
            return self._finish()
        self._cursor = newest
        return self._settle(below=newest + 1, keep=lambda mid, ts: ts > newest)

    def _id_page_flow(self) -> Generator[DotoRequest, DotoResponse, list[Message]]:
        """Chatwoot: the (at most 100) oldest messages above the cursor id, by ``created_at``.

        Any id above the cursor that the page left out is no older than the page's newest. The
        next page starts after the highest id settled (created more than :data:`ID_ORDER_SLACK`
        before the page's newest: no lower id can be that much younger), re-reading a little. A
        full page with nothing settled (a page within the slack) gives no such id, and its highest
        id may sit above ids it left out: those are read as a range (:func:`id_range_flow`) before
        paging on from it. Paging stops at a short page, or once a page lies wholly after
        ``before`` (so a recent window never reads the whole history, nor a window's end beyond it).
        """
        assert self._cursor is not None
        after_id = self._cursor
        request = list_request(self.account_id, self.conversation_id, after=after_id)
        page = [m for m in parse_message_list(request, (yield request)) if m.id > after_id]
        last = len(page) < CHATWOOT_AFTER_PAGE or (
            self.before is not None and min(m.created_at for m in page) > self.before + ID_ORDER_SLACK
        )
        newest = max((m.created_at for m in page), default=0)
        next_id = after_id
        if not last:
            settled = [m.id for m in page if m.created_at < newest - ID_ORDER_SLACK]
            if settled:
                next_id = max(settled)
            else:
                next_id = max(m.id for m in page)
                page += yield from id_range_flow(
                    self.account_id, self.conversation_id, after_id + 1, next_id + 1
                )
        # Every request answered: only now does the pager change (a failed one leaves it as it was).
        self.pages += 1
        self._take(m for m in page if self._in_window(m))
        if last:
            return self._finish()
        self._cursor = next_id
        # What the pages above ``next_id`` bring is no older than this page's newest.
        return self._settle(below=newest, keep=lambda mid, ts: mid > next_id)

    def _take(self, messages: Iterable[Message]) -> list[Message]:
        """Remember and hold the ones not seen yet; returns them."""
        fresh = []
        for message in messages:
            if message.id not in self._seen:
                self._seen[message.id] = message.created_at
                fresh.append(message)
        self._waiting.extend(m for m in fresh if self._in_window(m))
        return fresh

    def _settle(self, *, below: int, keep: Callable[[int, int], bool]) -> list[Message]:
        """Hand out the held messages older than ``below``; forget ids the next page cannot answer."""
        ready = sort_messages(m for m in self._waiting if m.created_at < below)
        self._waiting = [m for m in self._waiting if m.created_at >= below]
        self._seen = {mid: ts for mid, ts in self._seen.items() if keep(mid, ts)}
        return ready

    def _finish(self) -> list[Message]:
        ready = sort_messages(self._waiting)
        self._waiting, self._seen, self.done = [], {}, True
        return ready


def list_messages_flow(
    account_id: int,
    conversation_id: int | str,
    *,
    before: Timestamp | None = None,
    after: Timestamp | None = None,
    flavor: str | ServerReading = "auto",
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Every message with ``after < created_at < before`` exactly once, oldest first.

    ``before``/``after`` are always times here; ``flavor`` (a :class:`ServerReading` or its name)
    says how the server is asked for them (``auto`` detects it first, :func:`resolve_flow`). The pages of a :class:`MessagePager`,
    collected; on a timestamp server a window without ``after`` is read backwards from its end
    (a short conversation is then one request, and one crowded second can give two pages).
    """
    messages, _ = yield from read_window_flow(
        account_id, conversation_id, before=before, after=after, flavor=flavor
    )
    return messages


def read_window_flow(
    account_id: int,
    conversation_id: int | str,
    *,
    before: Timestamp | None = None,
    after: Timestamp | None = None,
    flavor: str | ServerReading = "auto",
) -> Generator[DotoRequest, DotoResponse, tuple[list[Message], ServerReading]]:
    """:func:`list_messages_flow`, and the server's reading it used (resolved, for the caller to keep)."""
    pager = MessagePager(account_id, conversation_id, before=before, after=after, flavor=flavor)
    if pager.after is None:
        reading = yield from resolve_flow(pager.reading, account_id, pager.conversation_id)
        if reading.known is None:  # auto, and the conversation has no messages yet
            return [], reading
        if reading.known == "doto":
            return (yield from _backwards_flow(account_id, pager.conversation_id, pager.before)), reading
        pager.reading = reading
    messages: list[Message] = []
    while not pager.done:
        messages += yield from pager.next_page_flow()
    return sort_messages(messages), pager.reading


def _in_window(message: Message, after: int | None, before: int | None) -> bool:
    return (after is None or message.created_at > after) and (before is None or message.created_at < before)


def id_paged_flow(
    account_id: int, conversation_id: int, *, after_id: int
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Chatwoot: every message with an id above ``after_id``, oldest first, paging forwards by id.

    The pages of a Chatwoot :class:`MessagePager`, collected.
    """
    pager = MessagePager(account_id, conversation_id, flavor="chatwoot", after_id=after_id)
    messages: list[Message] = []
    while not pager.done:
        messages += yield from pager.next_page_flow()
    return messages


def id_range_flow(
    account_id: int, conversation_id: int, low: int, high: int
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Chatwoot: every message with ``low <= id < high``, each once, oldest first.

    One request (``after`` and ``before``, answered up to 1,000) unless the range holds more: an
    answer that may have been cut cannot be paged on from (it is ordered by time, the range by
    id), so the range is split at the median of the ids it answered and each part read again.
    """
    by_id: dict[int, Message] = {}
    ranges = [(low, high)]
    while ranges:
        start, end = ranges.pop()
        request = list_request(account_id, conversation_id, after=start, before=end)
        answer = {m.id: m for m in parse_message_list(request, (yield request)) if start <= m.id < end}
        by_id.update(answer)
        # A range of no more ids than a full answer holds is whole even when the answer is full.
        if len(answer) >= CHATWOOT_RANGE_PAGE and end - start > CHATWOOT_RANGE_PAGE:
            # Ids are account-wide, so a conversation's lie sparsely: split where its own ids are.
            middle = sorted(answer)[len(answer) // 2]
            ranges += [(middle, end), (start, middle)]
    return sort_messages(by_id.values())


def window_start_id_flow(
    account_id: int, conversation_id: int, after: int
) -> Generator[DotoRequest, DotoResponse, int]:
    """Chatwoot: an id below every message created after ``after`` (0 if none is older)."""
    request = list_request(account_id, conversation_id, before_timestamp=after - ID_ORDER_SLACK + 1)
    older = parse_message_list(request, (yield request))
    return max((m.id for m in older), default=0)


def _backwards_flow(
    account_id: int, conversation_id: int, before: int | None
) -> Generator[DotoRequest, DotoResponse, list[Message]]:
    """Timestamp server, no ``after``: the newest page before ``before``, then the page before it.

    A capped server answers with the newest page before ``before`` when there is no ``after``. A
    page that could have been cut is followed by the next one, overlapping by one second and
    de-duplicated by id. A full page that brings nothing new means one second holds a whole page:
    that second is read forwards (where pages are larger), then paging steps past it. Paging stops
    at a short page.
    """
    by_id: dict[int, Message] = {}
    page_before = before
    while True:
        request = list_request(account_id, conversation_id, before=page_before)
        page = [m for m in parse_message_list(request, (yield request)) if _in_window(m, None, before)]
        fresh = [m for m in page if m.id not in by_id]
        by_id.update((m.id, m) for m in fresh)
        if len(page) < PAGE_FULL_AT:
            break
        crowded = min(m.created_at for m in page)
        if fresh:
            page_before = crowded + 1  # the page may start inside a second: the next re-reads it
            continue
        if page_before is not None and crowded >= page_before:  # a server that ignores ``before``
            break
        request = list_request(account_id, conversation_id, before=crowded + 1, after=crowded - 1)
        rest = parse_message_list(request, (yield request))
        by_id.update((m.id, m) for m in rest if m.created_at == crowded and m.id not in by_id)
        page_before = crowded
    return sort_messages(by_id.values())
