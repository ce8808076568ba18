"""Test DAG: one SendMessageOperator with a retry, for duplicate-safety and XCom tests."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="doto_test_send",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_id": Param(type="integer"),
        "text": Param("Your order has shipped.", type="string"),
    },
) as dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="{{ params.text }}",
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
