"""Delivery status: reading a created message back until the channel has delivered it (or failed it).

A 200 on create means the server stored the message, not that the customer got it: messaging
channels move its ``status`` later, ``sent`` -> ``delivered`` -> ``read``, or to ``failed`` with
``content_attributes.external_error`` (WhatsApp outside its window: seconds after the 200).
Rule: one request per read (:func:`read_back_flow`: by id on Chatwoot, the message's second on a
timestamp server) and pure decisions (:func:`delivery_reached`, :class:`DeliveryWait`); no I/O,
no clock: the transport reads its clock, hands the time in and sleeps as long as it is told.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from airflow_provider_doto.api._flavors import ServerReading
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._messages import Message, parse_message_list
from airflow_provider_doto.api._values import DEFAULT_DELIVERY_TIMEOUT, WAIT_FOR, check_wait_for
from airflow_provider_doto.exceptions import DotoConfigError, DotoDeliveryError

__all__ = [
    "DEFAULT_DELIVERY_TIMEOUT",
    "DEFAULT_POLL_INTERVAL",
    "WAIT_FOR",
    "DeliveryWait",
    "check_wait_for",
    "delivery_reached",
    "delivery_timeout_error",
    "read_back_flow",
    "read_back_request",
]

_RANK = {status: rank for rank, status in enumerate(WAIT_FOR)}
DEFAULT_POLL_INTERVAL = 2.0  # seconds between reads


def delivery_reached(message: Message, wait_for: str, conversation_id: int) -> bool:
    """Whether the message's status has reached ``wait_for`` (``read`` satisfies ``delivered``).

    ``failed`` raises :class:`DotoDeliveryError` with the server's ``external_error``; any other
    status (None, or one not in :data:`WAIT_FOR`) has not reached it yet.
    """
    if message.status == "failed":
        why = message.external_error or "the server gave no external_error"
        raise DotoDeliveryError(
            f"Doto message {message.id} in conversation {conversation_id} was created, then marked "
            f"failed by its channel: {why}",
            conversation_id=conversation_id,
            message_id=message.id,
            message_status="failed",
            external_error=message.external_error,
        )
    rank = _RANK.get(message.status or "")
    return rank is not None and rank >= _RANK[wait_for]


def delivery_timeout_error(
    message: Message, wait_for: str, conversation_id: int, timeout: float
) -> DotoDeliveryError:
    """The error when ``timeout`` seconds passed without the message reaching ``wait_for``."""
    return DotoDeliveryError(
        f"Doto message {message.id} in conversation {conversation_id} was created but timed out "
        f"after {timeout:g} s waiting for status {wait_for!r}; its last status was {message.status!r}",
        conversation_id=conversation_id,
        message_id=message.id,
        message_status=message.status,
    )


def read_back_request(
    account_id: int, conversation_id: int, message: Message, reading: ServerReading
) -> DotoRequest:
    """One list request whose answer holds the message: ids ``[id, id + 1)`` on Chatwoot (``after`` is
    inclusive with ``before`` there), its own second on a timestamp server (both bounds strict)."""
    if reading.known == "chatwoot":
        return list_request(account_id, conversation_id, after=message.id, before=message.id + 1)
    return list_request(
        account_id, conversation_id, after=message.created_at - 1, before=message.created_at + 1
    )


def read_back_flow(
    account_id: int, conversation_id: int, message: Message, reading: ServerReading
) -> Generator[DotoRequest, DotoResponse, Message]:
    """The message as the server has it now (one request); the one given when the answer lacks it
    (a timestamp server's page cap in a crowded second): its last known status stands."""
    request = read_back_request(account_id, conversation_id, message, reading)
    for found in parse_message_list(request, (yield request)):
        if found.id == message.id:
            return found
    return message


@dataclass(frozen=True)
class DeliveryWait:
    """One message's wait for ``wait_for``: what to do after each read, given the caller's clock.

    ``started`` and every ``now`` are read by the caller from one monotonic clock (seconds); the
    sync hook, the async hook, the batch and the trigger drive the same decisions:
    ``read, pause = wait.after_read(message, now)`` until it says stop.
    """

    conversation_id: int
    wait_for: str
    timeout: float
    started: float
    poll_interval: float = DEFAULT_POLL_INTERVAL

    def __post_init__(self) -> None:
        check_wait_for(self.wait_for, self.timeout)
        if self.wait_for is None:
            raise DotoConfigError(f"wait_for must be one of {', '.join(WAIT_FOR)} to wait, got None.")

    def after_read(self, message: Message, now: float) -> float | None:
        """None when ``message`` (as just read) reached ``wait_for``; else how many seconds to wait
        before the next read. ``failed``, or the time up, raises :class:`DotoDeliveryError`."""
        if delivery_reached(message, self.wait_for, self.conversation_id):
            return None
        left = self.started + self.timeout - now
        if left <= 0:
            raise delivery_timeout_error(message, self.wait_for, self.conversation_id, self.timeout)
        return min(self.poll_interval, left)
