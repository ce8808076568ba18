"""Escalate a conversation to the team when the customer writes something that needs a person.

What it does
    1. ``wait_for_message`` (:class:`NewMessageSensor`) waits for a new *incoming, public* message
       from the customer (sender type ``Contact``) whose text matches ``pattern`` (a regular
       expression). Messages from the team or bots, private notes, deleted messages and text that
       does not match are ignored, and so is anything older than the run. Deferrable by default: the wait happens in the triggerer.
    2. ``post_team_note`` posts a **private note** for the team quoting the matching message(s)
       (template ``templates/escalation_note.md.j2``, fed from the sensor's XCom).
    3. ``acknowledge_customer`` posts an **outgoing** message telling the customer we are on it.

    Every task has ``on_failure_callback=DotoNotifier(...)``: if a task fails, the team gets a
    private note in the same conversation. The sensor retries twice with a short delay: a deferred
    task can be failed by a scheduler/triggerer race (apache/airflow#66374) and a retry resumes the
    wait from the same start point, so nothing is lost or reported twice.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params (trigger with a config, e.g. ``airflow dags test doto_escalation -c '{"conversation_id": 42}'``)
    * ``conversation_id`` (int, required): the conversation to watch.
    * ``pattern`` (regex): what counts as an escalation; default ``(?i)refund|cancel|angry``.
    * ``acknowledgement``: the text the customer receives.
    * ``poke_interval`` (seconds, default 5): how often the sensor polls Doto.
    * ``deferrable`` (default true): wait in the triggerer; false polls from a worker slot.

Schedule
    None: trigger it per conversation (from the UI, the REST API, or another DAG).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.notifications.doto import DotoNotifier
from airflow_provider_doto.operators.doto import SendMessageOperator
from airflow_provider_doto.sensors.doto import NewMessageSensor

DEFAULT_PATTERN = r"(?i)refund|cancel|angry"
DEFAULT_ACKNOWLEDGEMENT = (
    "Thanks for letting us know. A member of our team is looking into this now and will get back "
    "to you shortly."
)


def sensor_settings_from_params(context: Any) -> None:
    """Let each run choose how the sensor waits (these sensor arguments are not templated)."""
    sensor = context["task"]
    params = context["params"]
    sensor.poke_interval = float(params["poke_interval"])
    sensor.deferrable = bool(params["deferrable"])


with DAG(
    dag_id="doto_escalation",
    description="Wait for a customer message matching a pattern; alert the team and acknowledge.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_id": Param(type="integer", minimum=1, description="Doto conversation to watch."),
        "pattern": Param(DEFAULT_PATTERN, type="string", minLength=1, description="Regular expression."),
        "acknowledgement": Param(DEFAULT_ACKNOWLEDGEMENT, type="string", description="Sent to the customer."),
        "poke_interval": Param(5, type="number", exclusiveMinimum=0, description="Seconds between polls."),
        "deferrable": Param(True, type="boolean", description="Wait in the triggerer."),
    },
    default_args={
        "on_failure_callback": DotoNotifier(
            conversation_id="{{ params.conversation_id }}",
            content="Airflow could not finish the escalation: task {{ ti.task_id }} of run {{ run_id }} "
            "failed. Please check this conversation by hand.",
        ),
    },
) as dag:
    wait_for_message = NewMessageSensor(
        task_id="wait_for_message",
        conversation_id="{{ params.conversation_id }}",
        content_pattern="{{ params.pattern }}",
        message_types=["incoming"],
        sender_types=["Contact"],  # the customer, not a bot posting into the conversation
        include_private=False,
        deferrable=True,
        poke_interval=5,
        timeout=timedelta(days=1).total_seconds(),
        retries=2,
        retry_delay=timedelta(seconds=5),
        pre_execute=sensor_settings_from_params,
    )

    post_team_note = SendMessageOperator(
        task_id="post_team_note",
        conversation_id="{{ params.conversation_id }}",
        content="templates/escalation_note.md.j2",
        private=True,
    )

    acknowledge_customer = SendMessageOperator(
        task_id="acknowledge_customer",
        conversation_id="{{ params.conversation_id }}",
        content="{{ params.acknowledgement }}",
    )

    wait_for_message >> post_team_note >> acknowledge_customer
