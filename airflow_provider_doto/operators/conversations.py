"""ListConversationsOperator: the account's conversations matching a query, to XCom or a file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_doto import api
from airflow_provider_doto._airflow import check_query, rendered_query
from airflow_provider_doto._export import check_compression, check_output_path, write_jsonl
from airflow_provider_doto.operators.doto import _DotoConnected

if TYPE_CHECKING:
    from airflow.sdk import Context

# The fields of ``api.ConversationQuery``, spelled out: importing the query here would load the
# listing core whenever a DAG file imports the operator.
QUERY_FIELDS = ("status", "inbox_id", "team_id", "labels", "assignee_type", "q", "sort_by", "active_since")


class ListConversationsOperator(_DotoConnected):
    """List the account's conversations matching a query: to XCom, or as JSON Lines to a file.

    The query's fields are the operator's (each templated; see :class:`~api.ConversationQuery`);
    static ones are checked when the task is built, templated ones once rendered, before anything
    is sent.

    :param status: ``open`` (default), ``resolved``, ``pending``, ``snoozed`` or ``all``.
    :param inbox_id: only this inbox's conversations.
    :param team_id: only this team's conversations.
    :param labels: conversations with any of these labels (a list; a template may render a JSON or
        Python list, or ``"a,b"``).
    :param assignee_type: ``me``, ``unassigned``, ``assigned`` or ``all``.
    :param q: conversations with a message containing this text (the server then ignores ``status``).
    :param sort_by: the server's order (``last_activity_at_desc`` by default).
    :param active_since: only conversations active after this (Unix seconds, datetime or ISO; e.g.
        ``"{{ data_interval_start }}"``), newest activity first.
    :param output_path: write JSON Lines here instead of returning the conversations (templated): a
        local path or an ``ObjectStoragePath`` URL, gzip-compressed if it ends in ``.gz``. Written a
        page at a time and renamed into place once complete, as :class:`ExportMessagesOperator` does.
        The XCom value is then ``{"path": ..., "count": ...}``.
    :param compression: ``"gzip"``, ``None`` (plain) or ``"infer"`` (default: by the suffix).
    :param doto_conn_id: the ``doto`` connection.

    XCom without ``output_path``: a list of ``Conversation.to_dict()``.
    """

    template_fields: Sequence[str] = (*QUERY_FIELDS, "output_path")
    template_fields_renderers = {"labels": "json"}

    def __init__(
        self,
        *,
        status: str = "open",
        inbox_id: int | str | None = None,
        team_id: int | str | None = None,
        labels: Iterable[str] | str | None = None,
        assignee_type: str | None = None,
        q: str | None = None,
        sort_by: str | None = None,
        active_since: api.Timestamp | None = None,
        output_path: str | None = None,
        compression: str | None = "infer",
        doto_conn_id: str = "doto_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(doto_conn_id=doto_conn_id, **kwargs)
        self.status = status
        self.inbox_id = inbox_id
        self.team_id = team_id
        self.labels = labels
        self.assignee_type = assignee_type
        self.q = q
        self.sort_by = sort_by
        self.active_since = active_since
        self.output_path = output_path
        self.compression = compression
        check_query(self.query_fields(), name="")
        check_compression(compression)
        if output_path is not None:
            check_output_path(output_path)

    def query_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in QUERY_FIELDS}

    def execute(self, context: Context) -> Any:
        query = rendered_query(self.query_fields(), name="")
        if not self.output_path:
            return [c.to_dict() for c in self.hook.list_conversations(query=query)]
        rows = (c.to_dict() for c in self.hook.iter_conversations(query=query))
        path, count = write_jsonl(self.output_path, rows, compression=self.compression)
        self.log.info("Wrote %d conversation(s) to %s", count, path)
        return {"path": str(path), "count": count}
