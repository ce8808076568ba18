"""run_start: the point a sensor waits from and a retried send looks back to; delivery: the sending
operators' one rule for delivery keys and that look-back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pendulum

from airflow_provider_doto import api
from airflow_provider_doto._runs import delivery, run_start

DUE = pendulum.datetime(2026, 11, 29, 9, 0, tz="UTC")


def test_a_cleared_run_keeps_the_point_it_was_due():
    cleared = SimpleNamespace(run_after=DUE, start_date=DUE.add(hours=3))  # clear resets start_date
    assert run_start(cleared) == DUE.int_timestamp


def test_a_run_started_before_it_was_due_starts_then():
    early = SimpleNamespace(run_after=DUE, start_date=DUE.subtract(seconds=5))
    assert run_start(early) == DUE.int_timestamp - 5


def test_either_may_be_missing():
    assert run_start(SimpleNamespace(run_after=DUE, start_date=None)) == DUE.int_timestamp
    assert run_start(SimpleNamespace(run_after=None, start_date=DUE)) == DUE.int_timestamp


def _context(try_number: int, map_index: int | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=map_index, try_number=try_number)
    return {"ti": ti, "dag_run": SimpleNamespace(run_after=DUE, start_date=DUE.add(hours=3))}


def test_a_first_try_sends_without_looking_back():
    send = delivery(_context(1))
    assert send.look_back_since is None
    assert send.key(42) == api.delivery_key("d", "t", "r", -1, 42)  # no map index: -1


def test_a_retry_looks_back_to_the_run_start():
    send = delivery(_context(2, map_index=3))
    assert send.look_back_since == DUE.int_timestamp  # run_start: when it was due, kept across clears
    assert send.key(42) == api.delivery_key("d", "t", "r", 3, 42)
    assert send.key(42) != send.key(43)
