"""NewMessageSensor: wait until a conversation (or any conversation) has new messages, and hand them to XCom."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

# conf moved to airflow.sdk in Airflow 3.2; common-compat finds it on 3.1 too.
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_doto import api
from airflow_provider_doto._airflow import check_query, is_template, rendered_query
from airflow_provider_doto._runs import run_start
from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.links.doto import DotoConversationLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.api import ConversationQuery
    from airflow_provider_doto.api._account_watch import AccountWatch
    from airflow_provider_doto.hooks.doto import DotoHook

STATE_KEY = "doto_message_watch"


class NewMessageSensor(BaseSensorOperator):
    """Wait for new messages in a conversation; return them (oldest first, JSON-safe) to XCom.

    New means created at or after the start point, never returned before, not deleted and matching
    the filters. The sensor polls with ``after`` and an overlapping, de-duplicating cursor (see
    :class:`~airflow_provider_doto.api.MessageWatch`), so a message sharing a second with the
    cursor or committed late is still found, and none is returned twice. Behaves the same in
    ``poke``, ``reschedule`` and deferrable mode.

    :param conversation_id: conversation to watch (templated). ``None``: every conversation the
        token sees, with one conversation list per idle poll (each message then carries its
        ``conversation_id``).
    :param conversation_query: with no ``conversation_id``, which conversations (templated): a
        mapping of ``status`` (default ``all``), ``inbox_id``, ``team_id``, ``labels``,
        ``assignee_type``.
    :param start: messages created at or after this point count (templated; Unix seconds, a
        datetime or ISO string). Default: the run's data interval start, or when the run was due or
        started (whichever is earlier, so a retry or a clear resumes from the same point) when
        the run has no logical date (manual and asset-triggered runs).
    :param message_types: which types count (default ``["incoming"]``).
    :param include_private: count private notes too (default False).
    :param sender_types: only messages from these sender types, e.g. ``["Contact"]``.
    :param content_pattern: regular expression the content must contain (``re.search``).
    :param min_messages: wait until at least this many new messages matched.
    :param overlap: seconds re-read behind the cursor on every poll.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param doto_conn_id: the ``doto`` connection.
    """

    template_fields: Sequence[str] = ("conversation_id", "conversation_query", "start", "content_pattern")
    operator_extra_links = (DotoConversationLink(),)
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        conversation_id: int | str | None = None,
        conversation_query: dict[str, Any] | None = None,
        start: api.Timestamp | None = None,
        message_types: Sequence[str] = ("incoming",),
        include_private: bool = False,
        sender_types: Sequence[str] | None = None,
        content_pattern: str | None = None,
        min_messages: int = 1,
        overlap: int = api.DEFAULT_OVERLAP,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.conversation_query = conversation_query
        self.start = start
        # Lists are copied; anything else goes to MessageFilter as given, which rejects it by name.
        self.message_types = list(message_types) if isinstance(message_types, list | tuple) else message_types
        self.include_private = include_private
        self.sender_types = list(sender_types) if isinstance(sender_types, list | tuple) else sender_types
        self.content_pattern = content_pattern
        self.min_messages = min_messages
        self.overlap = overlap
        self.deferrable = deferrable
        self.doto_conn_id = doto_conn_id
        # Static values are checked now, at DAG parse; templated ones again after rendering.
        if conversation_id is not None and conversation_query is not None:
            raise DotoConfigError("pass conversation_id or conversation_query, not both.")
        if conversation_id is not None and not is_template(conversation_id):
            to_id(conversation_id, name="conversation_id")
        if conversation_id is None:
            check_query(conversation_query, watch=True)
        if start is not None and not is_template(start):
            api.to_timestamp(start, name="start")
        if content_pattern is None or not is_template(content_pattern):
            self._message_watch(0)  # the filter and the numbers; an account watch checks the same
        self._watch: api.MessageWatch | AccountWatch | None = None

    @cached_property
    def hook(self) -> DotoHook:
        from airflow_provider_doto.hooks.doto import DotoHook

        return DotoHook(self.doto_conn_id)

    def _filter(self) -> api.MessageFilter:
        return api.MessageFilter(
            message_types=self.message_types,
            include_private=self.include_private,
            sender_types=self.sender_types,
            content_pattern=self.content_pattern,
        )

    def _query(self) -> ConversationQuery:
        """The watch's query once rendered (every status unless narrowed)."""
        from airflow_provider_doto.api._account_watch import watch_query

        if self.conversation_query is None:
            return watch_query(None)
        return rendered_query(self.conversation_query, watch=True)

    def _watch_for(self, start: int) -> api.MessageWatch | AccountWatch:
        if self.conversation_id is None:
            from airflow_provider_doto.api._account_watch import AccountWatch

            return AccountWatch(
                start=start,
                filter=self._filter(),
                min_messages=self.min_messages,
                overlap=self.overlap,
                query=self._query(),
            )
        return self._message_watch(start)

    def _message_watch(self, start: int) -> api.MessageWatch:
        return api.MessageWatch(
            start=start, filter=self._filter(), min_messages=self.min_messages, overlap=self.overlap
        )

    def start_point(self, context: Context) -> int:
        """Explicit ``start``, else the data interval start, else when the run was due or started."""
        if self.start not in (None, ""):
            return api.to_timestamp(self.start, name="start")  # type: ignore[arg-type]
        interval_start = context.get("data_interval_start")
        if interval_start is not None:
            return api.to_timestamp(interval_start)
        # Stable across retries and clears, so a re-run resumes from the same point.
        return run_start(context["dag_run"])

    def _load_watch(self, context: Context) -> api.MessageWatch | AccountWatch:
        """The cursor: kept in memory while poking, in the task state store across reschedules."""
        start = self.start_point(context)
        if self._watch is not None and self._watch.start == start:
            return self._watch
        store = context.get("task_state_store")
        stored = store.get(STATE_KEY) if store is not None else None
        self._watch = self._watch_for(start).restore(stored if isinstance(stored, dict) else None)
        return self._watch

    def poke(self, context: Context) -> PokeReturnValue | bool:
        watch = self._load_watch(context)
        if not isinstance(watch, api.MessageWatch):
            batch, where = self.hook.poll_account(watch), "the account's conversations"
        else:
            conversation_id = to_id(self.conversation_id, name="conversation_id")
            batch, where = self.hook.poll(watch, conversation_id), f"conversation {conversation_id}"
        if batch:
            self.log.info("%d new message(s) in %s", len(batch), where)
            return PokeReturnValue(is_done=True, xcom_value=[m.to_dict() for m in batch])
        # Only a cursor with nothing pending is saved: if the task dies after finding a batch,
        # its retry finds the same batch again instead of losing it.
        store = context.get("task_state_store")
        if store is not None:
            store.set(STATE_KEY, watch.to_state())
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # Check once here; defer only if there is nothing yet.
        deadline = time.time() + self.timeout if self.timeout is not None else None
        result = self.poke(context)
        if isinstance(result, PokeReturnValue):
            return result.xcom_value
        from airflow_provider_doto.api._account_watch import query_fields
        from airflow_provider_doto.triggers.doto import NewMessageTrigger

        watch = self._load_watch(context)
        self.defer(
            trigger=NewMessageTrigger(
                conversation_id=None
                if self.conversation_id is None
                else to_id(self.conversation_id, name="conversation_id"),
                conversation_query=None if self.conversation_id is not None else query_fields(self._query()),
                doto_conn_id=self.doto_conn_id,
                start=watch.start,
                poll_interval=self.poke_interval,
                **self._filter().to_dict(),
                min_messages=self.min_messages,
                overlap=self.overlap,
                state=watch.to_state(),
                timeout_at=deadline,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Resume after the trigger: the same XCom value as poke mode, or the trigger's error."""
        from airflow_provider_doto.triggers.doto import messages_from_event

        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("error") or "Sensor has timed out.")
        messages = messages_from_event(event)
        where = event.get("conversation_id")
        if where is None:  # the account watch: each message names its own conversation
            where = ", ".join(sorted({str(m.get("conversation_id")) for m in messages})) or "none"
        self.log.info("%d new message(s) in conversation(s) %s", len(messages), where)
        return messages
