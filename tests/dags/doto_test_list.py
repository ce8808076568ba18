"""Test DAG: ListMessagesOperator to XCom and to a JSON Lines file (path or URL from params)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import ListMessagesOperator

with DAG(
    dag_id="doto_test_list",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_id": Param(type="integer"),
        "after": Param(type="integer"),
        "before": Param(type="integer"),
        "output_path": Param(type="string"),
    },
) as dag:
    ListMessagesOperator(
        task_id="list_to_xcom",
        conversation_id="{{ params.conversation_id }}",
        after="{{ params.after }}",
        before="{{ params.before }}",
    )
    ListMessagesOperator(
        task_id="list_to_file",
        conversation_id="{{ params.conversation_id }}",
        after="{{ params.after }}",
        before="{{ params.before }}",
        output_path="{{ params.output_path }}",
    )
