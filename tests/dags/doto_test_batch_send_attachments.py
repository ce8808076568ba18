"""Test DAGs: BatchSendMessagesOperator with the same files for every conversation, from the run's
config, each with one retry. ``doto_test_batch_send_attachments``: a templated local path, a
templated ObjectStoragePath and a ``(filename, bytes)`` pair; ``..._refused``: ``report.csv`` and the run's
``refused`` file (both in ``dir``) through the connection ``doto_small_uploads``, to be refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator


def _batch_dag(dag_id: str, attachments: Any, **kwargs: Any) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        params={
            "cids": Param([], type="array"),
            "dir": Param("", type="string"),
            "refused": Param("", type="string"),
        },
    ) as dag:
        BatchSendMessagesOperator(
            task_id="send_files",
            conversation_ids="{{ params.cids }}",
            content="The files for #{{ conversation_id }}.",
            attachments=attachments,
            max_in_flight=3,
            retries=1,
            retry_delay=timedelta(0),
            **kwargs,
        )
    return dag


dag = _batch_dag(
    "doto_test_batch_send_attachments",
    [
        "{{ params.dir }}/orders_{{ ds }}.csv",
        ObjectStoragePath("file:///{{ params.dir.lstrip('/') }}/invoice.pdf"),
        ("notes.txt", b"see you"),
    ],
)
refused_dag = _batch_dag(
    "doto_test_batch_send_attachments_refused",
    ["{{ params.dir }}/report.csv", "{{ params.dir }}/{{ params.refused }}"],
    doto_conn_id="doto_small_uploads",
)
