"""A batch send with a retry, for the deployment test that SIGKILLs its task process mid-batch.

Trigger with ``{"cids": [...]}``. The retry waits a few seconds, longer than the emulator holds the
POSTs that were in flight at the kill, so they have landed when the retry looks for them.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

with DAG(
    dag_id="deployment_batch_send",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "test"],
) as dag:
    BatchSendMessagesOperator(
        task_id="nudge",
        conversation_ids="{{ dag_run.conf['cids'] }}",
        content="Hi! Still need help with #{{ conversation_id }}?",
        max_in_flight=4,
        retries=1,
        retry_delay=timedelta(seconds=8),
    )
