"""Operators: send, delete and list (export) messages of a Doto conversation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_doto import api
from airflow_provider_doto._airflow import is_template
from airflow_provider_doto._runs import run_start
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.links.doto import DotoConversationLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.hooks.doto import DotoHook


TEMPLATE_EXTENSIONS = (".txt", ".md", ".j2")


class _DotoOperator(BaseOperator):
    """Shared plumbing: the connection id, a lazily built hook and the "View in Doto" link."""

    operator_extra_links = (DotoConversationLink(),)
    ui_color = "#e8f4fd"

    def __init__(self, *, conversation_id: int | str, doto_conn_id: str = "doto_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.doto_conn_id = doto_conn_id
        if not is_template(conversation_id):
            api.to_id(conversation_id, name="conversation_id")

    @cached_property
    def hook(self) -> DotoHook:
        from airflow_provider_doto.hooks.doto import DotoHook

        return DotoHook(self.doto_conn_id)


class SendMessageOperator(_DotoOperator):
    """Post a message (or a private note) to a conversation; return the created message to XCom.

    Duplicate-safe across task retries: the message carries a delivery key derived from
    dag_id/task_id/run_id/map_index/conversation. When the task runs again in the same DAG run
    (a retry after a worker died or a POST timed out after Doto committed it), it first looks for
    a message with that key sent since the run started and returns it instead of posting again.
    A new DAG run has a new key, so two runs that send the same text both post.

    :param conversation_id: target conversation (templated).
    :param content: the text (templated; may be a path to a ``.txt``/``.md``/``.j2`` template file).
    :param message_type: ``outgoing`` (default) or ``incoming``.
    :param private: post as a private note, visible to the team only.
    :param content_type: Doto content type, ``text`` by default.
    :param content_attributes: extra structured content (templated).
    :param doto_conn_id: the ``doto`` connection.
    """

    template_fields: Sequence[str] = ("conversation_id", "content", "content_attributes")
    template_ext: Sequence[str] = TEMPLATE_EXTENSIONS
    template_fields_renderers = {"content": "md", "content_attributes": "json"}

    def __init__(
        self,
        *,
        conversation_id: int | str,
        content: str,
        message_type: str = "outgoing",
        private: bool = False,
        content_type: str = "text",
        content_attributes: dict[str, Any] | None = None,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(conversation_id=conversation_id, doto_conn_id=doto_conn_id, **kwargs)
        self.content = content
        self.message_type = message_type
        self.private = private
        self.content_type = content_type
        self.content_attributes = content_attributes
        # Check what is static now (DAG parse); templated values are checked after rendering.
        api.validate_send(
            "x" if is_template(content) or _is_template_file(content) else content,
            message_type,
            private,
            content_type,
            None if is_template(content_attributes) else content_attributes,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        conversation_id = api.to_id(self.conversation_id, name="conversation_id")
        ti = context["ti"]
        key = api.delivery_key(
            ti.dag_id, ti.task_id, ti.run_id, -1 if ti.map_index is None else ti.map_index, conversation_id
        )
        # A retry may follow a try whose message was delivered after all: look back to the run's start.
        look_back_since = run_start(context["dag_run"]) if ti.try_number > 1 else None
        message, already_delivered = self.hook.send_message_once(
            conversation_id,
            self.content,
            key=key,
            look_back_since=look_back_since,
            message_type=self.message_type,
            private=self.private,
            content_type=self.content_type,
            content_attributes=self.content_attributes,
        )
        if already_delivered:
            self.log.info("Message %s was already delivered by an earlier try; not sending again", message.id)
        else:
            self.log.info("Sent message %s to conversation %s", message.id, conversation_id)
        return message.to_dict()


class DeleteMessageOperator(_DotoOperator):
    """Delete a message. With ``missing_ok`` (default) a message that is already gone is fine.

    :param conversation_id: the conversation (templated).
    :param message_id: the message (templated, e.g. ``{{ ti.xcom_pull('send')['id'] }}``).
    :param missing_ok: succeed with a log line when the message does not exist.
    """

    template_fields: Sequence[str] = ("conversation_id", "message_id")

    def __init__(
        self,
        *,
        conversation_id: int | str,
        message_id: int | str,
        missing_ok: bool = True,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(conversation_id=conversation_id, doto_conn_id=doto_conn_id, **kwargs)
        self.message_id = message_id
        self.missing_ok = missing_ok
        if not is_template(message_id):
            api.to_id(message_id, name="message_id")
        if not isinstance(missing_ok, bool):
            raise DotoConfigError(f"missing_ok must be True or False, got {missing_ok!r}.")

    def execute(self, context: Context) -> bool:
        deleted = self.hook.delete_message(self.conversation_id, self.message_id, missing_ok=self.missing_ok)
        if deleted:
            self.log.info("Deleted message %s of conversation %s", self.message_id, self.conversation_id)
        else:
            self.log.info(
                "Message %s of conversation %s was already gone", self.message_id, self.conversation_id
            )
        return deleted


class ListMessagesOperator(_DotoOperator):
    """List a conversation's messages in a window: to XCom, or as JSON Lines to a file.

    :param conversation_id: the conversation (templated).
    :param after: only messages created after this (templated; Unix seconds, datetime or ISO).
    :param before: only messages created before this (templated).
    :param output_path: write JSON Lines here instead of returning the messages (templated): a
        local path or any URL Airflow's ``ObjectStoragePath`` supports (``s3://``, ``file://``, ...).
        The XCom value is then ``{"path": ..., "count": ...}``.
    :param include_deleted: keep soft-deleted messages (default False).
    """

    template_fields: Sequence[str] = ("conversation_id", "after", "before", "output_path")

    def __init__(
        self,
        *,
        conversation_id: int | str,
        after: api.Timestamp | None = None,
        before: api.Timestamp | None = None,
        output_path: str | None = None,
        include_deleted: bool = False,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(conversation_id=conversation_id, doto_conn_id=doto_conn_id, **kwargs)
        self.after = after
        self.before = before
        self.output_path = output_path
        self.include_deleted = include_deleted
        if not isinstance(include_deleted, bool):
            raise DotoConfigError(f"include_deleted must be True or False, got {include_deleted!r}.")
        for name, value in (("after", after), ("before", before)):
            if value is not None and not is_template(value):
                api.to_timestamp(value, name=name)

    def execute(self, context: Context) -> Any:
        messages = self.hook.list_messages(
            self.conversation_id,
            after=self.after or None,
            before=self.before or None,
        )
        rows = [m.to_dict() for m in messages if self.include_deleted or not m.is_deleted]
        if not self.output_path:
            return rows
        from airflow.sdk import ObjectStoragePath

        path = ObjectStoragePath(self.output_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.log.info("Wrote %d message(s) of conversation %s to %s", len(rows), self.conversation_id, path)
        return {"path": str(path), "count": len(rows)}


def _is_template_file(value: Any) -> bool:
    return isinstance(value, str) and value.endswith(TEMPLATE_EXTENSIONS)
