"""run_start: the point a sensor waits from and a retried send looks back to."""

from __future__ import annotations

from types import SimpleNamespace

import pendulum

from airflow_provider_doto._runs import run_start

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
