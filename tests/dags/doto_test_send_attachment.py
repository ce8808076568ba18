"""Test DAG: SendMessageOperator with attachments from ``dag_run.conf`` (a templated local path and
an ObjectStoragePath) and a retry, for duplicate-safety of attachment messages."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="doto_test_send_attachment",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ dag_run.conf['conversation_id'] }}",
        content="The files for {{ ds }}.",
        attachments=[
            "{{ dag_run.conf['dir'] }}/orders_{{ ds }}.csv",
            ObjectStoragePath("file:///{{ dag_run.conf['dir'].lstrip('/') }}/invoice.pdf"),
        ],
        retries=1,
        retry_delay=timedelta(0),
    )
