"""Test DAG: a mapped SendMessageOperator with retries, one map index per conversation of
``dag_run.conf['cids']``, for the worker-death test (tests/distributed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.operators.doto import SendMessageOperator


@task
def conversations(dag_run: Any = None) -> list[int]:
    return list(dag_run.conf["cids"])


with DAG(
    dag_id="distributed_send_failover",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=200,
) as dag:
    SendMessageOperator.partial(
        task_id="send",
        content="Your order {{ ti.map_index }} has shipped.",
        retries=3,
        retry_delay=timedelta(seconds=1),
    ).expand(conversation_id=conversations())
