"""Nudge customers who went quiet: one rule, two daily DAGs, two ways to send.

Which conversations (both DAGs)
    Every **open** conversation the connection's token sees, from the account's conversation list
    (25 a page). ``inbox_id`` and ``labels`` (any of them) narrow it; ``conversation_ids`` narrows
    it to those conversations (each read with one ``GET .../conversations/:id``, kept only if it is
    open and in that inbox / has one of those labels).

The rule (``follow_up``, a pure function of a conversation, unit-tested)
    Our last *public outgoing* message (private notes and activity messages don't count) is due a
    nudge when the customer has not written since (no public incoming message after it), it is at
    least ``hours`` old at the run's time (``dag_run.run_after``: when a scheduled run was due, or
    when a manual run was triggered), no more than ``lookback_days`` old, and it is not itself a
    nudge from either DAG (one nudge per silence, not one a day, and not one from each DAG when both
    look after the same conversations).

    It is decided from the list alone: each conversation there carries its last non-activity
    message (``Conversation.last_message``). Only where that message is a private note is the
    conversation's own history read (its last ``lookback_days``; one conversation, one listing), to
    find the public message before the note. No other history is read. A last message that is a
    template or was deleted is not ours to follow up on: no nudge. Every decision is logged.

    A due conversation whose channel no longer lets us write (``can_reply`` false: e.g. WhatsApp 24
    hours after the customer's last message) is not sent a free text. With the ``template`` param
    (an approved template) it is due all the same and sent that template instead (the send's
    ``fallback_template``: the window is read again when sending, so a conversation whose window
    reopened in between gets the free text); without one it is skipped and listed.

``doto_follow_up``: one mapped task per due conversation
    1. ``find_due_conversations`` applies the rule. XCom: ``{"due": [ids], "skipped_reply_window":
       [ids]}`` (each list also under its own XCom key).
    2. ``due_conversations`` passes ``due`` on (Airflow maps only over a task's return value), and
       ``send_follow_up`` (:class:`SendMessageOperator`, mapped over it) posts
       ``templates/follow_up.md.j2``, marked with ``content_attributes.doto_follow_up``.
       Duplicate-safe: a retried task does not post twice. No conversation due: it is skipped.

``doto_backlog_nudge``: the whole backlog (hundreds or thousands of conversations) in one task
    1. ``find_backlog`` applies the same rule (the same XCom).
    2. ``nudge_backlog`` (:class:`BatchSendMessagesOperator`) sends each ``due`` conversation a nudge
       rendered for it, marked with ``content_attributes.doto_backlog_nudge``, at most 10
       requests in flight, rate limits waited out. Duplicate-safe: a retried task sends only what
       the earlier try did not deliver. The task fails naming the conversations it could not
       reach, unless they are at most 2% of the batch; the per-conversation results are in its
       XCom either way. It costs one task however large the backlog, and is not bound by
       Airflow's ``max_map_length``.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params (both DAGs)
    * ``conversation_ids`` (list of int, default none): only these conversations.
    * ``inbox_id`` (int, default none): only this inbox's conversations.
    * ``labels`` (list of str, default none): only conversations with any of these labels.
    * ``hours`` (number, default 24 for ``doto_follow_up``, 48 for ``doto_backlog_nudge``): how
      long the customer may stay silent before a nudge.
    * ``lookback_days`` (int, default 7): a conversation whose last outgoing message is older than
      this gets no nudge (and a private note's history is read this far back).
    * ``signature``: the nudge's sign-off.
    * ``template`` (object, default empty): an approved template in Chatwoot's ``template_params``
      shape (``name``, ``category``, ``language``, ``processed_params``), sent where the reply
      window has closed. Empty: those conversations are skipped and listed in
      ``skipped_reply_window``.

Schedule
    ``@daily`` (no catch-up). Trigger by hand with a config to try it, e.g.
    ``airflow dags test doto_follow_up -c '{"inbox_id": 3, "hours": 48}'`` or
    ``airflow dags test doto_backlog_nudge -c '{"conversation_ids": [42, 43, 44]}'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator

if TYPE_CHECKING:
    from airflow_provider_doto.api import Conversation, Message
    from airflow_provider_doto.hooks.doto import DotoHook

FOLLOW_UP_ATTRIBUTE = "doto_follow_up"
NUDGE_ATTRIBUTE = "doto_backlog_nudge"
# Each DAG marks its nudges with its own attribute (so a reader sees which one sent it); both
# treat either as a nudge.
NUDGE_MARKERS = (FOLLOW_UP_ATTRIBUTE, NUDGE_ATTRIBUTE)
DAY = 86400

# What ``follow_up`` says of a conversation.
DUE = "due"
NOT_DUE = "not_due"
REPLY_WINDOW = "reply_window"  # due, but the channel's reply window has closed: no free text
READ_HISTORY = "read_history"  # the list cannot tell (the last message is a private note)


class FollowUp(NamedTuple):
    """The rule's verdict on one conversation: ``outcome`` (one of the constants above) and why."""

    conversation_id: int
    outcome: str
    reason: str


