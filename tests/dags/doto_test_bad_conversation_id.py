"""Test DAG: a send whose conversation id renders to something that is not an id (the task fails
before any request; its "View in Doto" link has nothing to point at)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="doto_test_bad_conversation_id",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"conversation_id": Param("not-a-number", type="string")},
) as dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="hello",
        retries=0,
    )
