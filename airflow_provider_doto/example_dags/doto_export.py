"""Export yesterday's messages of a set of conversations as one JSON Lines file, for the data team.

What it does (every day at 00:00 UTC, for the day that just ended)
    ``export_messages`` (:class:`ExportMessagesOperator`, one task for every conversation) writes
    every message created in the run's data interval, ``data_interval_start <= created_at <
    data_interval_end``, to ``{output_dir}/{YYYY-MM-DD}/messages.jsonl.gz`` (the date is the
    exported day): gzip-compressed JSON Lines, one object per message with its
    ``conversation_id``, conversation by conversation, each oldest first (deleted messages left
    out). It streams page by page, so a long conversation does not need more memory, and the file
    appears only once complete. Its XCom value is ``{"path": ..., "count": ..., "conversations":
    {"<id>": <count>, ...}}``.

    The file is the ``doto_daily_export`` asset: a DAG with ``schedule=[DAILY_EXPORT]`` runs after
    each export, and finds the path and counts in the asset event's extra.

    The schedule is a ``CronDataIntervalTimetable``: with it the run at midnight covers the day
    before (Airflow 3's plain ``"@daily"`` gives runs an empty data interval). A manual run covers
    the last complete day.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``.

Params
    * ``conversation_ids`` (list of int): the conversations to export (default: none).
    * ``output_dir``: a local directory or any URL Airflow's ``ObjectStoragePath`` supports
      (``file:///…``, ``s3://bucket/prefix`` with the matching provider and connection, …);
      default ``/tmp/doto_export``.

Try it: ``airflow dags test doto_export -c '{"conversation_ids": [42], "output_dir": "/tmp/out"}'``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1 has it only in airflow.timetables
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_doto.operators.doto import ExportMessagesOperator

DAILY_EXPORT = Asset(name="doto_daily_export")

with DAG(
    dag_id="doto_export",
    description="Yesterday's messages of some conversations as one JSON Lines file.",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_ids": Param(
            [], type="array", items={"type": "integer", "minimum": 1}, description="Conversations."
        ),
        "output_dir": Param("/tmp/doto_export", type="string", minLength=1, description="Where to write."),
    },
) as dag:
    ExportMessagesOperator(
        task_id="export_messages",
        conversation_ids="{{ params.conversation_ids }}",
        output_path="{{ params.output_dir.rstrip('/') }}/{{ data_interval_start | ds }}/messages.jsonl.gz",
        # The operator's window is strict on both ends: "after start - 1 s" keeps a message stamped
        # exactly at midnight in the day it starts (and out of the day before).
        after="{{ data_interval_start.int_timestamp - 1 }}",
        before="{{ data_interval_end.int_timestamp }}",
        outlets=[DAILY_EXPORT],
    )
