"""No duplicates: the server commits a POST and the answer is lost; Airflow retries the task.

Every trial is a whole DAG run (``dag.test()``) of ``dags/reliability_send_retry.py``, whose send
task has ``retries=1, retry_delay=0``: the first try fails on an injected fault, Airflow's own task
retry runs the operator again, and its duplicate-safety path (delivery key in
``content_attributes``, looked up before re-sending) must leave exactly one message. Most trials
commit the POST and drop the connection; the others fail *before* committing (drop before commit,
500, 503), where the retry must send, so a message is neither doubled nor lost.

Fast suite: 20 trials. ``--soak``: 1,000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.api import DELIVERY_KEY_ATTRIBUTE
from airflow_provider_doto.testing.emulator import DotoEmulator

from .reliability_support import FIGURES, load_dag

FAST_TRIALS = 20
SOAK_TRIALS = 1_000
# Three in four trials: committed, then the connection dropped. The rest: nothing committed.
FAULT_CYCLE: list[dict[str, Any]] = [
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "drop_before"},
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "status", "status": 503},
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "drop_after"},
    {"kind": "status", "status": 500},
]


@pytest.fixture(scope="module")
def send_dag(reliability_dags: Path) -> Any:
    return load_dag(reliability_dags, "reliability_send_retry")


@pytest.mark.integration
@pytest.mark.soak
def test_retried_send_task_delivers_exactly_once(
    send_dag: Any, emu: DotoEmulator, faults: Any, soak: bool
) -> None:
    trials = SOAK_TRIALS if soak else FAST_TRIALS
    duplicates = missing = committed_first = 0
    problems: list[str] = []
    for n in range(trials):
        fault = FAULT_CYCLE[n % len(FAULT_CYCLE)]
        cid = emu.add_conversation()
        faults.inject(method="POST", times=1, **fault)
        run = send_dag.test(run_conf={"cid": cid, "n": n})
        stored = [m for m in emu.messages(cid) if m["content"] == f"order {n} shipped"]
        tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
        duplicates += max(0, len(stored) - 1)
        missing += len(stored) == 0
        committed_first += fault["kind"] == "drop_after"
        if run.state != "success" or tries.get("send") != 2 or len(stored) != 1:
            problems.append(f"trial {n} ({fault}): run {run.state}, tries {tries}, {len(stored)} message(s)")
        elif DELIVERY_KEY_ATTRIBUTE not in stored[0]["content_attributes"]:
            problems.append(f"trial {n}: the stored message carries no delivery key")
        # One POST per try that posted: a commit is found by the retry, never re-posted.
        posts = [r for r in emu.requests if r.method == "POST" and f"/conversations/{cid}/" in r.path]
        if len(posts) != (1 if fault["kind"] == "drop_after" else 2):
            problems.append(f"trial {n} ({fault}): {len(posts)} POST(s) reached the server")
    FIGURES.add(
        "no_duplicates",
        emu.flavor,
        trials=trials,
        dag_runs=trials,
        committed_then_dropped=committed_first,
        duplicates=duplicates,
        missing=missing,
    )
    assert not problems, "\n".join(problems[:20])
    assert duplicates == 0 and missing == 0
