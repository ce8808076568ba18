"""Every task renders one bad value; each must fail with a DotoConfigError before any request."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.operators.doto import (
    DeleteMessageOperator,
    ListMessagesOperator,
    SendMessageOperator,
)
from airflow_provider_doto.sensors.doto import NewMessageSensor

with DAG(
    "reliability_bad_templates",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    SendMessageOperator(task_id="send_bad_conversation", conversation_id="{{ 'abc' }}", content="hi")
    SendMessageOperator(task_id="send_empty_content", conversation_id=1, content="{{ '' }}")
    DeleteMessageOperator(task_id="delete_bad_message", conversation_id=1, message_id="{{ 'x' }}")
    ListMessagesOperator(task_id="list_bad_after", conversation_id=1, after="{{ 'yesterday' }}")
    NewMessageSensor(
        task_id="wait_bad_pattern",
        conversation_id=1,
        content_pattern="{{ '(' }}",
        poke_interval=0.2,
        timeout=5,
    )
