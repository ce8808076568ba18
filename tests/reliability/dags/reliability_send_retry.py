"""A send task that Airflow itself retries (retries=1, no delay): used by the no-duplicates test."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    "reliability_send_retry",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ dag_run.conf['cid'] }}",
        content="order {{ dag_run.conf['n'] }} shipped",
        retries=1,
        retry_delay=timedelta(0),
    )
