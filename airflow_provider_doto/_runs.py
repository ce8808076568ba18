"""What the provider reads from an Airflow DAG run (kept out of the pure API core)."""

from __future__ import annotations

from typing import Any

from airflow_provider_doto import api


def run_start(dag_run: Any) -> int:
    """Unix seconds when the run was first due or started, whichever is earlier.

    Stable across task retries and clears: clearing a finished run resets its start date to the
    time of the clear, but not when it was due (``run_after``).
    """
    return min(api.to_timestamp(t) for t in (dag_run.start_date, dag_run.run_after) if t is not None)
