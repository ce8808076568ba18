"""The "View in Doto" button on every task that touches a conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

from airflow_provider_doto.api._values import to_id
from airflow_provider_doto.exceptions import DotoConfigError

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class DotoConversationLink(BaseOperatorLink):
    """Opens the task's conversation in Doto's web app.

    Airflow 3 computes the link on the worker when the task ends, from the rendered operator,
    and stores it in XCom for the UI; so the connection is read there, not in the API server.
    It does so for a failed task too: with no valid conversation id (a template that rendered to
    something else) or no such connection, there is nothing to link and the link is empty, never
    an error of its own beside the task's.
    """

    name = "View in Doto"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_provider_doto.hooks.doto import DotoHook

        conn_id = getattr(operator, "doto_conn_id", DotoHook.default_conn_name)
        try:
            conversation_id = to_id(getattr(operator, "conversation_id", None), name="conversation_id")
            return DotoHook(conn_id).conversation_url(conversation_id)
        except DotoConfigError:  # nothing to link; the task failed on it already and says so
            return ""
