"""Test DAG: SendMessageOperator with content from a template file and templated attributes."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="doto_test_send_template",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_id": Param(type="integer"),
        "name": Param("Maria", type="string"),
        "order": Param("#1042", type="string"),
    },
) as dag:
    SendMessageOperator(
        task_id="send_from_file",
        conversation_id="{{ params.conversation_id }}",
        content="templates/doto_test_message.md.j2",
        content_attributes={"order": "{{ params.order }}", "campaign": "shipping"},
        private=True,
    )
