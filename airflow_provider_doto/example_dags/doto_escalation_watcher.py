"""Escalate from any conversation: one watcher on the whole account, no conversation ids.

What it does
    The asset below carries an ``AssetWatcher`` whose
    :class:`~airflow_provider_doto.triggers.doto.NewMessageTrigger` has no ``conversation_id``: it
    watches every conversation the token sees, with one conversation list per idle poll whatever
    the account's size, and reads a conversation's messages only when that conversation changed.
    A customer message (incoming, public, sender ``Contact``) matching ``PATTERN`` in any
    conversation becomes an asset event, and each asset event queues one run of this DAG, which,
    for each matching message, in the conversation it came from:

    1. posts a **private note** for the team quoting the message;
    2. posts the **acknowledgement** to the customer.

Once per message, even when an event arrives twice
    Airflow never tells a trigger that its event was stored, so after a triggerer restart a batch
    may be announced again (``"redelivered": true``) and run this DAG a second time. Each note and
    acknowledgement is sent with a delivery key made from the message's id, and the send first
    looks among the conversation's messages since that message for one already carrying the key:
    a second run for the same message sends nothing.

Replay by hand
    A manual run with the config ``{"payload": <an event's payload>}`` handles that event again
    (still once per message: the delivery keys). The demo runs it that way.

Settings (environment, read at parse time; the trigger's kwargs must not change between parses)
    ``DOTO_ESCALATION_PATTERN`` (default ``(?i)refund|cancel|angry``),
    ``DOTO_ESCALATION_INBOX_ID`` (optional: watch one inbox only),
    ``DOTO_WATCH_POLL_INTERVAL`` seconds (default 30), ``DOTO_WATCH_CONN_ID`` (default ``doto_default``).
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_doto.triggers.doto import NewMessageTrigger, messages_from_event

PATTERN = os.environ.get("DOTO_ESCALATION_PATTERN", r"(?i)refund|cancel|angry")
INBOX_ID = os.environ.get("DOTO_ESCALATION_INBOX_ID")
POLL_INTERVAL = float(os.environ.get("DOTO_WATCH_POLL_INTERVAL", "30"))
DOTO_CONN_ID = os.environ.get("DOTO_WATCH_CONN_ID", "doto_default")
ACKNOWLEDGEMENT = (
    "Thanks for letting us know. A member of our team is looking into this now and will get back "
    "to you shortly."
)

escalations = Asset(
    name="doto_account_escalations",
    uri="doto://account/escalations",
    watchers=[
        AssetWatcher(
            name="doto_account_escalations",
            trigger=NewMessageTrigger(
                conversation_query={"inbox_id": int(INBOX_ID)} if INBOX_ID else None,
                doto_conn_id=DOTO_CONN_ID,
                poll_interval=POLL_INTERVAL,
                message_types=["incoming"],
                sender_types=["Contact"],
                content_pattern=PATTERN,
            ),
        )
    ],
)


def escalations_of(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each matching message of the triggering events once (an error event raises its error)."""
    unique = {(m["conversation_id"], m["id"]): m for p in payloads for m in messages_from_event(p)}
    return sorted(unique.values(), key=lambda m: (m["created_at"], m["id"]))


def note_for(message: dict[str, Any]) -> str:
    quoted = "\n> ".join((message.get("content") or "").splitlines() or [""])
    return f"**Escalation**: the customer wrote (message {message['id']}, pattern `{PATTERN}`):\n> {quoted}"


with DAG(
    dag_id="doto_escalation_watcher",
    schedule=[escalations],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # No max_active_runs: asset events arriving while a DAG is at its cap can wait (apache/airflow#56050).
    tags=["doto", "example", "event-driven"],
    doc_md=__doc__,
) as dag:

    @task
    def read_escalations(triggering_asset_events=None, dag_run=None) -> list[dict[str, Any]]:
        """The matching messages of every asset event that triggered this run (or of the event
        payload given as ``{"payload": ...}`` in a manual run's config: a replay by hand)."""
        events = triggering_asset_events[escalations] if triggering_asset_events else []
        payloads = [event.extra["payload"] for event in events]
        if not payloads and dag_run is not None and (dag_run.conf or {}).get("payload"):
            payloads = [dag_run.conf["payload"]]
        if not payloads:
            raise AirflowSkipException("Not triggered by a Doto asset event: nothing to escalate.")
        return escalations_of(payloads)

    @task
    def escalate(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A note and an acknowledgement per message, each at most once (keyed by the message id)."""
        from airflow_provider_doto.hooks.doto import DotoHook

        hook, sent = DotoHook(DOTO_CONN_ID), []
        for message in messages:
            cid, since = message["conversation_id"], message["created_at"]
            note, noted = hook.send_message_once(
                cid,
                note_for(message),
                key=f"escalation-note-{message['id']}",
                look_back_since=since,
                private=True,
            )
            ack, acked = hook.send_message_once(
                cid, ACKNOWLEDGEMENT, key=f"escalation-ack-{message['id']}", look_back_since=since
            )
            sent.append(
                {
                    "conversation_id": cid,
                    "message_id": message["id"],
                    "note_id": note.id,
                    "ack_id": ack.id,
                    "already_sent": noted and acked,
                }
            )
        return sent

    escalate(read_escalations())  # type: ignore[arg-type]  # an XComArg, resolved at run time
