"""NewMessageSensor in poke, reschedule and deferrable mode, one conversation each (see
tests/integration/test_deferrable_and_watcher.py). Conversation ids come from the run's conf."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.sensors.doto import NewMessageSensor

MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}

with DAG(
    "deferrable_sensor_modes",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    for name, mode in MODES.items():
        NewMessageSensor(
            task_id=f"wait_{name}",
            conversation_id=f"{{{{ dag_run.conf['{name}'] }}}}",
            content_pattern="refund",
            min_messages=2,
            poke_interval=0.3,
            timeout=120,
            **mode,
        )

with DAG(
    "deferrable_sensor_failures",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as failures_dag:
    # Nothing matching arrives: the deferred wait must end with a sensor timeout (no retry).
    NewMessageSensor(
        task_id="wait_timeout",
        conversation_id="{{ dag_run.conf['timeout'] }}",
        content_pattern="refund",
        deferrable=True,
        poke_interval=0.2,
        timeout=2,
        retries=1,
        retry_delay=0,
    )
    # The same with soft_fail: the timeout skips the task instead.
    NewMessageSensor(
        task_id="wait_timeout_soft",
        conversation_id="{{ dag_run.conf['timeout'] }}",
        content_pattern="refund",
        deferrable=True,
        poke_interval=0.2,
        timeout=1,
        soft_fail=True,
    )
    # The token is refused once the sensor has deferred: the trigger's error fails the task.
    NewMessageSensor(
        task_id="wait_unauthorized",
        conversation_id="{{ dag_run.conf['unauthorized'] }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=120,
    )

with DAG(
    "account_sensor_modes",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as account_dag:
    # No conversation: each sensor watches every conversation of the account.
    for name, mode in MODES.items():
        NewMessageSensor(
            task_id=f"wait_{name}",
            content_pattern=r"ESCALATE-\d",
            sender_types=["Contact"],
            min_messages=2,
            poke_interval=0.3,
            timeout=120,
            **mode,
        )
