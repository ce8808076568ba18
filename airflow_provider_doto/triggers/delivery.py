"""DeliveryTrigger: waits in the triggerer until a sent message's status reaches ``wait_for``.

Deferred from ``SendMessageOperator(wait_for=..., deferrable=True)`` once the worker has sent the
message (and read it back once). The same wait as the hooks' (``api._status.DeliveryWait``, one
read a poll, through :meth:`DotoAsyncHook.await_delivery`), counted on the wall clock from when the
worker deferred, so a restarted triggerer keeps the deadline. Its kwargs are plain values fixed
when the task defers (no token, no time read in ``serialize``): it serializes and rebuilds as is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_doto._airflow import describe_error
from airflow_provider_doto.api._messages import Message
from airflow_provider_doto.api._status import DEFAULT_POLL_INTERVAL, DeliveryWait
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import DotoTriggerError, error_fields, error_from_event
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook


class DeliveryTrigger(BaseTrigger):
    """Fire once the message's status reaches ``wait_for`` (or it failed, or time is up).

    :param conversation_id: the message's conversation.
    :param message_id: the message.
    :param created_at: its ``created_at`` (a Doto-reference server reads it back by its second).
    :param status: its status when the task deferred.
    :param wait_for: ``"sent"``, ``"delivered"`` or ``"read"``.
    :param delivery_timeout: seconds from ``deferred_at`` the message may take.
    :param deferred_at: Unix seconds, when the worker started waiting.
    :param poll_interval: seconds between reads.
    :param first_read_after: seconds before the first read (the worker has just read it).
    :param doto_conn_id: the ``doto`` connection (only its id, never the token).

    Its one event: ``{"status": "success", "message": {...}}`` (the message with its final status),
    or ``{"status": "error", "error_type", "error", "error_fields"}`` (``DotoDeliveryError`` with the
    server's ``external_error`` when its channel failed it): :func:`message_from_event` reads both.
    """

    def __init__(
        self,
        *,
        conversation_id: int,
        message_id: int,
        created_at: int,
        status: str | None,
        wait_for: str,
        delivery_timeout: float,
        deferred_at: float,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        first_read_after: float = 0.0,
        doto_conn_id: str = "doto_default",
    ) -> None:
        super().__init__()
        self.conversation_id = to_id(conversation_id, name="conversation_id")
        self.message_id = to_id(message_id, name="message_id")
        self.created_at = int(created_at)
        self.status = status
        self.deferred_at = float(deferred_at)
        self.first_read_after = float(first_read_after)
        self.doto_conn_id = doto_conn_id
        # Checked now (wait_for, the timeout), in the worker, not first in the triggerer.
        self.wait = DeliveryWait(
            self.conversation_id, wait_for, float(delivery_timeout), self.deferred_at, float(poll_interval)
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conversation_id": self.conversation_id,
                "message_id": self.message_id,
                "created_at": self.created_at,
                "status": self.status,
                "wait_for": self.wait.wait_for,
                "delivery_timeout": self.wait.timeout,
                "deferred_at": self.deferred_at,
                "poll_interval": self.wait.poll_interval,
                "first_read_after": self.first_read_after,
                "doto_conn_id": self.doto_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        message = Message(
            id=self.message_id,
            content=None,
            message_type="outgoing",
            created_at=self.created_at,
            status=self.status,
        )
        await asyncio.sleep(self.first_read_after)
        try:
            message = await DotoAsyncHook(self.doto_conn_id).await_delivery(
                self.wait, message, clock=time.time
            )
        except Exception as err:  # failed, timed out, or a request that failed after its retries
            yield TriggerEvent(
                {
                    "status": "error",
                    "error_type": type(err).__name__,
                    "error": describe_error(err),
                    "error_fields": error_fields(err),
                }
            )
            return
        yield TriggerEvent({"status": "success", "message": message.to_dict()})


def message_from_event(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The message (a JSON-safe dict, final status) of a :class:`DeliveryTrigger` event; an error
    event raises the error the trigger met, as its own class (``DotoDeliveryError``, ...)."""
    if payload.get("status") == "success" and isinstance(payload.get("message"), Mapping):
        return dict(payload["message"])
    text = str(payload.get("error") or f"Doto delivery trigger ended without a message: {dict(payload)!r}")
    if payload.get("status") == "error":
        raise error_from_event(payload.get("error_type"), text, payload.get("error_fields"))
    raise DotoTriggerError(text)
