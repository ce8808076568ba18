"""Test DAGs of what happens after the create: SendMessageOperator with the reply-window check (the
default; ``doto_test_send_window``), without it (``doto_test_send_unchecked``), and a batch
(``doto_test_batch_send_window``, tolerating half its messages failing). No retries: one try each,
but for the batch that waits for delivery (``doto_test_batch_send_wait``: one retry) and the
deferred wait that times out (``doto_test_send_wait_deferred_retried``: one retry)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
PARAMS = {"conversation_id": Param(1, type="integer"), "private": Param(False, type="boolean")}

with DAG(
    dag_id="doto_test_send_window", schedule=None, start_date=START, catchup=False, params=PARAMS
) as window_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="We haven't heard from you in a while.",
        retries=0,
    )
    SendMessageOperator(
        task_id="note",
        conversation_id="{{ params.conversation_id }}",
        content="Follow-up due; the window may be closed.",
        private=True,
        retries=0,
    )

with DAG(
    dag_id="doto_test_send_unchecked", schedule=None, start_date=START, catchup=False, params=PARAMS
) as unchecked_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="We haven't heard from you in a while.",
        check_reply_window=False,
        retries=0,
    )

with DAG(
    dag_id="doto_test_batch_send_window",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"cids": Param([], type="array")},
) as batch_dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_ids="{{ params.cids }}",
        content="Still need help with #{{ conversation_id }}?",
        tolerate_failures=0.5,
        retries=0,
    )

for _wait_for in ("delivered", "read"):
    with DAG(
        dag_id=f"doto_test_send_wait_{_wait_for}",
        schedule=None,
        start_date=START,
        catchup=False,
        params=PARAMS,
    ) as _dag:
        SendMessageOperator(
            task_id="send",
            conversation_id="{{ params.conversation_id }}",
            content="Your parcel is on its way.",
            check_reply_window=False,  # the server's own verdict is what is tested
            wait_for=_wait_for,
            delivery_timeout=30,
            retries=0,
        )
    globals()[f"wait_{_wait_for}_dag"] = _dag

with DAG(
    dag_id="doto_test_batch_send_wait",
    schedule=None,
    start_date=START,
    catchup=False,
    params={"cids": Param([], type="array")},
) as batch_wait_dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_ids="{{ params.cids }}",
        content="Your parcel #{{ conversation_id }} is on its way.",
        check_reply_window=False,  # the server's own verdict is what is tested
        wait_for="delivered",
        delivery_timeout=30,
        tolerate_failures=0.5,
        retries=1,
        retry_delay=timedelta(0),
    )

with DAG(
    dag_id="doto_test_send_wait_deferred", schedule=None, start_date=START, catchup=False, params=PARAMS
) as wait_deferred_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="Your parcel is on its way.",
        check_reply_window=False,  # the server's own verdict is what is tested
        wait_for="delivered",
        delivery_timeout=30,
        deferrable=True,
        retries=0,
    )

with DAG(
    dag_id="doto_test_send_wait_deferred_retried",
    schedule=None,
    start_date=START,
    catchup=False,
    params=PARAMS,
) as wait_deferred_retried_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="Your parcel is on its way.",
        wait_for="delivered",
        delivery_timeout=1,
        deferrable=True,
        retries=1,
        retry_delay=timedelta(0),
    )
