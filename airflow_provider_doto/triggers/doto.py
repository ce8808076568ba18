"""NewMessageTrigger: waits in the triggerer for new messages in a conversation, or in any.

Polls exactly like :class:`~airflow_provider_doto.sensors.doto.NewMessageSensor` (same
:class:`~airflow_provider_doto.api.MessageWatch`), through :class:`DotoAsyncHook`.

* Deferred from the sensor, it fires one event and ends.
* In an ``AssetWatcher`` (no task instance) it never returns: one event per batch, forever. Its
  kwargs stay deterministic (no start time in them): a watcher starts from "now" the first time
  and keeps its cursor in the asset's state store, so a restarted triggerer resumes where it was.
  Airflow never tells a trigger that its event is stored, so each batch is saved as pending
  before its event leaves and forgotten only ``event_settle_seconds`` after the triggerer took it;
  a restart announces pending batches again (at least once; ``"redelivered": true``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_doto import api
from airflow_provider_doto._airflow import describe_error
from airflow_provider_doto.api._account_watch import AccountWatch, query_fields, watch_query
from airflow_provider_doto.api._retry_policy import retry_wait
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConfigError,
    DotoError,
    DotoNotFoundError,
    DotoTriggerError,
    DotoValidationError,
    error_fields,
    error_from_event,
)
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

# These will not get better by waiting.
FATAL_ERRORS = (DotoAuthError, DotoNotFoundError, DotoConfigError, DotoValidationError)
MAX_BACKOFF = 300.0
# A watcher's event taken by the triggerer sits in its runner's queue until the next sync (about
# every second), and the triggerer stores it after that sync; a batch is kept pending this long.
EVENT_SETTLE_SECONDS = 10.0


class NewMessageTrigger(BaseEventTrigger):
    """Fire when a conversation (or any conversation of the account) has new messages matching the filters.

    :param conversation_id: the conversation to watch; ``None`` watches every conversation the
        token sees (an :class:`~airflow_provider_doto.api._account_watch.AccountWatch`: one
        conversation list per idle poll, whatever the account's size).
    :param conversation_query: with no ``conversation_id``, which conversations: a mapping (or its
        JSON text, the serialised form) of
        ``status`` (default ``all``), ``inbox_id``, ``team_id``, ``labels``, ``assignee_type``.
    :param doto_conn_id: the ``doto`` connection (only its id is serialised, never the token).
    :param start: Unix seconds; messages with ``created_at >= start`` count. ``None`` (for
        watchers): when the trigger first runs.
    :param poll_interval: seconds between polls (also after errors, with backoff).
    :param message_types, include_private, sender_types, content_pattern, min_messages: as on
        the sensor.
    :param overlap: seconds re-read behind the cursor (late commits, shared seconds).
    :param max_failures: consecutive failed polls after which the trigger ends with an error event.
    :param state: a :meth:`MessageWatch.to_state` to continue from (the sensor passes its cursor).
    :param timeout_at: Unix seconds; a deferred wait still empty at that time ends with a
        ``"timeout"`` event (the sensor's ``timeout``; also enforced where Airflow's own deferral
        timeout is not, e.g. ``dag.test()``). Ignored by watchers, which never end.

    A success event's payload is ``{"status": "success", "conversation_id": ..., "messages": [...],
    "redelivered": bool}``; every message carries its ``id`` (and, watching the account, its
    ``conversation_id``; the event's own is then None). ``redelivered`` is true on a watcher's
    announcement, after a restart, of a batch it announced before: a consumer may have it already.
    """

    # Not a kwarg: a watcher is identified by the hash of its kwargs. Patched by tests.
    event_settle_seconds: float = EVENT_SETTLE_SECONDS

    def __init__(
        self,
        conversation_id: int | None = None,
        *,
        conversation_query: Mapping[str, Any] | str | None = None,
        doto_conn_id: str = "doto_default",
        start: int | None = None,
        poll_interval: float = 60.0,
        message_types: Sequence[str] = ("incoming",),
        include_private: bool = False,
        sender_types: Sequence[str] | None = None,
        content_pattern: str | None = None,
        min_messages: int = 1,
        overlap: int = api.DEFAULT_OVERLAP,
        max_failures: int = 5,
        state: dict[str, Any] | None = None,
        timeout_at: float | None = None,
    ) -> None:
        super().__init__()
        self.conversation_id = (
            None if conversation_id is None else to_id(conversation_id, name="conversation_id")
        )
        if conversation_id is not None and conversation_query is not None:
            raise DotoConfigError("pass conversation_id or conversation_query, not both.")
        # Plain, sorted JSON: a watcher is identified by the hash of its kwargs.
        self.conversation_query = (
            None if conversation_id is not None else query_fields(_watch_query(conversation_query))
        )
        self.doto_conn_id = doto_conn_id
        self.start = None if start is None else api.to_timestamp(start, name="start")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, int | float)
            or poll_interval <= 0
        ):
            raise DotoConfigError(f"poll_interval must be positive, got {poll_interval!r}.")
        self.poll_interval = float(poll_interval)
        self.filter = api.MessageFilter(
            message_types=message_types,
            include_private=include_private,
            sender_types=sender_types,
            content_pattern=content_pattern,
        )
        self.min_messages = min_messages
        self.overlap = overlap
        self.max_failures = max_failures
        self.state = state
        self._stored_state: dict[str, Any] | None = None  # what the asset state store holds, once known
        self.timeout_at = None if timeout_at is None else float(timeout_at)
        # Validate min_messages / overlap now, not in the triggerer (watchers too: start=None).
        self._new_watch(self.start or 0)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # A conversation's trigger keeps its kwargs as before (a watcher's identity is their hash).
        # The query travels as JSON text: Airflow 3.1 stores a watcher's dict kwargs with mangled keys.
        query = {} if self.conversation_query is None else {"conversation_query": self._query_text or None}
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conversation_id": self.conversation_id,
                **query,
                "doto_conn_id": self.doto_conn_id,
                "start": self.start,
                "poll_interval": self.poll_interval,
                **self.filter.to_dict(),
                "min_messages": self.min_messages,
                "overlap": self.overlap,
                "max_failures": self.max_failures,
                "state": self.state,
                "timeout_at": self.timeout_at,
            },
        )

    # ---- running ---------------------------------------------------------------------------

    @property
    def is_watcher(self) -> bool:
        """An AssetWatcher's trigger runs in a triggerer without a task instance; it must never return."""
        return self.task_instance is None and getattr(self, "trigger_id", None) is not None

    def _new_watch(self, start: int) -> api.MessageWatch | AccountWatch:
        if self.conversation_query is not None:
            return AccountWatch(
                start=start,
                filter=self.filter,
                min_messages=self.min_messages,
                overlap=self.overlap,
                query=watch_query(self.conversation_query),
            )
        return api.MessageWatch(
            start=start, filter=self.filter, min_messages=self.min_messages, overlap=self.overlap
        )

    @property
    def _state_key(self) -> str:
        if self.conversation_query is None:
            return f"doto_watch:{self.doto_conn_id}:{self.conversation_id}"
        return f"doto_watch:{self.doto_conn_id}:account{self._query_text}"

    @property
    def _query_text(self) -> str:
        """The account watch's narrowing as sorted JSON, or "" when it watches every conversation."""
        return json.dumps(self.conversation_query, sort_keys=True) if self.conversation_query else ""

    @property
    def _watching(self) -> str:
        if self.conversation_id is not None:
            return f"conversation {self.conversation_id}"
        return "the account's conversations"

    async def _poll(
        self, hook: DotoAsyncHook, watch: api.MessageWatch | AccountWatch
    ) -> list[api.Message] | None:
        if isinstance(watch, AccountWatch):
            return await hook.poll_account(watch)
        assert self.conversation_id is not None
        return await hook.poll(watch, self.conversation_id)

    async def _load_watch(self) -> api.MessageWatch | AccountWatch:
        stored = None
        if self._state_store is not None:
            try:
                stored = await self._state_store.aget(self._state_key)
            except Exception as err:  # a store problem must not stop the watcher
                self.log.warning("Could not read the watch cursor from the asset state store: %r", err)
        state = stored if isinstance(stored, dict) else self.state
        self._stored_state = stored if isinstance(stored, dict) else None
        start = self.start
        if start is None:
            start = int(state["start"]) if state and "start" in state else int(time.time())
        return self._new_watch(start).restore(state)

    @property
    def _state_store(self) -> Any:
        # Airflow 3.3+ hands watchers a per-asset store; earlier versions have none.
        return getattr(self, "asset_state_store", None)

    async def _save_watch(self, watch: api.MessageWatch | AccountWatch) -> None:
        state = watch.to_state()
        self.state = state
        if self._state_store is None or state == self._stored_state:
            return
        try:
            await self._state_store.aset(self._state_key, state)
        except Exception as err:  # keep watching; the cursor lives on in memory, saved again next poll
            self.log.warning("Could not save the watch cursor to the asset state store: %r", err)
        else:
            self._stored_state = state

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Inside the loop each request is tried once: the poll interval (with backoff) is the retry.
        hook = DotoAsyncHook(self.doto_conn_id, retry_policy=api.RetryPolicy(attempts=1))
        watch = await self._load_watch()
        if self.is_watcher and (in_flight := watch.in_flight()):
            # Announced by a run that died, perhaps before Airflow stored the event: announce again.
            self.log.info("Announcing again %d message(s) whose event may be lost", len(in_flight))
            yield self._messages_event(in_flight, redelivered=True)
            watch.handed_over(time.time())
        failures = 0
        first = True
        while True:
            delay = self.poll_interval
            if watch.settle(time.time(), self.event_settle_seconds):
                await self._save_watch(watch)  # those events are stored by now: forget the batches
            try:
                batch = await self._poll(hook, watch)
            except FATAL_ERRORS as err:
                yield self._error_event(err)
                if not self.is_watcher:
                    return
                delay = MAX_BACKOFF
            except Exception as err:
                # Besides a DotoError only the connection lookup fails for a while (a secrets backend
                # or the metadata DB briefly down): waited out like any transient failure. After the
                # connection is in, anything else is a bug and ends the trigger.
                if not isinstance(err, DotoError) and hook.connection_loaded:
                    raise
                failures += 1
                self.log.warning(
                    "Doto poll of %s failed (%d of %d): %s",
                    self._watching,
                    failures,
                    self.max_failures,
                    describe_error(err),
                )
                if failures >= self.max_failures and not self.is_watcher:
                    yield self._error_event(err, failures=failures)
                    return
                delay = min(self.poll_interval * 2 ** (failures - 1), MAX_BACKOFF)
                delay = max(delay, retry_wait(err) or 0.0)
            else:
                failures = 0
                if batch:
                    if self.is_watcher and self._state_store is not None:
                        # Saved as pending before its event leaves: a death from here on announces it
                        # again. (Without a store, Airflow < 3.3, the cursor dies with the trigger.)
                        watch.announce(batch)
                        await self._save_watch(watch)
                    yield self._messages_event(batch)
                    if not self.is_watcher:
                        return
                    watch.handed_over(time.time())
                await self._save_watch(watch)
                if first:
                    # Triggers often start together (a triggerer restart, a burst of deferrals): a random
                    # first pause spreads their polls over the interval instead of all at once, forever.
                    delay, first = random.uniform(0.0, delay), False
            if self.timeout_at is not None and not self.is_watcher:
                remaining = self.timeout_at - time.time()
                if remaining <= 0:
                    yield self._timeout_event()
                    return
                delay = min(delay, remaining)  # one last poll at the deadline, like poke mode
            await asyncio.sleep(delay)

    def _messages_event(self, batch: Sequence[api.Message], *, redelivered: bool = False) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "success",
                "conversation_id": self.conversation_id,
                "messages": [m.to_dict() for m in batch],
                "redelivered": redelivered,
            }
        )

    def _timeout_event(self) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "timeout",
                "conversation_id": self.conversation_id,
                "error": f"No new Doto messages in {self._watching} before the timeout.",
            }
        )

    def _error_event(self, err: BaseException, *, failures: int = 1) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "error",
                "conversation_id": self.conversation_id,
                "error_type": type(err).__name__,
                "error": describe_error(err)
                + (f" (after {failures} consecutive failed polls)" if failures > 1 else ""),
                "error_fields": error_fields(err),  # status, method, path, ...: plain values only
            }
        )


def _watch_query(value: Mapping[str, Any] | str | None) -> Any:
    """A watch's query from a mapping or from the JSON text ``serialize()`` gives it."""
    if isinstance(value, str):
        from airflow_provider_doto._airflow import rendered_query

        return rendered_query(value, watch=True)
    return watch_query(value)


def messages_from_event(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages (JSON-safe dicts, oldest first) of a :class:`NewMessageTrigger` event payload.

    Works on the sensor's resumed event and on a watcher's asset event, whose
    ``triggering_asset_events[asset][i].extra["payload"]`` is that payload. An error event raises
    the error the trigger met, as its own class (``DotoAuthError``, ...: what poke mode raises; see
    :func:`~airflow_provider_doto.exceptions.error_from_event`), with its text; any other error as
    :class:`~airflow_provider_doto.exceptions.DotoTriggerError`.
    """
    status = payload.get("status")
    if status == "success":
        return list(payload.get("messages") or [])
    text = payload.get("error") or f"Doto trigger ended without messages: {dict(payload)!r}"
    if status == "error":
        raise error_from_event(payload.get("error_type"), str(text), payload.get("error_fields"))
    raise DotoTriggerError(str(text))
