"""Test DAGs of the conversation query: ListConversationsOperator with each query field from the
run's config (``doto_test_list_conversations``), and ExportMessagesOperator and
BatchSendMessagesOperator given a ``conversation_query`` of every status active since the run's
data interval started (``doto_test_export_query``, ``doto_test_batch_send_query``)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.conversations import ListConversationsOperator
from airflow_provider_doto.operators.doto import ExportMessagesOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
SINCE_THE_INTERVAL = {"status": "{{ params.status }}", "active_since": "{{ data_interval_start }}"}

with DAG(
    dag_id="doto_test_list_conversations",
    schedule=None,
    start_date=START,
    catchup=False,
    params={
        "status": Param("open", type="string"),
        "inbox_id": Param(None, type=["null", "integer", "string"]),
        "labels": Param([], type="array"),
        "assignee_type": Param("", type="string"),
        "sort_by": Param("", type="string"),
        "active_since": Param(None, type=["null", "integer", "string"]),
        "output_path": Param("", type="string"),
    },
) as list_dag:
    ListConversationsOperator(
        task_id="list",
        status="{{ params.status }}",
        inbox_id="{{ params.inbox_id or '' }}",
        labels="{{ params.labels }}",
        assignee_type="{{ params.assignee_type }}",
        sort_by="{{ params.sort_by }}",
        active_since="{{ params.active_since or '' }}",
        output_path="{{ params.output_path }}",
    )

with DAG(
    dag_id="doto_test_export_query",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"status": Param("all", type="string"), "output_path": Param(type="string")},
) as export_dag:
    ExportMessagesOperator(
        task_id="export",
        conversation_query=SINCE_THE_INTERVAL,
        output_path="{{ params.output_path }}",
    )

with DAG(
    dag_id="doto_test_batch_send_query",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"status": Param("all", type="string")},
) as batch_dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_query=SINCE_THE_INTERVAL,
        content="Hi! Still need help with #{{ conversation_id }}?",
        max_in_flight=3,
        retries=1,
        retry_delay=timedelta(0),
    )
