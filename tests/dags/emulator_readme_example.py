"""Answer a customer's latest message (the DAG of the README's emulator example)."""

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.operators.doto import SendMessageOperator

with DAG(
    dag_id="support_auto_reply",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"conversation_id": 1},
) as dag:

    @task
    def latest_question(params=None):
        messages = DotoHook().list_messages(params["conversation_id"])
        return [m.content for m in messages if m.message_type == "incoming"][-1]

    latest_question() >> SendMessageOperator(
        task_id="reply",
        conversation_id="{{ params.conversation_id }}",
        content="Thanks! An agent will look into: {{ ti.xcom_pull(task_ids='latest_question') }}",
    )
