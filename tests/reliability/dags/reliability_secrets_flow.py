"""Every operator, both sensor modes and the notifier, for the secrets test (token must not leak)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.notifications.doto import DotoNotifier
from airflow_provider_doto.operators.doto import (
    DeleteMessageOperator,
    ListMessagesOperator,
    SendMessageOperator,
)
from airflow_provider_doto.sensors.doto import NewMessageSensor

CID = "{{ dag_run.conf['cid'] }}"

with DAG(
    "reliability_secrets_flow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    send = SendMessageOperator(
        task_id="send",
        conversation_id=CID,
        content="Hello from {{ run_id }}",
        content_attributes={"run": "{{ run_id }}"},
        on_success_callback=DotoNotifier(conversation_id=CID, content="{{ ti.task_id }} ok"),
    )
    wait = NewMessageSensor(task_id="wait", conversation_id=CID, start=0, poke_interval=0.2, timeout=30)
    wait_deferred = NewMessageSensor(
        task_id="wait_deferred", conversation_id=CID, start=0, poke_interval=0.2, timeout=30, deferrable=True
    )
    listing = ListMessagesOperator(task_id="list", conversation_id=CID, after=0)
    delete = DeleteMessageOperator(
        task_id="delete", conversation_id=CID, message_id="{{ ti.xcom_pull('send')['id'] }}"
    )
    # Fails on purpose (no such conversation): its error and traceback go to the task log.
    fail = SendMessageOperator(task_id="send_to_missing", conversation_id=999_999, content="nobody home")
    send >> wait >> wait_deferred >> listing >> delete
