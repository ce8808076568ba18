"""Nudge customers who went quiet: a daily, templated follow-up in conversations awaiting a reply.

What it does (every day, for each conversation in ``conversation_ids``)
    1. ``find_due_conversations`` reads the conversation's recent messages (``lookback_days``) and
       finds our last *public outgoing* message (private notes and activity messages don't count).
       A follow-up is due when the customer has not written since (no public incoming message
       after it), it is at least ``hours`` old at the run's time (``dag_run.run_after``: when a
       scheduled run was due, or when a manual run was triggered), and it is not itself one of
       our follow-ups (one nudge per silence, not one a day). Every decision is logged.
    2. ``send_follow_up`` (:class:`SendMessageOperator`, mapped: one task per due conversation)
       posts ``templates/follow_up.md.j2``, marked with ``content_attributes.doto_follow_up``.
       Duplicate-safe: a retried task does not post twice. No conversation due: it is skipped.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params
    * ``conversation_ids`` (list of int): the conversations to look after (default: none).
    * ``hours`` (number, default 24): how long the customer may stay silent before a nudge.
    * ``lookback_days`` (int, default 7): older messages are not read; a conversation whose last
      outgoing message is older than this gets no follow-up.
    * ``signature``: the follow-up's sign-off.

Schedule
    ``@daily`` (no catch-up). Trigger by hand with a config to try it, e.g.
    ``airflow dags test doto_follow_up -c '{"conversation_ids": [42, 43], "hours": 48}'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_doto.operators.doto import SendMessageOperator

if TYPE_CHECKING:
    from airflow_provider_doto.api import Message

FOLLOW_UP_ATTRIBUTE = "doto_follow_up"


def follow_up_blocker(messages: Sequence[Message], now: int, hours: float) -> str | None:
    """Why no follow-up is due (a sentence), or None when one is. ``messages`` oldest first."""
    public = [
        m
        for m in messages
        if not m.private and not m.is_deleted and m.message_type in ("incoming", "outgoing")
    ]
    outgoing = [i for i, m in enumerate(public) if m.message_type == "outgoing"]
    if not outgoing:
        return "no outgoing message of ours to follow up on"
    last = public[outgoing[-1]]
    if any(m.message_type == "incoming" for m in public[outgoing[-1] + 1 :]):
        return "the customer replied"
    if last.content_attributes.get(FOLLOW_UP_ATTRIBUTE):
        return "our last message is already a follow-up"
    age = now - last.created_at
    if age < hours * 3600:
        return f"our last message is only {age / 3600:.1f} h old"
    return None


with DAG(
    dag_id="doto_follow_up",
    description="Daily follow-up in conversations where the customer has not replied for N hours.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Conversations."
        ),
        "hours": Param(24, type="number", exclusiveMinimum=0, description="Silence before a nudge."),
        "lookback_days": Param(7, type="integer", minimum=1, description="How far back to read."),
        "signature": Param("The support team", type="string", description="Sign-off."),
    },
) as dag:

    @task
    def find_due_conversations(params: dict[str, Any] | None = None, dag_run: Any = None) -> list[int]:
        """The conversations that need a follow-up now (each decision is logged)."""
        import logging

        from airflow_provider_doto.hooks.doto import DotoHook

        log = logging.getLogger("airflow.task")
        assert params is not None and dag_run is not None
        now = int(dag_run.run_after.timestamp())
        hook = DotoHook()
        due = []
        for conversation_id in params["conversation_ids"]:
            messages = hook.list_messages(conversation_id, after=now - params["lookback_days"] * 86400)
            blocker = follow_up_blocker(messages, now, params["hours"])
            if blocker is None:
                log.info("Conversation %s: follow-up due", conversation_id)
                due.append(conversation_id)
            else:
                log.info("Conversation %s: no follow-up, %s", conversation_id, blocker)
        return due

    SendMessageOperator.partial(
        task_id="send_follow_up",
        content="templates/follow_up.md.j2",
        content_attributes={FOLLOW_UP_ATTRIBUTE: True},
    ).expand(conversation_id=find_due_conversations())
