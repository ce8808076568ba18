"""Event-driven: run a DAG whenever a customer writes in a Doto conversation.

No sensor and no schedule: the asset below carries an ``AssetWatcher`` whose
:class:`~airflow_provider_doto.triggers.doto.NewMessageTrigger` polls the conversation inside
Airflow's triggerer. Each batch of new incoming messages becomes one asset event, and each asset
event queues one run of ``doto_new_message_watcher``. The run reads the messages from
``triggering_asset_events[asset][i].extra["payload"]`` (Airflow stores the trigger event's payload
there: ``{"status": "success", "conversation_id": ..., "messages": [...], "redelivered": ...}``,
each message with its ``id``) and posts a private note summarising them, so the team sees at a
glance what came in.

* The trigger's kwargs are fixed at parse time (no start time in them), so Airflow keeps ONE
  trigger for the asset across re-parses. It starts from "now" the first time it runs.
* Its cursor lives in the asset's state store (Airflow 3.3+): a restarted triggerer resumes where
  it stopped, so no message is lost. Airflow does not tell a trigger when its event is stored, so
  a batch announced in the seconds before the triggerer died is announced again
  (``"redelivered": true``): de-duplicate by message id (this DAG does, within a run). Without
  that store (Airflow 3.1/3.2) a restarted trigger starts again from "now": messages that arrive
  while it is down are missed.
* The summary is a private outgoing note; the watcher only counts public incoming messages, so
  the note never triggers another run.
* If polling fails for good (bad token: 401, conversation gone: 404) the trigger emits an error
  event instead; the run then fails with that error so it shows up red in the UI.

Settings (environment, read at parse time):
``DOTO_WATCH_CONVERSATION_ID`` (default 1), ``DOTO_WATCH_POLL_INTERVAL`` seconds (default 30),
``DOTO_WATCH_CONN_ID`` (default ``doto_default``).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_doto.operators.doto import SendMessageOperator
from airflow_provider_doto.triggers.doto import NewMessageTrigger, messages_from_event

CONVERSATION_ID = int(os.environ.get("DOTO_WATCH_CONVERSATION_ID", "1"))
POLL_INTERVAL = float(os.environ.get("DOTO_WATCH_POLL_INTERVAL", "30"))
DOTO_CONN_ID = os.environ.get("DOTO_WATCH_CONN_ID", "doto_default")
PREVIEW_CHARS = 80

incoming_messages = Asset(
    name=f"doto_conversation_{CONVERSATION_ID}_incoming",
    uri=f"doto://conversations/{CONVERSATION_ID}/incoming",
    watchers=[
        AssetWatcher(
            name="doto_new_messages",
            trigger=NewMessageTrigger(
                conversation_id=CONVERSATION_ID,
                doto_conn_id=DOTO_CONN_ID,
                poll_interval=POLL_INTERVAL,
                message_types=["incoming"],
            ),
        )
    ],
)


def summarise(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One note for every message in the triggering events (an error event raises the error it reports)."""
    # A batch announced again after a triggerer restart may sit in this run twice: each id once.
    messages = list({m["id"]: m for payload in payloads for m in messages_from_event(payload)}.values())
    lines = [f"{len(messages)} new message(s) from the customer:"]
    for message in messages:
        text = " ".join((message.get("content") or "").split())
        if len(text) > PREVIEW_CHARS:
            text = text[: PREVIEW_CHARS - 1] + "…"
        lines.append(f"- #{message['id']}: {text}")
    conversation_id = payloads[0].get("conversation_id", CONVERSATION_ID) if payloads else CONVERSATION_ID
    return {
        "conversation_id": conversation_id,
        "message_ids": [m["id"] for m in messages],
        "note": "\n".join(lines),
    }


with DAG(
    dag_id="doto_new_message_watcher",
    schedule=[incoming_messages],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # No max_active_runs: Airflow 3.1-3.3 leaves asset events that arrive while a DAG is at its cap
    # without a run until a later event comes (apache/airflow#56050).
    tags=["doto", "example", "event-driven"],
    doc_md=__doc__,
) as dag:

    @task
    def read_messages(triggering_asset_events=None) -> dict[str, Any]:
        """Collect the messages of every asset event that triggered this run."""
        events = triggering_asset_events[incoming_messages] if triggering_asset_events else []
        if not events:
            raise AirflowSkipException("Not triggered by a Doto asset event: nothing to summarise.")
        return summarise([event.extra["payload"] for event in events])

    summary = read_messages()

    post_note = SendMessageOperator(
        task_id="post_summary_note",
        conversation_id="{{ ti.xcom_pull(task_ids='read_messages')['conversation_id'] }}",
        content="{{ ti.xcom_pull(task_ids='read_messages')['note'] }}",
        private=True,
        doto_conn_id=DOTO_CONN_ID,
    )

    summary >> post_note
