"""Test DAGs: ExportMessagesOperator to one JSON Lines file with an Asset outlet, and a DAG scheduled on it."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_doto.operators.doto import ExportMessagesOperator

EXPORTS = Asset(name="doto_test_exports", uri="file:///doto-test/exports/messages.jsonl")

with DAG(
    dag_id="doto_test_export",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conversation_ids": Param(type="array"),
        "output_path": Param(type="string"),
        "after": Param(None, type=["null", "integer"]),
        "before": Param(None, type=["null", "integer"]),
    },
) as dag:
    ExportMessagesOperator(
        task_id="export",
        conversation_ids="{{ params.conversation_ids }}",
        output_path="{{ params.output_path }}",
        after="{{ params.after or '' }}",
        before="{{ params.before or '' }}",
        outlets=[EXPORTS],
    )

with DAG(
    dag_id="doto_test_export_consumer",
    schedule=[EXPORTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
) as consumer:

    @task
    def read_export(triggering_asset_events=None):
        return [event.extra for event in triggering_asset_events[EXPORTS]]

    read_export()

with DAG(
    dag_id="doto_test_export_from_upstream",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"conversation_ids": Param(type="array"), "output_path": Param(type="string")},
) as from_upstream:

    @task
    def pick_conversations(params=None):
        return list(reversed(params["conversation_ids"]))

    ExportMessagesOperator(
        task_id="export",
        conversation_ids=pick_conversations(),
        output_path="{{ params.output_path }}",
        compression="gzip",
    )