def follow_up_blocker(
    messages: Sequence[Message], now: int, hours: float, lookback_days: int | None = None
) -> str | None:
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
    return _last_outgoing_blocker(last, now, hours, lookback_days)


def _last_outgoing_blocker(last: Message, now: int, hours: float, lookback_days: int | None) -> str | None:
    """Our last public outgoing message, the customer silent since: too recent, too old, a nudge?"""
    if any(last.content_attributes.get(marker) for marker in NUDGE_MARKERS):
        return "our last message is already a nudge"
    age = now - last.created_at
    if lookback_days is not None and age >= lookback_days * DAY:  # as a history read "after" it would
        return f"our last message is {lookback_days} day(s) old or older"
    if age < hours * 3600:
        return f"our last message is only {age / 3600:.1f} h old"
    return None


def follow_up(
    conversation: Conversation,
    now: int,
    hours: float,
    lookback_days: int,
    history: Sequence[Message] | None = None,
) -> FollowUp:
    """The rule for one conversation, from the conversation list's view of it (its last non-activity
    message), or from ``history`` (its recent messages, oldest first) once read: only a
    :data:`READ_HISTORY` verdict asks for that."""
    cid = conversation.id
    if history is not None:
        blocker = follow_up_blocker(history, now, hours, lookback_days)
    else:
        last = conversation.last_message
        if last is None:
            blocker = "no message in the conversation"
        elif last.private:
            return FollowUp(cid, READ_HISTORY, "the last message is a private note")
        elif last.is_deleted:
            blocker = "the last message was deleted"
        elif last.message_type == "incoming":
            blocker = "the customer wrote last"
        elif last.message_type != "outgoing":
            blocker = f"the last message is of type {last.message_type}"
        else:
            blocker = _last_outgoing_blocker(last, now, hours, lookback_days)
    if blocker is not None:
        return FollowUp(cid, NOT_DUE, blocker)
    if conversation.can_reply is False:
        return FollowUp(cid, REPLY_WINDOW, "due, but the channel's reply window has closed")
    return FollowUp(cid, DUE, "nudge due")


def matches(conversation: Conversation, inbox_id: int | None, labels: Iterable[str]) -> bool:
    """Whether a conversation read by id belongs to the DAG's narrowed list (open, inbox, any label)."""
    wanted = set(labels)
    return (
        conversation.status == "open"
        and (inbox_id is None or conversation.inbox_id == inbox_id)
        and (not wanted or bool(wanted & set(conversation.labels)))
    )


def _narrowed_out(conversation: Conversation) -> str:
    if conversation.status != "open":
        return f"status {conversation.status}"
    return f"inbox {conversation.inbox_id}, labels {', '.join(conversation.labels) or 'none'}"


