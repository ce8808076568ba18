"""A send that waits for delivery in the triggerer, for the deployment test of ``DeliveryTrigger``.

Trigger with ``{"conversation_id": N}`` (a conversation of an API inbox, where the integrator sets
statuses with ``PATCH .../messages/:id``). No retries: a message its channel failed was not
delivered, so a retry would send it again (by design), and the test counts the POSTs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="deployment_delivery_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "test"],
) as dag:
    SendMessageOperator(
        task_id="send",
        conversation_id="{{ dag_run.conf['conversation_id'] }}",
        content="Your order #{{ dag_run.conf['conversation_id'] }} has shipped.",
        wait_for="delivered",
        deferrable=True,
        delivery_timeout=300,  # far longer than the test takes to PATCH the status
        retries=0,
    )
