"""Test DAGs of BatchSendMessagesOperator, each with one retry: ids from the run's config and one
content template (``doto_test_batch_send``; ``..._tolerant`` tolerates half the messages failing,
``..._tolerate_all`` all of them, with no retry),
messages from an upstream task's XCom (``doto_test_batch_send_messages``), and content from a
template file (``doto_test_batch_send_template``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


def _nudge_dag(dag_id: str, tolerate_failures: float, retries: int = 1) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        params={"cids": Param([], type="array"), "results_path": Param("", type="string")},
    ) as dag:
        BatchSendMessagesOperator(
            task_id="nudge",
            conversation_ids="{{ params.cids }}",
            content="Hi! Still need help with #{{ conversation_id }}? (one of {{ params.cids | length }})",
            tolerate_failures=tolerate_failures,
            results_path="{{ params.results_path }}",
            max_in_flight=3,
            retries=retries,
            retry_delay=timedelta(0),
        )
    return dag


dag = _nudge_dag("doto_test_batch_send", 0.0)
tolerant_dag = _nudge_dag("doto_test_batch_send_tolerant", 0.5)
tolerate_all_dag = _nudge_dag("doto_test_batch_send_tolerate_all", 1.0, retries=0)

with DAG(
    dag_id="doto_test_batch_send_messages", schedule=None, start_date=START, catchup=False
) as messages_dag:

    @task
    def plan(dag_run: Any = None) -> list[dict[str, Any]]:
        return [{"conversation_id": c, "content": f"Order {c} has shipped."} for c in dag_run.conf["cids"]]

    BatchSendMessagesOperator(
        task_id="nudge", messages=plan(), private=True, retries=1, retry_delay=timedelta(0)
    )

with DAG(
    dag_id="doto_test_batch_send_template",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"cids": Param([], type="array"), "order": Param("A-1", type="string")},
) as template_dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_ids="{{ params.cids }}",
        content="templates/doto_test_batch_nudge.md.j2",
    )