def find_follow_ups(
    hook: DotoHook,
    now: int,
    *,
    hours: float,
    lookback_days: int,
    conversation_ids: Sequence[int] = (),
    inbox_id: int | None = None,
    labels: Sequence[str] = (),
    with_template: bool = False,
    log: Any = None,
) -> dict[str, list[int]]:
    """``{"due": [...], "skipped_reply_window": [...]}``: the rule over the open conversations (or
    those of ``conversation_ids``), a page of the list at a time; each decision logged.
    ``with_template``: a conversation past its reply window is due too (it will be sent the template)."""
    if conversation_ids:

        def given() -> Iterable[Conversation]:
            for cid in dict.fromkeys(conversation_ids):
                conversation = hook.get_conversation(cid)
                if matches(conversation, inbox_id, labels):
                    yield conversation
                elif log is not None:
                    log.info("Conversation %s: not looked after (%s)", cid, _narrowed_out(conversation))

        conversations: Iterable[Conversation] = given()
    else:
        from airflow_provider_doto.api import ConversationQuery

        query = ConversationQuery(status="open", inbox_id=inbox_id, labels=tuple(labels))
        conversations = hook.iter_conversations(query=query)
    found: dict[str, list[int]] = {DUE: [], REPLY_WINDOW: []}
    looked = 0
    for conversation in conversations:
        looked += 1
        verdict = follow_up(conversation, now, hours, lookback_days)
        if verdict.outcome == READ_HISTORY:
            history = hook.list_messages(conversation.id, after=now - lookback_days * DAY)
            verdict = follow_up(conversation, now, hours, lookback_days, history=history)
        if verdict.outcome == REPLY_WINDOW and with_template:
            verdict = FollowUp(conversation.id, DUE, "nudge due; the reply window has closed: the template")
        if log is not None:
            log.info("Conversation %s: %s (%s)", conversation.id, verdict.outcome, verdict.reason)
        if verdict.outcome in found:
            found[verdict.outcome].append(conversation.id)
    if log is not None:
        log.info(
            "%d of %d open conversation(s) are due a nudge; %d more are but their reply window has closed",
            len(found[DUE]),
            looked,
            len(found[REPLY_WINDOW]),
        )
    return {"due": found[DUE], "skipped_reply_window": found[REPLY_WINDOW]}


@task(multiple_outputs=True)
def find_due_conversations(params: dict[str, Any] | None = None, dag_run: Any = None) -> dict[str, list[int]]:
    """The open conversations due a nudge now, and those skipped for their reply window."""
    import logging

    from airflow_provider_doto.hooks.doto import DotoHook

    assert params is not None and dag_run is not None
    return find_follow_ups(
        DotoHook(),
        int(dag_run.run_after.timestamp()),
        hours=params["hours"],
        lookback_days=params["lookback_days"],
        conversation_ids=params["conversation_ids"],
        inbox_id=params["inbox_id"],
        labels=params["labels"],
        with_template=bool(params.get("template")),
        log=logging.getLogger("airflow.task"),
    )


@task
def due_conversations(found: dict[str, list[int]]) -> list[int]:
    """The due ids alone: Airflow maps a task only over another task's return value."""
    return found["due"]


def nudge_params(hours: float) -> dict[str, Param]:
    """The params both DAGs take; only the default silence differs."""
    return {
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Only these conversations."
        ),
        "inbox_id": Param(None, type=["null", "integer"], minimum=1, description="Only this inbox."),
        "labels": Param(
            [], type="array", items={"type": "string", "minLength": 1}, description="Only these labels (any)."
        ),
        "hours": Param(hours, type="number", exclusiveMinimum=0, description="Silence before a nudge."),
        "lookback_days": Param(7, type="integer", minimum=1, description="Older messages get no nudge."),
        "signature": Param("The support team", type="string", description="Sign-off."),
        "template": Param(
            {},
            type="object",
            description="An approved template (Chatwoot's template_params) for conversations past "
            "their reply window; empty: they are skipped and listed.",
        ),
    }


with DAG(
    dag_id="doto_follow_up",
    description="Daily follow-up in open conversations where the customer has not replied for N hours.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params=nudge_params(hours=24),
) as follow_up_dag:
    SendMessageOperator.partial(
        task_id="send_follow_up",
        content="templates/follow_up.md.j2",
        content_attributes={FOLLOW_UP_ATTRIBUTE: True},
        fallback_template="{{ params.template }}",  # renders {} (none) or the template's dict
    ).expand(conversation_id=due_conversations(find_due_conversations()))  # type: ignore[arg-type]


with DAG(
    dag_id="doto_backlog_nudge",
    description="Daily nudge, in one batch task, to every open conversation where the customer went quiet.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params=nudge_params(hours=48),
) as backlog_nudge:
    BatchSendMessagesOperator(
        task_id="nudge_backlog",
        conversation_ids=find_due_conversations.override(task_id="find_backlog")()["due"],  # type: ignore[index]
        content=(
            "Hi! Just checking in on conversation #{{ conversation_id }}: do you still need help? "
            "Reply here and we'll pick it up.\n\n{{ params.signature }}"
        ),
        content_attributes={NUDGE_ATTRIBUTE: True},
        fallback_template="{{ params.template }}",
        max_in_flight=10,
        tolerate_failures=0.02,
        retries=2,
        retry_delay=timedelta(minutes=1),
    )
