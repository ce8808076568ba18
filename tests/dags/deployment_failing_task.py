"""A task that always fails, with DotoNotifier as its failure callback (deployment tests).

Trigger with ``{"conversation_id": N}``; the note's text carries the run id so a test can count it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.notifications.doto import DotoNotifier

with DAG(
    dag_id="deployment_failing_task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "test"],
) as dag:

    @task(
        retries=0,
        on_failure_callback=DotoNotifier(
            conversation_id="{{ dag_run.conf['conversation_id'] }}",
            content="Task {{ ti.task_id }} failed in run {{ run_id }}.",
        ),
    )
    def always_fails() -> None:
        raise RuntimeError("this task fails on purpose")

    always_fails()
