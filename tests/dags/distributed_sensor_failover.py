"""Test DAG: deferred NewMessageSensors, one map index per conversation of ``dag_run.conf['cids']``,
for the triggerer failover test (tests/distributed)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.sensors.doto import NewMessageSensor


@task
def conversations(dag_run: Any = None) -> list[int]:
    return list(dag_run.conf["cids"])


with DAG(
    dag_id="distributed_sensor_failover",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=200,
) as dag:
    NewMessageSensor.partial(
        task_id="wait",
        deferrable=True,
        poke_interval=2,
        timeout=900,
    ).expand(conversation_id=conversations())
