"""Export yesterday's messages of the whole account as one JSON Lines file, for the data team.

What it does (every day at 00:00 UTC, for the day that just ended)
    1. ``select_conversations``: every conversation of any status (open, resolved, pending,
       snoozed) updated since the run's ``data_interval_start``, from the account's conversation
       list (``active_since``: one request where the server honours ``updated_within``), or the
       ``conversation_ids`` given. Chatwoot moves a conversation's ``updated_at`` forward whenever
       a message of it is committed, so this finds a message committed late too, whose
       conversation's ``last_activity_at`` has moved back to the message's older ``created_at``.
       XCom: the ids.
    2. ``export_messages`` (:class:`ExportMessagesOperator`) writes every message of those
       conversations created in the run's data interval, ``data_interval_start <= created_at <
       data_interval_end`` (incoming, outgoing, private notes, activity messages, and deleted ones
       as the server shows them, flagged ``content_attributes.deleted``), to
       ``{output_dir}/{YYYY-MM-DD}/messages.jsonl.gz`` (the date is the exported day):
       gzip-compressed JSON Lines, one object per message with its ``conversation_id``,
       conversation by conversation, each oldest first. It streams page by page, so a long
       conversation does not need more memory, and the file appears only once complete. Its XCom
       value is ``{"path": ..., "count": ..., "conversations": {"<id>": <count>, ...}}``.

    The file is the ``doto_daily_export`` asset: a DAG with ``schedule=[DAILY_EXPORT]`` runs after
    each export, and finds the path and counts in the asset event's extra.

    The schedule is a ``CronDataIntervalTimetable``: with it the run at midnight covers the day
    before (Airflow 3's plain ``"@daily"`` gives runs an empty data interval). A manual run covers
    the last complete day. A message committed after the run is not in its file.

    On a server older than ``updated_within`` (before February 2024) the list is paged by
    ``last_activity_at`` instead, and a conversation whose activity moved back before the interval
    (a late commit of an older message) is missed there.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params
    * ``conversation_ids`` (list of int, default none: the whole account): only these conversations.
    * ``output_dir``: a local directory or any URL Airflow's ``ObjectStoragePath`` supports
      (``file:///…``, ``s3://bucket/prefix`` with the matching provider and connection, …);
      default ``/tmp/doto_export``.

Try it: ``airflow dags test doto_export -c '{"output_dir": "/tmp/out"}'``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1 has it only in airflow.timetables
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_doto.operators.doto import ExportMessagesOperator

DAILY_EXPORT = Asset(name="doto_daily_export")


@task
def select_conversations(params: dict[str, Any] | None = None, data_interval_start: Any = None) -> list[int]:
    """The conversations given, else every one (any status) updated since the interval began."""
    from airflow_provider_doto.hooks.doto import DotoHook

    assert params is not None and data_interval_start is not None
    if params["conversation_ids"]:
        return list(dict.fromkeys(params["conversation_ids"]))
    # A second early: a message created at the interval's first second, committed within it.
    return DotoHook().conversation_ids(status="all", active_since=data_interval_start.int_timestamp - 1)


with DAG(
    dag_id="doto_export",
    description="Yesterday's messages of every conversation as one JSON Lines file.",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Only these conversations."
        ),
        "output_dir": Param("/tmp/doto_export", type="string", minLength=1, description="Where to write."),
    },
) as dag:
    ExportMessagesOperator(
        task_id="export_messages",
        conversation_ids=select_conversations(),  # type: ignore[arg-type]  # its ids, at run time
        output_path="{{ params.output_dir.rstrip('/') }}/{{ data_interval_start | ds }}/messages.jsonl.gz",
        # The operator's window is strict on both ends: "after start - 1 s" keeps a message stamped
        # exactly at midnight in the day it starts (and out of the day before).
        after="{{ data_interval_start.int_timestamp - 1 }}",
        before="{{ data_interval_end.int_timestamp }}",
        include_deleted=True,
        outlets=[DAILY_EXPORT],
    )
