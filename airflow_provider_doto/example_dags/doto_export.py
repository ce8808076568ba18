"""Export yesterday's messages of a set of conversations as JSON Lines, for the data team.

What it does (every day at 00:00 UTC, for the day that just ended)
    1. ``plan_exports`` turns ``conversation_ids`` into one export per conversation, written to
       ``{output_dir}/{YYYY-MM-DD}/conversation_{id}.jsonl`` (the date is the exported day).
    2. ``export_messages`` (:class:`ListMessagesOperator`, mapped: one task per conversation) writes
       every message created in the run's data interval, ``data_interval_start <= created_at <
       data_interval_end``, one JSON object per line, oldest first (deleted messages left out).
       Its XCom value is ``{"path": ..., "count": ...}``.

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

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1 has it only in airflow.timetables
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_doto.operators.doto import ListMessagesOperator

with DAG(
    dag_id="doto_export",
    description="Yesterday's messages of some conversations as JSON Lines.",
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

    @task
    def plan_exports(params: dict[str, Any] | None = None, data_interval_start: Any = None) -> list[dict]:
        """One ``{conversation_id, output_path}`` per conversation, for the mapped export."""
        assert params is not None and data_interval_start is not None
        day = data_interval_start.strftime("%Y-%m-%d")
        base = params["output_dir"].rstrip("/")
        return [
            {"conversation_id": cid, "output_path": f"{base}/{day}/conversation_{cid}.jsonl"}
            for cid in params["conversation_ids"]
        ]

    ListMessagesOperator.partial(
        task_id="export_messages",
        # The operator's window is strict on both ends: "after start - 1 s" keeps a message stamped
        # exactly at midnight in the day it starts (and out of the day before).
        after="{{ data_interval_start.int_timestamp - 1 }}",
        before="{{ data_interval_end.int_timestamp }}",
    ).expand_kwargs(plan_exports())
