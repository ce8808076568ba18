"""Nudge the whole backlog in one task: every conversation where the customer went quiet.

What it does (every day, over ``conversation_ids``: hundreds or thousands of conversations)
    1. ``find_backlog`` reads each conversation's recent messages (``lookback_days``) and keeps
       those whose last public message is ours (the customer has not replied), at least ``hours``
       old at the run's time, and not itself one of these nudges (one nudge per silence).
    2. ``nudge_backlog`` (:class:`BatchSendMessagesOperator`) sends each of them a nudge rendered
       for its conversation, in one task, at most 10 requests in flight, rate limits waited out.
       Duplicate-safe: a retried task sends only what the earlier try did not deliver. The task
       fails naming the conversations it could not reach, unless they are at most 2% of the batch;
       the per-conversation results are in its XCom either way.

Unlike ``doto_follow_up`` (one mapped ``SendMessageOperator`` task per conversation), the batch
costs one task however large the backlog, and is not bound by Airflow's ``max_map_length``.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params
    * ``conversation_ids`` (list of int): the conversations to look after (default: none).
    * ``hours`` (number, default 48): how long the customer may stay silent before a nudge.
    * ``lookback_days`` (int, default 7): older messages are not read.
    * ``signature``: the nudge's sign-off.

Schedule
    ``@daily`` (no catch-up). Trigger by hand with a config to try it, e.g.
    ``airflow dags test doto_backlog_nudge -c '{"conversation_ids": [42, 43, 44], "hours": 48}'``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

NUDGE_ATTRIBUTE = "doto_backlog_nudge"

with DAG(
    dag_id="doto_backlog_nudge",
    description="Daily nudge, in one batch task, to every conversation where the customer went quiet.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Conversations."
        ),
        "hours": Param(48, type="number", exclusiveMinimum=0, description="Silence before a nudge."),
        "lookback_days": Param(7, type="integer", minimum=1, description="How far back to read."),
        "signature": Param("The support team", type="string", description="Sign-off."),
    },
) as dag:

    @task
    def find_backlog(params: dict[str, Any] | None = None, dag_run: Any = None) -> list[int]:
        """The conversations waiting for the customer for at least ``hours``, not nudged yet."""
        import logging

        from airflow_provider_doto.hooks.doto import DotoHook

        log = logging.getLogger("airflow.task")
        assert params is not None and dag_run is not None
        now = int(dag_run.run_after.timestamp())
        hook = DotoHook()
        due = []
        for conversation_id in params["conversation_ids"]:
            messages = hook.list_messages(conversation_id, after=now - params["lookback_days"] * 86400)
            public = [
                m
                for m in messages
                if not m.private and not m.is_deleted and m.message_type in ("incoming", "outgoing")
            ]
            last = public[-1] if public else None
            if (
                last is not None
                and last.message_type == "outgoing"
                and not last.content_attributes.get(NUDGE_ATTRIBUTE)
                and now - last.created_at >= params["hours"] * 3600
            ):
                due.append(conversation_id)
        log.info("%d of %d conversation(s) are due a nudge", len(due), len(params["conversation_ids"]))
        return due

    BatchSendMessagesOperator(
        task_id="nudge_backlog",
        conversation_ids=find_backlog(),
        content=(
            "Hi! Just checking in on conversation #{{ conversation_id }}: do you still need help? "
            "Reply here and we'll pick it up.\n\n{{ params.signature }}"
        ),
        content_attributes={NUDGE_ATTRIBUTE: True},
        max_in_flight=10,
        tolerate_failures=0.02,
        retries=2,
        retry_delay=timedelta(minutes=1),
    )
