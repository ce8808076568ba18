"""Test DAG: DeleteMessageOperator with missing_ok (default True) and missing_ok=False."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import DeleteMessageOperator

with DAG(
    dag_id="doto_test_delete",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_id": Param(type="integer"),
        "message_id": Param(type="integer"),
        "strict_message_id": Param(type="integer"),
    },
) as dag:
    DeleteMessageOperator(
        task_id="delete_missing_ok",
        conversation_id="{{ params.conversation_id }}",
        message_id="{{ params.message_id }}",
    )
    DeleteMessageOperator(
        task_id="delete_strict",
        conversation_id="{{ params.conversation_id }}",
        message_id="{{ params.strict_message_id }}",
        missing_ok=False,
    )
