"""Test DAG: ExportMessagesOperator copying the exported messages' attachments (templated target)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.doto import ExportMessagesOperator

with DAG(
    dag_id="doto_test_export_attachments",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_ids": Param(type="array"),
        "output_path": Param(type="string"),
        "attachments_to": Param(type="string"),
    },
) as dag:
    ExportMessagesOperator(
        task_id="export",
        conversation_ids="{{ params.conversation_ids }}",
        output_path="{{ params.output_path }}",
        attachments_to="{{ params.attachments_to }}/{{ ds }}",
    )
