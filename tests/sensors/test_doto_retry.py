"""A sensor try that found its batch and then died: Airflow's own retry must find the same batch.

Real ``dag.test()`` runs of ``tests/dags/doto_test_sensor_retry.py`` in poke, reschedule and
deferrable mode: try 1 collects its batch over more than one poll (two messages first, the third
after the first poll, so the reschedule cursor is saved in between), then fails on purpose right
after finding it; ``retries=1`` makes Airflow run it again. The README promises that the retried
sensor starts again from the same start point and finds that batch again: nothing lost, nothing
extra, nothing repeated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from dagrun import Background, load_dags, polls, task_instances, xcom

from airflow_provider_doto.testing.stack.local_airflow import wait_until


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_retry_after_a_found_batch_returns_the_same_batch(
    airflow_db: Path, doto_emulator: Any, mode: str, tmp_path: Path
) -> None:
    emu = doto_emulator
    dag = load_dags("test_dags/doto_test_sensor_retry.py")[f"doto_test_sensor_retry_{mode}"]
    cid = emu.add_conversation()
    start = int(time.time()) - 30
    emu.add_message(cid, "before the run's start", created_at=start - 1)
    expected = [emu.add_message(cid, f"early {i}")["id"] for i in range(2)]
    emu.add_message(cid, "our reply", message_type="outgoing")

    def third_after_first_poll() -> None:
        wait_until(lambda: polls(emu, cid) >= 1, what="the sensor's first poll")
        expected.append(emu.add_message(cid, "the third")["id"])

    record = tmp_path / "tries.jsonl"
    with Background(third_after_first_poll):
        dr = dag.test(
            logical_date=pendulum.from_timestamp(start),
            run_conf={"cid": cid, "record": str(record)},
        )

    assert dr.state == "success"
    ti = task_instances(dr)[("wait", -1)]
    assert ti.state == "success" and ti.try_number == 2  # failed once, retried by Airflow
    tries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [t["try"] for t in tries] == [1, 2]
    assert sorted(tries[0]["ids"]) == sorted(expected)  # try 1 found the whole batch, then died
    assert tries[1]["ids"] == tries[0]["ids"]  # the retry found the same batch again
    assert [m["id"] for m in xcom(dr, "wait")] == tries[0]["ids"]
