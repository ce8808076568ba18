"""Send the data team's daily CSV report into a Doto conversation, as an attachment.

What it does (every day at 06:00 UTC, for the day that just ended)
    1. ``write_report``: stands in for the data team's own job. It writes the day's report,
       ``{report_dir}/orders_{YYYY-MM-DD}.csv`` (the date is the reported day), unless that file
       is already there (then the team's file is sent as it is). ``report_dir`` is a local
       directory or any URL Airflow's ``ObjectStoragePath`` supports (``file:///…``,
       ``s3://bucket/prefix`` with the matching provider and connection, …). XCom: the file's URL.
    2. ``send_report`` (:class:`SendMessageOperator` with ``attachments=``) posts a short message
       with the CSV attached to the ``conversation_id`` param's conversation, uploaded as Doto's
       web app uploads a file and streamed from storage a chunk at a time (a large report does not
       need the memory). The file is checked before anything is sent: a type the server does not
       take, or more than the connection's ``max_upload_mb`` (40 MB by default), fails the task
       with ``DotoUploadError`` naming the file. A retried task does not post the report twice.
       XCom: the created message, its ``attachments`` listed.

Connection
    ``doto_default`` (type ``doto``): Base URL, API Token, extra ``account_id``; optional extra
    ``max_upload_mb`` when the server's limit is not Chatwoot's default 40 MB.

Params
    * ``conversation_id`` (int, default 1): where the report goes (set it for your account).
    * ``report_dir``: where the reports are; default ``/tmp/doto_reports``.

Try it: ``airflow dags test doto_daily_report -c '{"conversation_id": 42}'``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1 has it only in airflow.timetables
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_doto.operators.doto import SendMessageOperator


@task
def write_report(params: dict[str, Any] | None = None, data_interval_start: Any = None) -> str:
    """The day's CSV (a stand-in for the data team's job): written unless already there; its URL."""
    assert params is not None and data_interval_start is not None
    day = data_interval_start.strftime("%Y-%m-%d")
    directory = params["report_dir"].rstrip("/")
    base = ObjectStoragePath(directory if "://" in directory else f"file://{directory}")
    path = base / f"orders_{day}.csv"
    if not path.exists():
        base.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["day", "region", "orders", "revenue"])
        for region, orders in (("north", 120), ("south", 87), ("west", 64)):
            writer.writerow([day, region, orders, f"{orders * 19.5:.2f}"])
        path.write_text(text.getvalue())
    return str(path)


with DAG(
    dag_id="doto_daily_report",
    description="The data team's daily CSV report, sent into a Doto conversation.",
    schedule=CronDataIntervalTimetable("0 6 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["doto", "example"],
    params={
        "conversation_id": Param(1, type="integer", minimum=1, description="Where the report goes."),
        "report_dir": Param(
            "/tmp/doto_reports", type="string", minLength=1, description="Where reports are."
        ),
    },
) as dag:
    SendMessageOperator(
        task_id="send_report",
        conversation_id="{{ params.conversation_id }}",
        content="Daily orders report for {{ data_interval_start | ds }} attached.",
        attachments=[write_report()],  # the file's URL, at run time (streamed from storage)
    )
