"""Nudge customers who went quiet: one rule, two daily DAGs, two ways to send.

The rule (``follow_up_blocker``, for each conversation in ``conversation_ids``)
    Read the conversation's recent messages (``lookback_days``) and find our last *public
    outgoing* message (private notes and activity messages don't count). A nudge is due when the
    customer has not written since (no public incoming message after it), it is at least ``hours``
    old at the run's time (``dag_run.run_after``: when a scheduled run was due, or when a manual
    run was triggered), and it is not itself a nudge from either DAG (one nudge per silence, not
    one a day, and not one from each DAG when both look after the same conversations). Every
    decision is logged.

``doto_follow_up``: one mapped task per due conversation
    1. ``find_due_conversations`` applies the rule.
    2. ``send_follow_up`` (:class:`SendMessageOperator`, mapped) posts
       ``templates/follow_up.md.j2``, marked with ``content_attributes.doto_follow_up``.
       Duplicate-safe: a retried task does not post twice. No conversation due: it is skipped.

``doto_backlog_nudge``: the whole backlog (hundreds or thousands of conversations) in one task
    1. ``find_backlog`` applies the same rule.
    2. ``nudge_backlog`` (:class:`BatchSendMessagesOperator`) sends each of them a nudge rendered
       for its conversation, marked with ``content_attributes.doto_backlog_nudge``, at most 10
       requests in flight, rate limits waited out. Duplicate-safe: a retried task sends only what
       the earlier try did not deliver. The task fails naming the conversations it could not
       reach, unless they are at most 2% of the batch; the per-conversation results are in its
       XCom either way. It costs one task however large the backlog, and is not bound by
       Airflow's ``max_map_length``.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params (both DAGs)
    * ``conversation_ids`` (list of int): the conversations to look after (default: none).
    * ``hours`` (number, default 24 for ``doto_follow_up``, 48 for ``doto_backlog_nudge``): how
      long the customer may stay silent before a nudge.
    * ``lookback_days`` (int, default 7): older messages are not read; a conversation whose last
      outgoing message is older than this gets no nudge.
    * ``signature``: the nudge's sign-off.

Schedule
    ``@daily`` (no catch-up). Trigger by hand with a config to try it, e.g.
    ``airflow dags test doto_follow_up -c '{"conversation_ids": [42, 43], "hours": 48}'`` or
    ``airflow dags test doto_backlog_nudge -c '{"conversation_ids": [42, 43, 44]}'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator

if TYPE_CHECKING:
    from airflow_provider_doto.api import Message

FOLLOW_UP_ATTRIBUTE = "doto_follow_up"
NUDGE_ATTRIBUTE = "doto_backlog_nudge"
# Each DAG marks its nudges with its own attribute (so a reader sees which one sent it); both
# treat either as a nudge.
NUDGE_MARKERS = (FOLLOW_UP_ATTRIBUTE, NUDGE_ATTRIBUTE)


def follow_up_blocker(messages: Sequence[Message], now: int, hours: float) -> str | None:
    """Why no nudge is due (a sentence), or None when one is. ``messages`` oldest first."""
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
    if any(last.content_attributes.get(marker) for marker in NUDGE_MARKERS):
        return "our last message is already a nudge"
    age = now - last.created_at
    if age < hours * 3600:
        return f"our last message is only {age / 3600:.1f} h old"
    return None


@task
def find_due_conversations(params: dict[str, Any] | None = None, dag_run: Any = None) -> list[int]:
    """The conversations due a nudge now (each decision is logged)."""
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
            log.info("Conversation %s: nudge due", conversation_id)
            due.append(conversation_id)
        else:
            log.info("Conversation %s: no nudge, %s", conversation_id, blocker)
    log.info("%d of %d conversation(s) are due a nudge", len(due), len(params["conversation_ids"]))
    return due


def nudge_params(hours: float) -> dict[str, Param]:
    """The params both DAGs take; only the default silence differs."""
    return {
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Conversations."
        ),
        "hours": Param(hours, type="number", exclusiveMinimum=0, description="Silence before a nudge."),
        "lookback_days": Param(7, type="integer", minimum=1, description="How far back to read."),
        "signature": Param("The support team", type="string", description="Sign-off."),
    }


with DAG(
    dag_id="doto_follow_up",
    description="Daily follow-up in conversations where the customer has not replied for N hours.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params=nudge_params(hours=24),
) as follow_up:
    SendMessageOperator.partial(
        task_id="send_follow_up",
        content="templates/follow_up.md.j2",
        content_attributes={FOLLOW_UP_ATTRIBUTE: True},
    ).expand(conversation_id=find_due_conversations())


with DAG(
    dag_id="doto_backlog_nudge",
    description="Daily nudge, in one batch task, to every conversation where the customer went quiet.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params=nudge_params(hours=48),
) as backlog_nudge:
    BatchSendMessagesOperator(
        task_id="nudge_backlog",
        conversation_ids=find_due_conversations.override(task_id="find_backlog")(),
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
