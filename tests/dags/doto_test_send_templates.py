"""Test DAGs of message templates: SendMessageOperator with a fallback template
(``doto_test_send_fallback``, retried once) and with a template always sent
(``doto_test_send_with_template``), and a batch with a fallback (``doto_test_batch_fallback``).
The template's body is rendered from the params; its category may be too (a bad one fails at run time)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
TEMPLATE = {
    "name": "follow_up",
    "category": "{{ params.category }}",
    "language": "en_US",
    "processed_params": {"body": {"1": "{{ params.name }}"}},
}
PARAMS = {
    "conversation_id": Param(1, type="integer"),
    "name": Param("Maria", type="string"),
    "category": Param("UTILITY", type="string"),
}

with DAG(
    dag_id="doto_test_send_fallback", schedule=None, start_date=START, catchup=False, params=PARAMS
) as fallback_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="Hi {{ params.name }}, any news on your order?",
        fallback_template=TEMPLATE,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )

with DAG(
    dag_id="doto_test_send_with_template", schedule=None, start_date=START, catchup=False, params=PARAMS
) as template_dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="Hi {{ params.name }}, your order has shipped.",
        template=TEMPLATE,
        wait_for="delivered",
        delivery_timeout=30,
        retries=0,
    )

with DAG(
    dag_id="doto_test_batch_fallback",
    schedule=None,
    start_date=START,
    catchup=False,
    params={**PARAMS, "cids": Param([], type="array")},
) as batch_dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_ids="{{ params.cids }}",
        content="Still need help with #{{ conversation_id }}?",
        fallback_template=TEMPLATE,
        retries=0,
    )

with DAG(
    dag_id="doto_test_batch_template",
    schedule=None,
    start_date=START,
    catchup=False,
    params={**PARAMS, "cids": Param([], type="array")},
) as batch_template_dag:
    BatchSendMessagesOperator(
        task_id="notify",
        conversation_ids="{{ params.cids }}",
        content="Your order #{{ conversation_id }} has shipped.",
        template=TEMPLATE,
        wait_for="delivered",
        delivery_timeout=30,
        retries=0,
    )
