"""Batch sending: many conversations, one message each, checked before the first request.

:func:`batch_source` says which way a batch is given (``messages``, or ``conversation_ids`` and
``content``) and refuses both or neither; :func:`build_batch` turns a list of
``{conversation_id, content}`` mappings (or ids and their contents, or a function rendering each
id's content once the ids are checked) into :class:`BatchItem` objects, refusing anything wrong
with the item's index (:func:`check_items` checks ready-made items the same way);
:func:`validate_batch_options` checks a batch's settings;
:func:`batch_item_flow` sends one item (duplicate-safe with a delivery key);
:func:`batch_result`, :func:`waited_result` and :func:`failed_result` record each conversation's outcome as a
:class:`BatchResult`; :func:`batch_counts`, :func:`batch_output` and :func:`check_batch` sum them
up and decide whether the batch failed. Only the provider's own errors (:class:`DotoError`) are an
item's failure; anything else is a bug, kept on the item's result and raised by :func:`check_batch`
whatever failures it tolerates.
Rule: no I/O, no clock; the transports send the items (each with ``send_once_flow``) and report
what happened. Only :func:`batch_item_flow` needs the flows, and imports them when called: an
operator checking its batch at DAG parse loads this module and ``_values`` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_doto.api._values import Timestamp, to_id, validate_content, validate_options
from airflow_provider_doto.exceptions import DotoBatchError, DotoConfigError, DotoDeliveryError, DotoError

if TYPE_CHECKING:
    from airflow_provider_doto.api._flavors import ServerReading
    from airflow_provider_doto.api._http import DotoRequest, DotoResponse
    from airflow_provider_doto.api._messages import Message

BatchStatus = Literal["sent", "already_delivered", "failed"]
BATCH_STATUSES: tuple[BatchStatus, ...] = ("sent", "already_delivered", "failed")
BatchSource = Literal["messages", "conversation_ids", "conversation_query"]
BATCH_ITEM_KEYS = frozenset({"conversation_id", "content"})
# How many failed conversations a batch error names one by one; the rest are counted.
NAMED_FAILURES = 20
# An item's error text in a result: enough for the status and Doto's own error text.
MAX_ERROR_LENGTH = 300


@dataclass(frozen=True)
class BatchItem:
    """One message of a batch: ``content`` for ``conversation_id``."""

    conversation_id: int
    content: str


@dataclass(frozen=True)
class BatchResult:
    """What became of one conversation's message. ``to_dict()`` is the JSON-safe form.

    ``message_status`` is the message's delivery status as last read: the create's answer, or
    with ``wait_for`` the status the wait ended on (``failed`` with the server's reason in ``error``).
    ``message`` is the message itself, for a wait to read it back; never in ``to_dict()``.
    ``exception`` is an unexpected error (not a :class:`DotoError`: a bug) that failed the item,
    kept with its traceback for :func:`check_batch` to raise; never in ``to_dict()``.
    """

    conversation_id: int
    status: BatchStatus
    message_id: int | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    message_status: str | None = None
    message: Message | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "message_id": self.message_id,
            "message_status": self.message_status,
            "error": self.error,
        }


def batch_source(
    messages: Any = None, conversation_ids: Any = None, content: Any = None, conversation_query: Any = None
) -> BatchSource:
    """Which way a batch is given: ``messages``, or ``conversation_ids`` (or a ``conversation_query``
    that lists them when the batch runs) with ``content``.

    Only whether each is given counts (a template's value is not known yet), so a constructor can
    ask at DAG parse what :func:`build_batch` asks at run time.
    """
    if conversation_ids is not None and conversation_query is not None:
        raise DotoConfigError(
            "Pass either conversation_ids or conversation_query, not both: the query lists the conversations."
        )
    targets: BatchSource = "conversation_ids" if conversation_query is None else "conversation_query"
    if (messages is None) == (conversation_ids is None and conversation_query is None):
        raise DotoConfigError(
            "Pass either messages or conversation_ids (or conversation_query) with content, not both or neither."
        )
    if messages is not None:
        if content is not None:
            raise DotoConfigError("content goes inside each of messages' items, not next to messages.")
        return "messages"
    if content is None:
        raise DotoConfigError(f"{targets} needs content: the text (template) for each conversation.")
    return targets


def validate_batch_options(
    *,
    message_type: Any = "outgoing",
    private: Any = False,
    content_type: Any = "text",
    content_attributes: Any = None,
    max_in_flight: Any = 10,
    tolerate_failures: Any = 0.0,
) -> None:
    """A batch's settings, whatever its messages: each message's options, how many requests may
    be in flight, and the share of failures tolerated."""
    validate_options(message_type, private, content_type, content_attributes)
    validate_max_in_flight(max_in_flight)
    validate_tolerance(tolerate_failures)


def batch_ids(conversation_ids: Any) -> list[int]:
    """The conversation ids of a batch, checked: each a positive integer, each once
    (``conversation_ids[3]: ...`` names a wrong one)."""
    _check_id_list(conversation_ids)
    ids: list[int] = []
    first_index: dict[int, int] = {}
    for index, raw_id in enumerate(conversation_ids):
        conversation_id = _unique_id(raw_id, f"conversation_ids[{index}]", first_index, "conversation_ids")
        first_index[conversation_id] = index
        ids.append(conversation_id)
    return ids


def _check_id_list(conversation_ids: Any) -> None:
    if isinstance(conversation_ids, str | bytes | Mapping) or not isinstance(conversation_ids, Sequence):
        raise DotoConfigError(
            f"conversation_ids must be a list of conversation ids, got {type(conversation_ids).__name__}."
        )


def _unique_id(raw_id: Any, where: str, first_index: Mapping[int, int], name: str) -> int:
    """``raw_id`` checked as a conversation id that no earlier item has (``first_index``: each id
    seen so far and where); an error names the item (``where``) and the earlier one."""
    try:
        conversation_id = to_id(raw_id, name="conversation_id")
    except DotoConfigError as err:
        raise DotoConfigError(f"{where}: {err}") from err
    if conversation_id in first_index:
        raise DotoConfigError(
            f"{where}: conversation {conversation_id} is already {name}[{first_index[conversation_id]}]; "
            "a batch sends one message per conversation."
        )
    return conversation_id


def build_batch(
    messages: Sequence[Mapping[str, Any]] | None = None,
    *,
    conversation_ids: Sequence[Any] | None = None,
    content: str | Sequence[str] | Callable[[int], str] | None = None,
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: Mapping[str, Any] | None = None,
) -> list[BatchItem]:
    """The checked items of a batch, from ``messages`` or from ``conversation_ids`` and ``content``.

    ``messages`` is a list of ``{"conversation_id": ..., "content": ...}`` mappings. Otherwise
    ``conversation_ids`` is a list of ids and ``content`` one text for all of them, one text per
    id (in the same order), or a function giving a checked id's text (a template rendered per
    conversation: called only once every id is checked, so a bad id fails before any rendering).
    Every item is checked like a single send (:func:`validate_send`); a conversation may appear
    only once (one message each, one delivery key each). Anything wrong raises
    :class:`DotoConfigError` naming the item (``messages[3]``, ``conversation_ids[3]``). An empty
    batch is fine: nothing to send.
    """
    if batch_source(messages, conversation_ids, content) == "messages":
        pairs = list(_pairs_from_messages(messages))
        name = "messages"
    else:
        pairs = list(_pairs_from_ids(conversation_ids, content))
        name = "conversation_ids"
    return _checked(pairs, name, message_type, private, content_type, content_attributes)


def check_items(
    items: Iterable[BatchItem],
    *,
    message_type: str = "outgoing",
    private: bool = False,
    content_type: str = "text",
    content_attributes: Mapping[str, Any] | None = None,
) -> list[BatchItem]:
    """:class:`BatchItem` objects checked as :func:`build_batch` checks its input (``items[3]: ...``)."""
    batch = list(items)
    for index, item in enumerate(batch):
        if not isinstance(item, BatchItem):
            raise DotoConfigError(f"items[{index}] must be an api.BatchItem, got {type(item).__name__}.")
    pairs = [(item.conversation_id, item.content) for item in batch]
    return _checked(pairs, "items", message_type, private, content_type, content_attributes)


def _checked(
    pairs: Sequence[tuple[Any, Any]],
    name: str,
    message_type: str,
    private: bool,
    content_type: str,
    content_attributes: Mapping[str, Any] | None,
) -> list[BatchItem]:
    validate_options(message_type, private, content_type, content_attributes)
    items: list[BatchItem] = []
    first_index: dict[int, int] = {}
    for index, (raw_id, text) in enumerate(pairs):
        where = f"{name}[{index}]"
        conversation_id = _unique_id(raw_id, where, first_index, name)
        try:
            validate_content(text)
        except DotoConfigError as err:
            raise DotoConfigError(f"{where}: {err}") from err
        first_index[conversation_id] = index
        items.append(BatchItem(conversation_id, text))
    return items


def _pairs_from_messages(messages: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise DotoConfigError(
            f"messages must be a list of {{'conversation_id', 'content'}} mappings, got {type(messages).__name__}."
        )
    for index, item in enumerate(messages):
        if not isinstance(item, Mapping):
            raise DotoConfigError(
                f"messages[{index}] must be a mapping with conversation_id and content, "
                f"got {type(item).__name__}."
            )
        unknown = sorted(str(k) for k in item if k not in BATCH_ITEM_KEYS)
        if unknown:
            raise DotoConfigError(
                f"messages[{index}] has unknown key(s) {', '.join(map(repr, unknown))}; "
                "an item has only conversation_id and content."
            )
        missing = sorted(BATCH_ITEM_KEYS - set(item))
        if missing:
            raise DotoConfigError(f"messages[{index}] lacks {' and '.join(missing)}.")
        yield item["conversation_id"], item["content"]


def _pairs_from_ids(conversation_ids: Any, content: Any) -> Iterable[tuple[Any, Any]]:
    _check_id_list(conversation_ids)
    if callable(content):
        return ((cid, content(cid)) for cid in batch_ids(conversation_ids))
    if isinstance(content, str):
        return ((cid, content) for cid in conversation_ids)
    if not isinstance(content, Sequence) or len(content) != len(conversation_ids):
        raise DotoConfigError(
            "content must be one string, or one string per conversation id "
            f"({len(conversation_ids)}), got {type(content).__name__}"
            + (f" of {len(content)}" if isinstance(content, Sequence) else "")
            + "."
        )
    return zip(conversation_ids, content, strict=True)


def batch_item_flow(
    account_id: int,
    item: BatchItem,
    *,
    key: str | None = None,
    look_back_since: Timestamp | None = None,
    flavor: str | ServerReading = "auto",
    **options: Any,
) -> Generator[DotoRequest, DotoResponse, BatchResult]:
    """Send one item: with a delivery ``key`` through :func:`send_once_flow` (a retry with
    ``look_back_since`` finds what an earlier try delivered), without one as a plain send.

    A failure is raised as the typed error, as by any flow: the transport that drives the batch
    turns it into the item's :func:`failed_result`, so one conversation never stops the others.
    """
    # Imported here: the rest of this module checks a batch at DAG parse, which needs no flows.
    from airflow_provider_doto.api._delivery import send_once_flow
    from airflow_provider_doto.api._flows import send_message_flow

    if key is None:
        message = yield from send_message_flow(account_id, item.conversation_id, item.content, **options)
        return batch_result(item, message, False)
    message, already = yield from send_once_flow(
        account_id,
        item.conversation_id,
        item.content,
        key=key,
        look_back_since=look_back_since,
        flavor=flavor,
        **options,
    )
    return batch_result(item, message, already)


def batch_result(item: BatchItem, message: Message, already_delivered: bool) -> BatchResult:
    """The result of an item whose send (``send_once_flow``) returned ``(message, already_delivered)``."""
    status: BatchStatus = "already_delivered" if already_delivered else "sent"
    return BatchResult(
        item.conversation_id, status, message_id=message.id, message_status=message.status, message=message
    )


def waited_result(result: BatchResult, message: Message) -> BatchResult:
    """``result`` once its message (as read back) reached the status waited for."""
    return replace(result, message_status=message.status, message=message)


def failed_result(item: BatchItem, error: BaseException) -> BatchResult:
    """The result of an item whose send failed after its retries.

    A provider error's text names the request and Doto's own error text, never the token or a
    body; any other exception is named by its type only, since its text is not ours to vouch for.
    Any other exception is also a bug, not a failed message: it is kept on the result
    (``exception``) for :func:`check_batch` to raise with its traceback.
    """
    if isinstance(error, DotoError):
        text = f"{type(error).__name__}: {error}"
        if len(text) > MAX_ERROR_LENGTH:
            text = text[: MAX_ERROR_LENGTH - 3] + "..."
        if isinstance(error, DotoDeliveryError):  # created, then failed (or not reached in time)
            return BatchResult(
                item.conversation_id,
                "failed",
                message_id=error.message_id,
                error=text,
                message_status=error.message_status,
            )
        return BatchResult(item.conversation_id, "failed", error=text)
    return BatchResult(item.conversation_id, "failed", error=type(error).__name__, exception=error)


def batch_counts(results: Iterable[BatchResult]) -> dict[str, int]:
    """``{"total": n, "sent": n, "already_delivered": n, "failed": n}``."""
    counts: dict[str, int] = dict.fromkeys(BATCH_STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return {"total": sum(counts.values()), **counts}


def batch_output(results: Sequence[BatchResult]) -> dict[str, Any]:
    """What a batch task reports (its XCom value): the counts and each conversation's result
    (``to_dict()``), in the order of the items."""
    return {**batch_counts(results), "results": [r.to_dict() for r in results]}


def validate_tolerance(tolerate_failures: Any) -> float:
    """The share of failed messages a batch may have and still succeed: a number from 0.0 to 1.0."""
    if (
        isinstance(tolerate_failures, bool)
        or not isinstance(tolerate_failures, int | float)
        or not math.isfinite(tolerate_failures)
        or not 0.0 <= tolerate_failures <= 1.0
    ):
        raise DotoConfigError(
            f"tolerate_failures must be a share from 0.0 to 1.0 (0.05 tolerates 5% failed messages), "
            f"got {tolerate_failures!r}."
        )
    return float(tolerate_failures)


def validate_max_in_flight(max_in_flight: Any) -> int:
    """How many of a batch's requests may be in flight at once: a positive integer."""
    if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise DotoConfigError(f"max_in_flight must be a positive integer, got {max_in_flight!r}.")
    return max_in_flight


def check_batch(results: Sequence[BatchResult], tolerate_failures: float = 0.0) -> None:
    """Raise :class:`DotoBatchError` when more than ``tolerate_failures`` of the messages failed.

    The error names how many failed out of how many, and the failed conversations with their
    errors (the first :data:`NAMED_FAILURES`, then how many more). An unexpected error (a bug, see
    :func:`failed_result`) is never tolerated: the first is raised as it is, with its traceback
    and a note naming its conversation.
    """
    share = validate_tolerance(tolerate_failures)
    unexpected = [(r.conversation_id, r.exception) for r in results if r.exception is not None]
    if unexpected:
        conversation_id, error = unexpected[0]
        note = (
            f"Raised sending a batch's message to conversation {conversation_id}: an unexpected error, "
            f"not a Doto error, so the batch fails whatever it tolerates "
            f"({len(unexpected)} of {len(results)} message(s) hit one)."
        )
        if note not in getattr(error, "__notes__", ()):
            error.add_note(note)
        raise error
    failed = [r for r in results if r.status == "failed"]
    # A hair of slack: 0.29 * 100 is 28.999999999999996 in floating point, yet 29 of 100 is 29%.
    if not failed or len(failed) <= share * len(results) + 1e-9:
        return
    named = "; ".join(f"conversation {r.conversation_id}: {r.error}" for r in failed[:NAMED_FAILURES])
    more = len(failed) - NAMED_FAILURES
    tolerated = f" (tolerated: {share * 100:g}%)" if share else ""
    raise DotoBatchError(
        f"{len(failed)} of {len(results)} Doto message(s) failed{tolerated}: {named}"
        + (f"; and {more} more" if more > 0 else ""),
        failed=len(failed),
        total=len(results),
        conversation_ids=tuple(r.conversation_id for r in failed),
    )
