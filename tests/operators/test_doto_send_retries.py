"""Mapped sends retried by Airflow, and a send task cleared and re-run in the same DAG run.

Real DAG runs against the emulator: the server commits each first POST and then drops the
connection (the emulator's ``drop_after`` fault), Airflow retries, and every conversation must
hold exactly one message. A cleared task is a retry too (README, "Duplicate-safe retries").
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from dagrun import clear_and_rerun, load_dag, task_instances, xcom

from airflow_provider_doto import api


def _posts(emu: Any, cid: int) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST" and f"/conversations/{cid}/" in r.path]


@pytest.mark.integration
def test_mapped_send_retried_after_commit_posts_each_message_once(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(3)]
    # Every map index's first POST is committed, then the connection drops: each try 1 fails.
    emu.inject("drop_after", method="POST", times=len(cids))
    dag = load_dag("test_dags/doto_test_send_mapped.py")

    dr = dag.test(run_conf={"cids": cids})

    assert dr.state == "success"
    tis = task_instances(dr)
    assert emu.faults == []  # every injected fault was spent on a first try
    keys = set()
    for index, cid in enumerate(cids):
        assert tis[("send", index)].state == "success" and tis[("send", index)].try_number == 2
        messages = emu.messages(cid)
        assert [m["content"] for m in messages] == [f"Your order {index} has shipped."]
        assert len(_posts(emu, cid)) == 1  # the retry found the committed message, posted nothing
        sent = xcom(dr, "send", map_index=index)
        assert sent["id"] == messages[0]["id"] and sent["content"] == messages[0]["content"]
        keys.add(messages[0]["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE])
    assert len(keys) == len(cids)  # one delivery key per map index


@pytest.mark.integration
def test_cleared_send_task_reruns_in_the_same_run_and_does_not_post_twice(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    dag = load_dag("test_dags/doto_test_send.py")
    logical_date = pendulum.now("UTC").subtract(minutes=1).replace(microsecond=0)
    first = dag.test(logical_date=logical_date, run_conf={"conversation_id": cid, "text": "Refund sent."})
    assert first.state == "success"
    assert task_instances(first)[("send", -1)].try_number == 1
    message = xcom(first, "send")
    assert [m["id"] for m in emu.messages(cid)] == [message["id"]]

    rerun = clear_and_rerun(dag, first, ["send"])

    assert rerun.run_id == first.run_id and rerun.state == "success"
    ti = task_instances(rerun)[("send", -1)]
    assert ti.state == "success" and ti.try_number == 2  # the same run, a new try
    assert [m["id"] for m in emu.messages(cid)] == [message["id"]]  # not posted twice
    assert len(_posts(emu, cid)) == 1
    assert xcom(rerun, "send")["id"] == message["id"]  # the re-run returns the earlier delivery


@pytest.mark.integration
def test_cleared_send_task_long_after_the_run_still_finds_its_delivery(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """A clear restarts the run (Airflow resets its start date): the lookup must still reach back to
    the first delivery, however late the clear comes."""
    emu = doto_emulator
    cid = emu.add_conversation()
    dag = load_dag("test_dags/doto_test_send.py")
    # Triggered two hours ago, delivered five minutes into the run; cleared now.
    logical_date = pendulum.now("UTC").subtract(hours=2).replace(microsecond=0)
    emu.clock.freeze(int(logical_date.add(minutes=5).timestamp()))
    first = dag.test(
        logical_date=logical_date,
        run_after=logical_date,
        run_conf={"conversation_id": cid, "text": "Refund sent."},
    )
    assert first.state == "success"
    emu.clock.freeze(int(pendulum.now("UTC").timestamp()))

    rerun = clear_and_rerun(dag, first, ["send"])

    assert rerun.state == "success"
    assert task_instances(rerun)[("send", -1)].try_number == 2
    assert len(emu.messages(cid)) == 1 and len(_posts(emu, cid)) == 1
    assert timedelta(seconds=emu.messages(cid)[0]["created_at"] - logical_date.int_timestamp) == timedelta(
        minutes=5
    )


@pytest.mark.integration
def test_an_attachment_send_retried_after_commit_posts_once(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    """The first try's multipart POST is committed, then the connection drops; Airflow's retry
    finds the message by its delivery key (in the form's content_attributes) and posts nothing."""
    emu = doto_emulator
    cid = emu.add_conversation()
    run_at = pendulum.now("UTC").replace(microsecond=0)
    (tmp_path / f"orders_{run_at.strftime('%Y-%m-%d')}.csv").write_bytes(b"day,orders\n1,2\n")
    (tmp_path / "invoice.pdf").write_bytes(b"%PDF-1.4")
    emu.inject("drop_after", method="POST")
    dag = load_dag("test_dags/doto_test_send_attachment.py")

    dr = dag.test(logical_date=run_at, run_conf={"conversation_id": cid, "dir": str(tmp_path)})

    assert dr.state == "success"
    assert emu.faults == []  # the fault was spent on the first try
    assert task_instances(dr)[("send", -1)].try_number == 2
    (stored,) = emu.messages(cid)
    assert [(a["extension"], a["file_size"]) for a in stored["attachments"]] == [("csv", 15), ("pdf", 8)]
    assert len(_posts(emu, cid)) == 1  # the retry found the committed message, posted nothing
    assert xcom(dr, "send")["id"] == stored["id"]
