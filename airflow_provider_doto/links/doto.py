"""The "View in Doto" button on every task that touches a conversation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class DotoConversationLink(BaseOperatorLink):
    """Opens the task's conversation in Doto's web app.

    Airflow 3 computes the link on the worker when the task ends, from the rendered operator,
    and stores it in XCom for the UI; so the connection is read there, not in the API server.
    """

    name = "View in Doto"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_provider_doto.hooks.doto import DotoHook

        conversation_id = getattr(operator, "conversation_id", None)
        if conversation_id in (None, ""):
            return ""
        return DotoHook(getattr(operator, "doto_conn_id", DotoHook.default_conn_name)).conversation_url(
            conversation_id
        )
