"""Operators: send, delete, list and export messages of Doto conversations."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

# conf moved to airflow.sdk in Airflow 3.2; common-compat finds it on 3.1 too.
from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_doto import api
from airflow_provider_doto._airflow import (
    TEMPLATE_EXTENSIONS,
    check_attachments_use,
    check_query,
    check_templates,
    is_static,
    is_template,
    is_template_file,
    rendered_list,
    rendered_query,
    rendered_template,
    untemplated_files,
)
from airflow_provider_doto._export import (
    check_compression,
    check_output_path,
    write_attachments,
    write_jsonl,
)
from airflow_provider_doto._runs import delivery
from airflow_provider_doto.api._values import (
    DEFAULT_DELIVERY_TIMEOUT,
    check_wait_for,
    to_id,
    validate_content,
    validate_options,
)
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.links.doto import DotoConversationLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_doto.hooks.doto import DotoHook


class _DotoConnected(BaseOperator):
    """Shared plumbing: the connection id and a lazily built hook."""

    ui_color = "#e8f4fd"

    def __init__(self, *, doto_conn_id: str = "doto_default", **kwargs: Any):
        super().__init__(**kwargs)
        self.doto_conn_id = doto_conn_id

    @cached_property
    def hook(self) -> DotoHook:
        from airflow_provider_doto.hooks.doto import DotoHook

        return DotoHook(self.doto_conn_id)


class _DotoOperator(_DotoConnected):
    """An operator on one conversation: its id, checked early, and the "View in Doto" link."""

    operator_extra_links = (DotoConversationLink(),)

    def __init__(self, *, conversation_id: int | str, doto_conn_id: str = "doto_default", **kwargs: Any):
        super().__init__(doto_conn_id=doto_conn_id, **kwargs)
        self.conversation_id = conversation_id
        if not is_template(conversation_id):
            to_id(conversation_id, name="conversation_id")


class _SendOptions:
    """The options every send operator shares, checked where static (DAG parse) and kept on the
    task: the reply-window switch, the templates, the delivery wait and the attachments (kept as
    templating leaves them intact, :func:`untemplated_files`). The one place these are decided for
    :class:`SendMessageOperator` and :class:`~airflow_provider_doto.operators.batch.BatchSendMessagesOperator`."""

    check_reply_window: bool
    template: Any
    fallback_template: Any
    wait_for: str | None
    delivery_timeout: float
    attachments: Any

    def _take_send_options(
        self,
        *,
        message_type: Any,
        private: Any,
        check_reply_window: Any,
        template: Any,
        fallback_template: Any,
        wait_for: Any,
        delivery_timeout: Any,
        attachments: Any,
    ) -> None:
        if not isinstance(check_reply_window, bool):
            raise DotoConfigError(f"check_reply_window must be True or False, got {check_reply_window!r}.")
        check_templates(template, fallback_template, message_type, private)
        check_wait_for(wait_for, delivery_timeout)
        check_attachments_use(attachments, template, fallback_template)
        self.check_reply_window = check_reply_window
        self.template = template
        self.fallback_template = fallback_template
        self.wait_for = wait_for
        self.delivery_timeout = delivery_timeout
        self.attachments = untemplated_files(attachments)


class SendMessageOperator(_SendOptions, _DotoOperator):
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
    :param check_reply_window: before a public outgoing message, read the conversation (one GET) and
        fail with :class:`~airflow_provider_doto.exceptions.DotoReplyWindowError`, sending nothing,
        when its channel's reply window is closed (``can_reply`` false: WhatsApp 24 h after the
        customer's last message, ...). Default True; private notes are never checked.
    :param template: an approved message template, always sent with the message (templated): a
        dict in Chatwoot's ``template_params`` shape (``name``, ``category``, ``language``,
        ``processed_params`` with ``body``, optional ``header`` and ``buttons``). Its static parts
        are checked when the task is built, the rest once rendered; a wrong field fails the task
        with :class:`~airflow_provider_doto.exceptions.DotoConfigError` naming it, sending nothing.
    :param fallback_template: the same, sent only when the conversation's reply window is closed
        (read as ``check_reply_window`` does, whatever its value): the free text inside the window,
        the template outside it. Either way a retry finds what an earlier try sent.
    :param wait_for: None (default: the created message is the result), or ``"sent"``,
        ``"delivered"`` or ``"read"``: read the message back until its status reaches that (a later
        status satisfies an earlier one); ``failed`` fails the task with
        :class:`~airflow_provider_doto.exceptions.DotoDeliveryError` and the server's
        ``external_error``. The XCom is the message with its final status.
    :param delivery_timeout: seconds to wait for ``wait_for`` (default 60); then ``DotoDeliveryError``
        naming the last status.
    :param deferrable: with ``wait_for``, send (and read the message back once) in the worker, then
        wait in the triggerer (:class:`~airflow_provider_doto.triggers.delivery.DeliveryTrigger`);
        default ``[operators] default_deferrable``. The trigger's first read comes
        ``defer_first_read_after`` seconds after the deferral (apache/airflow#66374: a trigger that
        fires within seconds of its deferral can fail the task; a retry finds the message sent and
        waits again, never sends it twice).
    :param attachments: files sent with the message (templated): local paths, ``ObjectStoragePath``s
        (any object storage) or ``(filename, bytes)`` pairs; uploaded as the web app does, each
        streamed. Checked before anything is sent (at most 15, each within the connection's
        ``max_upload_mb``, 40 MB by default, and of a type the server takes); a refused file fails
        the task with :class:`~airflow_provider_doto.exceptions.DotoUploadError` naming it. A retry
        finds the attachment message an earlier try sent, as for any message. A ``str`` path ending
        in ``.txt``, ``.md`` or ``.j2`` is taken as written (Airflow would read it as a template
        file); template such a path as an ``ObjectStoragePath``.
    :param doto_conn_id: the ``doto`` connection.
    """

    # Seconds from the deferral to the trigger's first read (see ``deferrable``).
    defer_first_read_after: float = 10.0

    template_fields: Sequence[str] = (
        "conversation_id",
        "content",
        "content_attributes",
        "template",
        "fallback_template",
        "attachments",
    )
    template_ext: Sequence[str] = TEMPLATE_EXTENSIONS
    template_fields_renderers = {
        "content": "md",
        "content_attributes": "json",
        "template": "json",
        "fallback_template": "json",
    }

    def __init__(
        self,
        *,
        conversation_id: int | str,
        content: str,
        message_type: str = "outgoing",
        private: bool = False,
        content_type: str = "text",
        content_attributes: dict[str, Any] | None = None,
        check_reply_window: bool = True,
        template: dict[str, Any] | str | None = None,
        fallback_template: dict[str, Any] | str | None = None,
        wait_for: str | None = None,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        attachments: Sequence[Any] | None = None,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(conversation_id=conversation_id, doto_conn_id=doto_conn_id, **kwargs)
        self.content = content
        if not isinstance(deferrable, bool):
            raise DotoConfigError(f"deferrable must be True or False, got {deferrable!r}.")
        self.deferrable = deferrable
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
        self.message_type = message_type
        self.private = private
        self.content_type = content_type
        self.content_attributes = content_attributes
        # Check what is static now (DAG parse); templated values are checked after rendering.
        validate_options(
            message_type,
            private,
            content_type,
            None if is_template(content_attributes) else content_attributes,
        )
        if not (is_template(content) or is_template_file(content)):
            validate_content(content)

    def execute(self, context: Context) -> dict[str, Any]:
        conversation_id = to_id(self.conversation_id, name="conversation_id")
        send = delivery(context)
        message, already_delivered = self.hook.send_message_once(
            conversation_id,
            self.content,
            key=send.key(conversation_id),
            look_back_since=send.look_back_since,
            message_type=self.message_type,
            private=self.private,
            content_type=self.content_type,
            content_attributes=self.content_attributes,
            check_reply_window=self.check_reply_window,
            template=rendered_template(self.template, "template"),
            fallback_template=rendered_template(self.fallback_template, "fallback_template"),
            wait_for=None if self._defers else self.wait_for,
            delivery_timeout=self.delivery_timeout,
            attachments=self.attachments,
        )
        if already_delivered:
            self.log.info("Message %s was already delivered by an earlier try; not sending again", message.id)
        else:
            self.log.info("Sent message %s to conversation %s", message.id, conversation_id)
        if self._defers:
            message = self._defer_delivery(conversation_id, message)
        if self.wait_for is not None:
            self.log.info(
                "Message %s reached status %r (waited for %r)", message.id, message.status, self.wait_for
            )
        return message.to_dict()

    @property
    def _defers(self) -> bool:
        return self.deferrable and self.wait_for is not None

    def _defer_delivery(self, conversation_id: int, message: api.Message) -> api.Message:
        """Read the message back once here (reached: returned, no deferral; failed: raised); else defer."""
        import time

        from airflow_provider_doto.api._status import delivery_reached
        from airflow_provider_doto.triggers.delivery import DeliveryTrigger

        deferred_at = time.time()
        message = self.hook.read_back(conversation_id, message)
        if delivery_reached(message, str(self.wait_for), conversation_id):
            return message
        self.log.info(
            "Message %s is %r: waiting for %r in the triggerer", message.id, message.status, self.wait_for
        )
        self.defer(
            trigger=DeliveryTrigger(
                conversation_id=conversation_id,
                message_id=message.id,
                created_at=message.created_at,
                status=message.status,
                wait_for=str(self.wait_for),
                delivery_timeout=self.delivery_timeout,
                deferred_at=deferred_at,
                first_read_after=self.defer_first_read_after,
                doto_conn_id=self.doto_conn_id,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger: the message with its final status, or the trigger's error
        (``DotoDeliveryError`` with the server's ``external_error``)."""
        from airflow_provider_doto.triggers.delivery import message_from_event

        message = message_from_event(event)
        self.log.info(
            "Message %s reached status %r (waited for %r)",
            message.get("id"),
            message.get("status"),
            self.wait_for,
        )
        return message


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
            to_id(message_id, name="message_id")
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
        local path or any URL Airflow's ``ObjectStoragePath`` supports (``s3://``, ``file://``, ...),
        gzip-compressed if it ends in ``.gz``. Written page by page and renamed into place once
        complete, as :class:`ExportMessagesOperator` does. The XCom value is then ``{"path": ..., "count": ...}``.
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
        window = {"after": self.after or None, "before": self.before or None}
        if not self.output_path:
            messages = self.hook.list_messages(self.conversation_id, **window)
            return [m.to_dict() for m in messages if self.include_deleted or not m.is_deleted]
        stream = self.hook.iter_messages(self.conversation_id, **window)
        rows = (m.to_dict() for m in stream if self.include_deleted or not m.is_deleted)
        path, count = write_jsonl(self.output_path, rows)
        self.log.info("Wrote %d message(s) of conversation %s to %s", count, self.conversation_id, path)
        return {"path": str(path), "count": count}


class ExportMessagesOperator(_DotoConnected):
    """Export the messages of many conversations in a window to one JSON Lines file, streaming.

    Each conversation is read a page at a time (:meth:`DotoHook.iter_messages`) and written as it
    comes, so memory holds about one page whatever the conversations' size. One JSON object per
    line: a message's ``to_dict()`` form with its ``conversation_id``; conversations in the given
    order, each oldest first. The file is written under a temporary name beside ``output_path``
    and renamed into place once complete: a failed export leaves no file under ``output_path``
    (an earlier file there stays as it was). Pass ``outlets=[Asset(...)]`` to announce the file to
    asset-scheduled DAGs; the event's extra carries the path and counts.

    :param conversation_ids: the conversations (templated): a list of ids, one id, or a string
        such as ``"[1, 2]"`` or ``"1,2"`` (what a template renders). Repeated ids are exported once.
    :param conversation_query: instead of ``conversation_ids``, every conversation this query lists
        (templated): a mapping of :class:`~api.ConversationQuery`'s fields, e.g.
        ``{"status": "all", "active_since": "{{ data_interval_start }}"}``, or a ``ConversationQuery``.
        Its static fields are checked when the task is built; the conversations are listed when it
        runs, in the list's order.
    :param output_path: where to write (templated): a local path or any URL Airflow's
        ``ObjectStoragePath`` supports (``s3://``, ``gs://``, ``file://``, ...).
    :param after: only messages created after this (templated; Unix seconds, datetime or ISO).
    :param before: only messages created before this (templated).
    :param include_deleted: keep soft-deleted messages (default False).
    :param compression: ``"gzip"``, ``None`` (plain) or ``"infer"`` (default: gzip if
        ``output_path`` ends in ``.gz``).
    :param attachments_to: also copy each exported message's attachments into this directory
        (templated): a local path or any ``ObjectStoragePath`` URL. One file per attachment, named
        ``<message id>-<attachment id>-<file name>`` (the name made safe), streamed from the
        attachment's ``data_url`` (:meth:`DotoHook.download_attachment`: the API token goes only
        to the Base URL's origin, never to the storage host the URL redirects to). Each such
        line then lists its files under ``attachments_written``. Default None: not copied.
    :param doto_conn_id: the ``doto`` connection.

    XCom: ``{"path": ..., "count": <lines>, "conversations": {"<id>": <lines>, ...}}``, plus
    ``"attachments": <files copied>`` when ``attachments_to`` is set.
    """

    template_fields: Sequence[str] = (
        "conversation_ids",
        "conversation_query",
        "output_path",
        "after",
        "before",
        "attachments_to",
    )

    def __init__(
        self,
        *,
        conversation_ids: int | str | Sequence[int | str] | None = None,
        conversation_query: Mapping[str, Any] | api.ConversationQuery | None = None,
        output_path: str,
        after: api.Timestamp | None = None,
        before: api.Timestamp | None = None,
        include_deleted: bool = False,
        compression: str | None = "infer",
        attachments_to: str | None = None,
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(doto_conn_id=doto_conn_id, **kwargs)
        self.conversation_ids = conversation_ids
        self.conversation_query = conversation_query
        self.output_path = output_path
        self.after = after
        self.before = before
        self.include_deleted = include_deleted
        self.compression = compression
        self.attachments_to = attachments_to
        self._exported: list[int] | None = None
        if not isinstance(include_deleted, bool):
            raise DotoConfigError(f"include_deleted must be True or False, got {include_deleted!r}.")
        check_compression(compression)
        if not is_template(output_path):
            check_output_path(output_path)
        if attachments_to is not None and not is_template(attachments_to):
            check_output_path(attachments_to, "attachments_to")
        check_one_source(conversation_ids, conversation_query)
        if conversation_query is not None:
            check_query(conversation_query)
        elif is_static(conversation_ids):
            conversation_ids_of(conversation_ids)
        for name, value in (("after", after), ("before", before)):
            if value is not None and not is_template(value):
                api.to_timestamp(value, name=name)

    def execute(self, context: Context) -> dict[str, Any]:
        window = {"after": self.after or None, "before": self.before or None}
        for name, value in window.items():  # rendered values: checked before anything is read or written
            if value is not None:
                api.to_timestamp(value, name=name)
        if self.conversation_query is None:
            ids = conversation_ids_of(self.conversation_ids)
        else:
            ids = self.hook.conversation_ids(query=rendered_query(self.conversation_query))
            self.log.info("The query lists %d conversation(s)", len(ids))
        attachments_to = self.attachments_to or None  # a template may render empty: not copied
        if attachments_to is not None:
            check_output_path(attachments_to, "attachments_to")
        counts: dict[str, int] = {}
        copied = [0]

        def rows() -> Iterator[dict[str, Any]]:
            for cid in ids:
                counts[str(cid)] = 0
                for message in self.hook.iter_messages(cid, **window):
                    if self.include_deleted or not message.is_deleted:
                        counts[str(cid)] += 1
                        row = {"conversation_id": cid, **message.to_dict()}
                        if attachments_to is not None and message.attachments:
                            files = write_attachments(attachments_to, message, self.hook.download_attachment)
                            row["attachments_written"], copied[0] = files, copied[0] + len(files)
                        yield row

        path, count = write_jsonl(self.output_path, rows(), compression=self.compression)
        self._exported = ids
        self.log.info("Exported %d message(s) of %d conversation(s) to %s", count, len(ids), path)
        result: dict[str, Any] = {"path": str(path), "count": count, "conversations": counts}
        if attachments_to is not None:
            self.log.info("Copied %d attachment(s) to %s", copied[0], attachments_to)
            result["attachments"] = copied[0]
        _describe_asset_events(self, context, result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs: the exported conversations; output: the file (when the OpenLineage provider is installed)."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        inputs, output = self.lineage_datasets()
        return OperatorLineage(
            inputs=[Dataset(namespace=namespace, name=name) for namespace, name in inputs],
            outputs=[Dataset(namespace=output[0], name=output[1])],
        )

    def lineage_datasets(self) -> tuple[list[tuple[str, str]], tuple[str, str]]:
        """``([(namespace, name)] of the conversations, (namespace, name) of the file)``, as OpenLineage names them."""
        from urllib.parse import urlsplit

        from airflow.sdk import ObjectStoragePath

        settings = self.hook.settings
        namespace = f"doto://{urlsplit(settings.base_url).netloc}"
        ids = self._exported
        if ids is None:  # not run (yet): the ids given, none for a query
            ids = conversation_ids_of(self.conversation_ids or [])
        inputs = [(namespace, f"accounts/{settings.account_id}/conversations/{cid}") for cid in ids]
        path = ObjectStoragePath(self.output_path)
        if path.protocol in ("", "file", "local"):
            return inputs, ("file", path.path)
        return inputs, (f"{path.protocol}://{path.bucket}", path.key)


def check_one_source(conversation_ids: Any, conversation_query: Any) -> None:
    """``conversation_ids`` or ``conversation_query``: exactly one of them."""
    if (conversation_ids is None) == (conversation_query is None):
        raise DotoConfigError(
            "Pass either conversation_ids or conversation_query, not both or neither "
            f"(got {'both' if conversation_ids is not None else 'neither'})."
        )


def conversation_ids_of(value: Any) -> list[int]:
    """Conversation ids from one id, a list, or a rendered template (``"[1, 2]"``, ``"1,2"``), once each."""
    items = rendered_list(value, "conversation_ids")
    return list(dict.fromkeys(to_id(item, name="conversation_ids item") for item in items))


def _describe_asset_events(task: BaseOperator, context: Context, result: dict[str, Any]) -> None:
    """Give each ``Asset`` outlet's event the export's path and counts (downstream DAGs read them)."""
    from airflow.sdk import Asset

    for outlet in task.outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra.update(result)
