"""Test DAG: a mapped SendMessageOperator (one map index per conversation of ``dag_run.conf['cids']``)
with a retry, for duplicate-safety of mapped sends."""

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
    dag_id="doto_test_send_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    SendMessageOperator.partial(
        task_id="send",
        content="Your order {{ ti.map_index }} has shipped.",
        retries=1,
        retry_delay=timedelta(0),
    ).expand(conversation_id=conversations())
