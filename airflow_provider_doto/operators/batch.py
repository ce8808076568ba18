"""BatchSendMessagesOperator: one message to each of many conversations, in one task.

One task sends thousands of messages through :meth:`DotoAsyncHook.send_messages` (a bounded number
in flight), where a mapped :class:`SendMessageOperator` would pay a task per conversation. The same
delivery keys make it duplicate-safe across task retries: a retry sends only what was not delivered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_doto import api
from airflow_provider_doto._airflow import is_static, is_template_file, rendered_list
from airflow_provider_doto._runs import run_start
from airflow_provider_doto.exceptions import DotoBatchError, DotoConfigError

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.hooks.doto_async import DotoAsyncHook


class BatchSendMessagesOperator(BaseOperator):
    """Send one message to each of many conversations; push the counts (and results) to XCom.

    Give either ``messages`` (a list of ``{"conversation_id": ..., "content": ...}``, e.g. an
    upstream task's XCom) or ``conversation_ids`` and one ``content`` template, rendered per
    conversation with ``conversation_id`` in the context. At most ``max_in_flight`` requests are in
    flight; rate limits are waited out. Each message carries the delivery key
    :class:`SendMessageOperator` would use for its conversation, so a retried task (or a cleared
    one, in the same DAG run) finds what an earlier try delivered and sends only the rest.

    The task fails with :class:`~airflow_provider_doto.exceptions.DotoBatchError`, naming the
    failed conversations, when more than ``tolerate_failures`` of the messages failed after their
    retries; the results are written or pushed first.

    :param messages: the messages (templated; a list of mappings, or an XComArg).
    :param conversation_ids: the conversations (templated; a list of ids, or an XComArg; a template
        may render a JSON or Python list, or ``"1,2"``).
    :param content: with ``conversation_ids``: the text, a Jinja template rendered once per
        conversation (``{{ conversation_id }}`` is the conversation's id), or a ``.txt``/``.md``/``.j2``
        template file.
    :param message_type: ``outgoing`` (default) or ``incoming``.
    :param private: post private notes, visible to the team only.
    :param content_attributes: extra structured content for every message (the delivery key is added).
    :param max_in_flight: how many requests may be in flight at once (default 10).
    :param tolerate_failures: the share of messages (0.0 to 1.0) that may fail without failing the
        task (default 0.0: any failure fails it).
    :param results_path: write the per-conversation results here as JSON Lines (templated; a local
        path or an ``ObjectStoragePath`` URL) instead of pushing them to XCom.
    :param doto_conn_id: the ``doto`` connection.
    """

    template_fields: Sequence[str] = ("messages", "conversation_ids", "results_path")
    template_fields_renderers = {"messages": "json", "conversation_ids": "json"}
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        messages: Any = None,
        conversation_ids: Any = None,
        content: str | None = None,
        message_type: str = "outgoing",
        private: bool = False,
        content_attributes: dict[str, Any] | None = None,
        max_in_flight: int = 10,
        tolerate_failures: float = 0.0,
        results_path: str | None = None,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.messages = messages
        self.conversation_ids = conversation_ids
        self.content = content
        self.message_type = message_type
        self.private = private
        self.content_attributes = content_attributes
        self.max_in_flight = max_in_flight
        self.tolerate_failures = tolerate_failures
        self.results_path = results_path
        self.doto_conn_id = doto_conn_id
        # Check what is static now (DAG parse); templated values are checked after rendering.
        if (messages is None) == (conversation_ids is None):
            raise DotoConfigError(
                "Pass either messages or conversation_ids (with content), not both or neither."
            )
        if conversation_ids is not None and content is None:
            raise DotoConfigError(
                "conversation_ids needs content: the text (template) for each conversation."
            )
        if messages is not None and content is not None:
            raise DotoConfigError("content goes inside each of messages' items, not next to messages.")
        api.validate_send("x", message_type, private, "text", content_attributes)
        api.validate_max_in_flight(max_in_flight)
        api.validate_tolerance(tolerate_failures)
        if results_path is not None and not isinstance(results_path, str):
            raise DotoConfigError(
                f"results_path must be a path or URL string, got {type(results_path).__name__}."
            )
        if content is not None and is_static(content) and not is_template_file(content):
            api.validate_send(content, message_type, private, "text", content_attributes)
        if messages is not None and is_static(messages):
            self._items(messages=messages)
        elif conversation_ids is not None and is_static(conversation_ids):
            self._items(conversation_ids=conversation_ids, content="x")

    @cached_property
    def hook(self) -> DotoAsyncHook:
        from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

        return DotoAsyncHook(self.doto_conn_id)

    def _items(self, **given: Any) -> list[api.BatchItem]:
        return api.build_batch(
            **given,
            message_type=self.message_type,
            private=self.private,
            content_attributes=self.content_attributes,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        if self.messages is not None:
            items = self._items(messages=rendered_list(self.messages, "messages"))
        else:
            ids = rendered_list(self.conversation_ids, "conversation_ids")
            self._items(conversation_ids=ids, content="x")  # the ids first: a bad one fails before rendering
            items = self._items(conversation_ids=ids, content=self._render_content(ids, context))
        ti = context["ti"]
        map_index = -1 if ti.map_index is None else ti.map_index

        def keys(conversation_id: int) -> str:
            return api.delivery_key(ti.dag_id, ti.task_id, ti.run_id, map_index, conversation_id)

        # A retry may follow a try whose messages were delivered after all: look back to the run's start.
        look_back_since = run_start(context["dag_run"]) if ti.try_number > 1 else None
        self.log.info(
            "Sending %d message(s), at most %d request(s) in flight%s",
            len(items),
            self.max_in_flight,
            "; looking for what earlier tries delivered" if look_back_since is not None else "",
        )
        results = asyncio.run(
            self.hook.send_messages(
                items,
                delivery_keys=keys,
                look_back_since=look_back_since,
                max_in_flight=self.max_in_flight,
                message_type=self.message_type,
                private=self.private,
                content_attributes=self.content_attributes,
            )
        )
        counts = api.batch_counts(results)
        self.log.info(
            "Batch of %d: %d sent, %d already delivered by an earlier try, %d failed",
            counts["total"],
            counts["sent"],
            counts["already_delivered"],
            counts["failed"],
        )
        output: dict[str, Any] = dict(counts)
        if self.results_path:
            output["path"] = self._write_results(self.results_path, results)
        else:
            output["results"] = [r.to_dict() for r in results]
        try:
            api.check_batch(results, self.tolerate_failures)
        except DotoBatchError:
            # The task fails, but what it did stays visible: its results go to XCom all the same.
            ti.xcom_push(key="return_value", value=output)
            raise
        return output

    def _render_content(self, conversation_ids: list[Any], context: Context) -> list[str]:
        """``content`` rendered once per conversation, with ``conversation_id`` in the context."""
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
        rendered = []
        for conversation_id in conversation_ids:
            values["conversation_id"] = api.to_id(conversation_id, name="conversation_id")
            rendered.append(template.render(values))
        return rendered

    def _write_results(self, results_path: str, results: list[api.BatchResult]) -> str:
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(results_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for result in results:
                out.write(json.dumps(result.to_dict()) + "\n")
        self.log.info("Wrote %d result(s) to %s", len(results), path)
        return str(path)
