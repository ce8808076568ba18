"""What the provider reads from an Airflow DAG run (kept out of the pure API core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_doto import api


def run_start(dag_run: Any) -> int:
    """Unix seconds when the run was first due or started, whichever is earlier.

    Stable across task retries and clears: clearing a finished run resets its start date to the
    time of the clear, but not when it was due (``run_after``).
    """
    return min(api.to_timestamp(t) for t in (dag_run.start_date, dag_run.run_after) if t is not None)


@dataclass(frozen=True)
class Delivery:
    """How a task instance sends duplicate-safe: one key per conversation, and on a retried try
    the time to look back to for what an earlier try delivered (``None`` on the first try)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    look_back_since: int | None

    def key(self, conversation_id: int) -> str:
        """The delivery key of this task instance's message to ``conversation_id``."""
        return api.delivery_key(self.dag_id, self.task_id, self.run_id, self.map_index, conversation_id)


def delivery(context: Any) -> Delivery:
    """The delivery rule of a sending task, one for every operator that sends.

    The key names the task instance (a new DAG run has a new key, so two runs both post). A retry
    may follow a try whose message was delivered after all (a worker died, a POST timed out after
    Doto committed it), so a try after the first looks back to when the run started: stable across
    retries and clears, see :func:`run_start`.
    """
    ti = context["ti"]
    return Delivery(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        map_index=-1 if ti.map_index is None else ti.map_index,
        look_back_since=run_start(context["dag_run"]) if ti.try_number > 1 else None,
    )
