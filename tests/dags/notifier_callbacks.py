"""DotoNotifier as task callbacks (see tests/notifications/test_doto.py). Conversation from conf."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.notifications.doto import DotoNotifier

CONVERSATION = "{{ dag_run.conf['cid'] }}"

with DAG(
    "notifier_callbacks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={
        # From default_args: every task that finally fails posts one private note.
        "on_failure_callback": DotoNotifier(
            conversation_id=CONVERSATION,
            content="Airflow task {{ ti.task_id }} failed in run {{ run_id }} (try {{ ti.try_number }}).",
        ),
    },
) as dag:

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def breaks() -> None:
        raise RuntimeError("the export broke")

    @task(
        on_success_callback=DotoNotifier(
            conversation_id=CONVERSATION,
            content="Your export {{ ti.task_id }} is ready (run {{ run_id }}).",
            private=False,
        )
    )
    def works() -> int:
        return 1

    @task(
        on_success_callback=DotoNotifier(conversation_id=987654, content="This conversation does not exist.")
    )
    def unnoticed() -> int:
        return 2

    breaks()
    works()
    unnoticed()
