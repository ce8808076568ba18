"""BatchSendMessagesOperator: one message to each of many conversations, in one task.

One task sends thousands of messages through :meth:`DotoAsyncHook.send_messages` (a bounded number
in flight), where a mapped :class:`SendMessageOperator` would pay a task per conversation. The same
delivery keys make it duplicate-safe across task retries: a retry sends only what was not delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_doto import api
from airflow_provider_doto._airflow import (
    check_query,
    is_static,
    is_template_file,
    rendered_list,
    rendered_query,
    rendered_template,
)
from airflow_provider_doto._export import write_jsonl
from airflow_provider_doto._runs import delivery
from airflow_provider_doto.api._values import DEFAULT_DELIVERY_TIMEOUT, validate_content
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators.doto import _SendOptions

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.hooks.doto_async import DotoAsyncHook


class BatchSendMessagesOperator(_SendOptions, BaseOperator):
    """Send one message to each of many conversations; push the counts (and results) to XCom.

    Give either ``messages`` (a list of ``{"conversation_id": ..., "content": ...}``, e.g. an
    upstream task's XCom) or ``conversation_ids`` and one ``content`` template, rendered per
    conversation with ``conversation_id`` in the context. At most ``max_in_flight`` requests are in
    flight; rate limits are waited out. Each message carries the delivery key
    :class:`SendMessageOperator` would use for its conversation, so a retried task (or a cleared
    one, in the same DAG run) finds what an earlier try delivered and sends only the rest.

    The task fails with :class:`~airflow_provider_doto.exceptions.DotoBatchError`, naming the
    failed conversations, when more than ``tolerate_failures`` of the messages failed after their
    retries; the results are written or pushed first. Only the provider's errors (HTTP, transport,
    refused input) count as a message's failure: any other exception is a bug and fails the task
    whatever ``tolerate_failures`` allows, raised with its traceback once the other messages are
    sent and the results written or pushed.

    :param messages: the messages (templated; a list of mappings, or an XComArg).
    :param conversation_ids: the conversations (templated; a list of ids, or an XComArg; a template
        may render a JSON or Python list, or ``"1,2"``).
    :param conversation_query: instead of ``conversation_ids``, every conversation this query lists
        when the task runs (templated): a mapping of :class:`~api.ConversationQuery`'s fields, e.g.
        ``{"status": "open", "labels": ["vip"]}``, or a ``ConversationQuery``; static fields are
        checked when the task is built. Each listed conversation gets ``content``.
    :param content: with ``conversation_ids`` or ``conversation_query``: the text, a Jinja template rendered once per
        conversation (``{{ conversation_id }}`` is the conversation's id), or a ``.txt``/``.md``/``.j2``
        template file.
    :param message_type: ``outgoing`` (default) or ``incoming``.
    :param private: post private notes, visible to the team only.
    :param content_attributes: extra structured content for every message (the delivery key is added).
    :param check_reply_window: before each public outgoing message, read its conversation (one GET)
        and send nothing there when its channel's reply window is closed: that conversation's result
        is failed with :class:`~airflow_provider_doto.exceptions.DotoReplyWindowError`, counted by
        ``tolerate_failures``. Default True; private notes are never checked.
    :param template: an approved message template sent with every message (templated): a dict in
        Chatwoot's ``template_params`` shape, as for :class:`SendMessageOperator`.
    :param fallback_template: the same, sent only to the conversations whose reply window is
        closed (each read once); the others get the free text. A wrong field fails the task before
        anything is sent.
    :param wait_for: None (default: a message counts as sent once created), or ``"sent"``,
        ``"delivered"`` or ``"read"``: once all are sent, each message is read back (one request
        per conversation a poll) until its status reaches that; one its channel marked ``failed``
        fails that conversation's result with
        :class:`~airflow_provider_doto.exceptions.DotoDeliveryError` and the server's
        ``external_error``, counted by ``tolerate_failures``. Each result's ``message_status`` is
        its message's final status.
    :param delivery_timeout: seconds (from the end of the sends) a message may take to reach
        ``wait_for`` (default 60); then its result is failed, naming the last status read.
    :param attachments: files sent with every conversation's message (templated), as for
        :class:`SendMessageOperator`: local paths, ``ObjectStoragePath``s or ``(filename, bytes)``
        pairs. Checked once, before anything is sent (at most 15, each within the connection's
        ``max_upload_mb`` and of a type the server takes): a refused file fails the task with
        :class:`~airflow_provider_doto.exceptions.DotoUploadError` naming it, no conversation sent
        anything. Each conversation's upload is streamed from the source again; a retry finds the
        attachment messages an earlier try sent by their delivery keys. No ``template`` with them.
    :param max_in_flight: how many requests may be in flight at once (default 10).
    :param tolerate_failures: the share of messages (0.0 to 1.0) that may fail without failing the
        task (default 0.0: any failure fails it).
    :param results_path: write the per-conversation results here as JSON Lines (templated; a local
        path or an ``ObjectStoragePath`` URL) instead of pushing them to XCom. Written under a
        temporary name and renamed into place once complete, as the export operators do.
    :param doto_conn_id: the ``doto`` connection.
    """

    template_fields: Sequence[str] = (
        "messages",
        "conversation_ids",
        "conversation_query",
        "results_path",
        "template",
        "fallback_template",
        "attachments",
    )
    template_fields_renderers = {
        "messages": "json",
        "conversation_ids": "json",
        "conversation_query": "json",
        "template": "json",
        "fallback_template": "json",
    }
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        messages: Any = None,
        conversation_ids: Any = None,
        conversation_query: Any = None,
        content: str | None = None,
        message_type: str = "outgoing",
        private: bool = False,
        content_attributes: dict[str, Any] | None = None,
        check_reply_window: bool = True,
        template: dict[str, Any] | str | None = None,
        fallback_template: dict[str, Any] | str | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        attachments: Sequence[Any] | None = None,
        max_in_flight: int = 10,
        tolerate_failures: float = 0.0,
        results_path: str | None = None,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.messages = messages
        self.conversation_ids = conversation_ids
        self.conversation_query = conversation_query
        self.content = content
        self.message_type = message_type
        self.private = private
        self.content_attributes = content_attributes
        self._take_send_options(
            message_type=message_type,
            private=private,
            check_reply_window=check_reply_window,
            template=template,
            fallback_template=fallback_template,
            wait_for=wait_for,
            delivery_timeout=delivery_timeout,
            attachments=attachments,
        )
        self.max_in_flight = max_in_flight
        self.tolerate_failures = tolerate_failures
        self.results_path = results_path
        self.doto_conn_id = doto_conn_id
        # Check what is static now (DAG parse); templated values are checked after rendering.
        from airflow_provider_doto.api._batch import batch_ids, batch_source, validate_batch_options

        # The batch core is imported when a task is built, not when a DAG file imports the operator.
        source = batch_source(messages, conversation_ids, content, conversation_query)
        validate_batch_options(
            message_type=message_type,
            private=private,
            content_attributes=content_attributes,
            max_in_flight=max_in_flight,
            tolerate_failures=tolerate_failures,
        )
        if results_path is not None and not isinstance(results_path, str):
            raise DotoConfigError(
                f"results_path must be a path or URL string, got {type(results_path).__name__}."
            )
        if source == "messages" and is_static(messages):
            self._build(messages=messages)
        elif source != "messages":
            if is_static(content) and not is_template_file(content):
                validate_content(content)
            if source == "conversation_query":
                check_query(conversation_query)
            elif is_static(conversation_ids):
                batch_ids(conversation_ids)

    @cached_property
    def hook(self) -> DotoAsyncHook:
        from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

        return DotoAsyncHook(self.doto_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        listed: dict[int, api.Conversation] | None = None
        if self.messages is not None:
            items = self._build(messages=rendered_list(self.messages, "messages"))
        else:
            if self.conversation_query is None:
                ids = rendered_list(self.conversation_ids, "conversation_ids")
            else:
                query = rendered_query(self.conversation_query)  # checked before anything is sent
                listed = asyncio.run(self._listed(query))
                ids = list(listed)
                self.log.info("The query lists %d conversation(s)", len(ids))
            items = self._build(conversation_ids=ids, content=self._renderer(context))
        template = rendered_template(self.template, "template")
        fallback_template = rendered_template(self.fallback_template, "fallback_template")
        send = delivery(context)
        self.log.info(
            "Sending %d message(s), at most %d request(s) in flight%s",
            len(items),
            self.max_in_flight,
            "; looking for what earlier tries delivered" if send.look_back_since is not None else "",
        )
        results = asyncio.run(
            self.hook.send_messages(
                items,
                delivery_keys=send.key,
                look_back_since=send.look_back_since,
                max_in_flight=self.max_in_flight,
                message_type=self.message_type,
                private=self.private,
                content_attributes=self.content_attributes,
                check_reply_window=self.check_reply_window,
                template=template,
                fallback_template=fallback_template,
                wait_for=self.wait_for,
                delivery_timeout=self.delivery_timeout,
                attachments=self.attachments,
                conversations=listed,  # the listing says each window: no read per conversation
            )
        )
        from airflow_provider_doto.api._batch import batch_output

        output = batch_output(results)
        self.log.info(
            "Batch of %d: %d sent, %d already delivered by an earlier try, %d failed",
            *(output[k] for k in ("total", "sent", "already_delivered", "failed")),
        )
        if self.results_path:  # instead of the results in XCom: the file, written whole or not at all
            path, count = write_jsonl(self.results_path, output.pop("results"), compression=None)
            self.log.info("Wrote %d result(s) to %s", count, path)
            output["path"] = str(path)
        try:
            api.check_batch(results, self.tolerate_failures)
        except Exception:
            # The task fails, but what it did stays visible: its results go to XCom all the same.
            context["ti"].xcom_push(key="return_value", value=output)
            raise
        return output

    async def _listed(self, query: api.ConversationQuery) -> dict[int, api.Conversation]:
        from airflow_provider_doto.api._window import window_view

        return {c.id: window_view(c) async for c in self.hook.aiter_conversations(query=query)}

    def _build(self, **given: Any) -> list[api.BatchItem]:
        from airflow_provider_doto.api._batch import build_batch

        return build_batch(
            **given,
            message_type=self.message_type,
            private=self.private,
            content_attributes=self.content_attributes,
        )

    def _renderer(self, context: Context) -> Callable[[int], str]:
        """``content`` as a function of a conversation id: rendered with ``conversation_id`` in the context."""
        if not isinstance(self.content, str):
            raise DotoConfigError(
                f"content must be a string (a Jinja template), got {type(self.content).__name__}."
            )
        env = self.get_template_env()
        template = (
            env.get_template(self.content)
            if is_template_file(self.content)
            else env.from_string(self.content)
        )
        values = dict(context)
        return lambda conversation_id: template.render({**values, "conversation_id": conversation_id})
