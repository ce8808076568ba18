"""Test DAGs: NewMessageSensor in poke, reschedule and deferrable mode, one DAG per mode.

``min_messages`` and ``poke_interval`` come from params (set before execute), so a test can make
the sensor collect a known number of messages over several pokes.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.sensors.doto import NewMessageSensor


def _from_params(context: Any) -> None:
    context["task"].min_messages = int(context["params"]["min_messages"])
    context["task"].poke_interval = float(context["params"]["poke_interval"])


for mode in ("poke", "reschedule", "deferrable"):
    with DAG(
        dag_id=f"doto_test_sensor_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={
            "conversation_id": Param(type="integer"),
            "min_messages": Param(1, type="integer"),
            "poke_interval": Param(0.2, type="number"),
        },
    ) as dag:
        NewMessageSensor(
            task_id="wait",
            conversation_id="{{ params.conversation_id }}",
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.2,
            timeout=120,
            pre_execute=_from_params,
        )
    globals()[dag.dag_id] = dag
