"""BatchSendMessagesOperator(attachments=...): real DAG runs (``dag.test()``) against the emulator over
HTTP on both server flavors. Every conversation's message carries the files, each upload streamed
from its source; a refused file fails the task before any POST; Airflow's retry after committed but
unanswered multipart POSTs finds those messages by their delivery keys and posts nothing twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
import requests
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

pytestmark = pytest.mark.integration

DAGS = "test_dags/doto_test_batch_send_attachments.py"
CSV = b"day,orders\n2026-12-05,42\n"
PDF = b"%PDF-1.4 invoice"
# (extension, size) of each stored message's files, in the order given.
FILES = [("csv", len(CSV)), ("pdf", len(PDF)), ("txt", len(b"see you"))]


# What the error says for each reason (api._uploads.check_uploads).
REFUSALS = {
    "type not allowed": "a type the server does not take",
    "too large": "over the server's limit of 1 MB a file",
}


def _posts(emu: Any, cid: int | None = None) -> list[Any]:
    return [
        r for r in emu.requests if r.method == "POST" and (cid is None or f"/conversations/{cid}/" in r.path)
    ]


def _files(tmp_path: Path, run_at: Any) -> None:
    (tmp_path / f"orders_{run_at.strftime('%Y-%m-%d')}.csv").write_bytes(CSV)
    (tmp_path / "invoice.pdf").write_bytes(PDF)


def _run(dag_id: str, cids: list[int], tmp_path: Path, **conf: Any) -> Any:
    run_at = pendulum.now("UTC").replace(microsecond=0)
    _files(tmp_path, run_at)
    dag = load_dag(DAGS, dag_id)
    return dag.test(logical_date=run_at, run_conf={"cids": cids, "dir": str(tmp_path), **conf})


def test_every_conversation_gets_a_message_with_the_files(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(4)]

    dr = _run("doto_test_batch_send_attachments", cids, tmp_path)

    assert dr.state == "success"
    assert task_instances(dr)[("send_files", -1)].try_number == 1
    out = xcom(dr, "send_files")
    assert (out["sent"], out["already_delivered"], out["failed"]) == (4, 0, 0)
    for cid, result in zip(cids, out["results"], strict=True):
        (stored,) = emu.messages(cid)
        assert stored["content"] == f"The files for #{cid}."
        assert [(a["extension"], a["file_size"]) for a in stored["attachments"]] == FILES
        key = api.delivery_key("doto_test_batch_send_attachments", "send_files", dr.run_id, -1, cid)
        assert stored["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] == key
        assert result["message_id"] == stored["id"]
        (post,) = _posts(emu, cid)  # one multipart create per conversation, each with every file
        assert post.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert post.body.count(b'name="attachments[]"') == 3
        assert CSV in post.body and PDF in post.body and b"see you" in post.body
    # The bytes stored are the sources' (the last conversation's too: each upload read its source anew).
    last = emu.messages(cids[-1])[0]["attachments"]
    assert requests.get(last[0]["data_url"], timeout=10).content == CSV
    assert requests.get(last[1]["data_url"], timeout=10).content == PDF


@pytest.mark.parametrize(
    ("refused", "data", "reason"),
    [
        ("run.exe", b"MZ", "type not allowed"),
        ("big.csv", b"x" * (1024 * 1024 + 1), "too large"),  # the connection's max_upload_mb is 1
    ],
)
def test_a_refused_file_fails_the_task_before_any_post(
    airflow_db: Path,
    doto_emulator: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    refused: str,
    data: bytes,
    reason: str,
) -> None:
    emu = doto_emulator
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_SMALL_UPLOADS", emu.connection_uri(max_upload_mb=1))
    cids = [emu.add_conversation() for _ in range(3)]
    (tmp_path / "report.csv").write_bytes(CSV)
    (tmp_path / refused).write_bytes(data)

    dr = _run("doto_test_batch_send_attachments_refused", cids, tmp_path, refused=refused)

    assert dr.state == "failed"
    ti = task_instances(dr)[("send_files", -1)]
    assert ti.state == "failed" and ti.try_number == 2  # both tries refused the file
    task_log = capsys.readouterr().out  # dag.test() prints the task logs
    assert f"DotoUploadError: attachment {refused!r}" in task_log
    assert REFUSALS[reason] in task_log
    assert _posts(emu) == []  # nothing sent to any conversation, on either try
    assert all(emu.messages(cid) == [] for cid in cids)


def test_a_retry_after_committed_multipart_posts_sends_nothing_twice(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    """Try 1's multipart POSTs to two conversations are committed, then their connections drop (the
    emulator's ``drop_after``): the batch fails, Airflow retries it, and try 2 finds all four
    attachment messages by their delivery keys (in the form's content_attributes), posting nothing."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(4)]
    for cid in cids[1:3]:
        emu.inject("drop_after", method="POST", path_contains=f"/conversations/{cid}/")

    dr = _run("doto_test_batch_send_attachments", cids, tmp_path)

    assert dr.state == "success"
    assert emu.faults == []  # both faults were spent on try 1
    assert task_instances(dr)[("send_files", -1)].try_number == 2
    out = xcom(dr, "send_files")
    assert (out["sent"], out["already_delivered"], out["failed"]) == (0, 4, 0)
    for cid, result in zip(cids, out["results"], strict=True):
        (stored,) = emu.messages(cid)  # one message each, with its files
        assert [(a["extension"], a["file_size"]) for a in stored["attachments"]] == FILES
        assert result["message_id"] == stored["id"]
        assert len(_posts(emu, cid)) == 1


def test_attachments_with_a_template_are_refused_when_the_dag_is_parsed() -> None:
    template = {
        "name": "follow_up",
        "category": "UTILITY",
        "language": "en_US",
        "processed_params": {"body": {"1": "Maria"}},
    }
    with pytest.raises(DotoConfigError, match="a template message cannot carry attachments"):
        BatchSendMessagesOperator(
            task_id="t", conversation_ids=[1], content="x", template=template, attachments=["/r.csv"]
        )
    with pytest.raises(DotoConfigError, match="a template message cannot carry attachments"):
        BatchSendMessagesOperator(
            task_id="f", conversation_ids=[1], content="x", fallback_template=template, attachments="/r.csv"
        )
    # Files alone, or a template alone, are fine; a pair is kept as templating leaves it.
    op = BatchSendMessagesOperator(
        task_id="ok", conversation_ids=[1], content="x", attachments=[("notes.txt", b"hi"), "/r.csv"]
    )
    assert [getattr(a, "filename", a) for a in op.attachments] == ["notes.txt", "/r.csv"]
    assert "attachments" in BatchSendMessagesOperator.template_fields
