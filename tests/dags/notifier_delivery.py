"""DotoNotifier waiting for delivery as a task callback (see tests/notifications/test_doto.py)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.notifications.doto import DotoNotifier

with DAG(
    "notifier_delivery",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as dag:

    @task(
        on_success_callback=DotoNotifier(
            conversation_id="{{ dag_run.conf['cid'] }}",
            content="Your export {{ ti.task_id }} is ready.",
            private=False,
            wait_for="delivered",
            delivery_timeout=10,
        )
    )
    def works() -> int:
        return 1

    works()
