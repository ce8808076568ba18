"""Test DAGs: a NewMessageSensor whose first try dies right after it found its batch, one DAG per mode.

``DiesOnceAfterFinding`` is the real sensor; on try 1 it fails just after the batch was found (as a
worker lost at that moment would), and Airflow's own retry (``retries=1``) runs it again. Every try
that found a batch appends ``{"try": n, "ids": [...]}`` to the file named by ``dag_run.conf['record']``
(XComs of a failed try do not survive the retry), so a test can compare what each try found.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.sensors.doto import NewMessageSensor


class DiesOnceAfterFinding(NewMessageSensor):
    def execute(self, context: Any) -> Any:
        return self._found(context, super().execute(context))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        return self._found(context, super().execute_complete(context, event))

    def _found(self, context: Any, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try_number = context["ti"].try_number
        with open(context["dag_run"].conf["record"], "a") as record:
            record.write(json.dumps({"try": try_number, "ids": [m["id"] for m in batch]}) + "\n")
        if try_number == 1:
            raise RuntimeError("the worker died right after the sensor found its batch")
        return batch


for mode in ("poke", "reschedule", "deferrable"):
    with DAG(
        dag_id=f"doto_test_sensor_retry_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
    ) as dag:
        DiesOnceAfterFinding(
            task_id="wait",
            conversation_id="{{ dag_run.conf['cid'] }}",
            min_messages=3,
            mode="reschedule" if mode == "reschedule" else "poke",
            deferrable=mode == "deferrable",
            poke_interval=0.2,
            timeout=120,
            retries=1,
            retry_delay=timedelta(0),
        )
    globals()[dag.dag_id] = dag
