"""BatchSendMessagesOperator: checks at construction, then real DAG runs (``dag.test()``) against the
emulator over HTTP on both server flavors: every conversation gets its message once, partial
failures are named (or tolerated), results go to XCom or a JSON Lines file, and Airflow's own retry
after committed-but-unanswered POSTs sends nothing twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto import api
from airflow_provider_doto.api import _batch as api_batch
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

pytestmark = pytest.mark.integration

DAGS = "test_dags/doto_test_batch_send.py"
MISSING = (987_001, 987_002)


def _posts(emu: Any, cid: int | None = None) -> list[Any]:
    return [
        r for r in emu.requests if r.method == "POST" and (cid is None or f"/conversations/{cid}/" in r.path)
    ]


def _nudge(cid: int, total: int) -> str:
    return f"Hi! Still need help with #{cid}? (one of {total})"


# ---- construction-time validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "either messages or conversation_ids"),
        ({"messages": [], "conversation_ids": [1], "content": "x"}, "either messages or conversation_ids"),
        ({"conversation_ids": [1, 2]}, "conversation_ids needs content"),
        ({"messages": [], "content": "x"}, "content goes inside each"),
        ({"conversation_ids": [1, 0], "content": "hi"}, r"conversation_ids\[1\]: conversation_id must be"),
        ({"conversation_ids": [1, 1], "content": "hi"}, r"conversation 1 is already conversation_ids\[0\]"),
        ({"conversation_ids": [1], "content": " "}, "content must be a non-empty string"),
        ({"messages": [{"conversation_id": 1, "text": "hi"}]}, r"messages\[0\] has unknown key\(s\) 'text'"),
        ({"messages": [{"conversation_id": 1, "content": ""}]}, r"messages\[0\]: content must be"),
        ({"messages": "not a list"}, "messages must be a list"),
        ({"conversation_ids": [1], "content": "x", "message_type": "activity"}, "message_type must be"),
        ({"conversation_ids": [1], "content": "x", "private": "no"}, "private must be True or False"),
        ({"conversation_ids": [1], "content": "x", "max_in_flight": 0}, "max_in_flight must be a positive"),
        ({"conversation_ids": [1], "content": "x", "max_in_flight": 2.5}, "max_in_flight must be a positive"),
        (
            {"conversation_ids": [1], "content": "x", "tolerate_failures": 2},
            "tolerate_failures must be a share",
        ),
        ({"conversation_ids": [1], "content": "x", "tolerate_failures": "0.1"}, "tolerate_failures must be"),
        ({"conversation_ids": [1], "content": "x", "results_path": 5}, "results_path must be a path"),
        (
            {"conversation_ids": [1], "content": "x", "content_attributes": ["a"]},
            "content_attributes must be a dict",
        ),
    ],
)
def test_static_mistakes_fail_at_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        BatchSendMessagesOperator(task_id="nudge", **kwargs)


def test_templates_and_xcom_args_are_checked_after_rendering() -> None:
    BatchSendMessagesOperator(
        task_id="a", conversation_ids="{{ params.cids }}", content="Hi #{{ conversation_id }}"
    )
    BatchSendMessagesOperator(
        task_id="b", conversation_ids=[1, "{{ params.cid }}"], content="templates/x.md.j2"
    )
    BatchSendMessagesOperator(
        task_id="c", messages=[{"conversation_id": "{{ params.cid }}", "content": "hi"}]
    )
    BatchSendMessagesOperator(
        task_id="d", messages="{{ ti.xcom_pull('plan') }}", results_path="/tmp/{{ ds }}.jsonl"
    )
    assert BatchSendMessagesOperator(task_id="e", conversation_ids=[], content="hi").conversation_ids == []


# ---- real DAG runs -------------------------------------------------------------------------------


def test_every_conversation_gets_its_message_once(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(8)]
    dag = load_dag(DAGS, "doto_test_batch_send")

    dr = dag.test(run_conf={"cids": cids})

    assert dr.state == "success"
    ti = task_instances(dr)[("nudge", -1)]
    assert ti.state == "success" and ti.try_number == 1
    out = xcom(dr, "nudge")
    assert {k: out[k] for k in ("total", "sent", "already_delivered", "failed")} == {
        "total": 8,
        "sent": 8,
        "already_delivered": 0,
        "failed": 0,
    }
    assert [r["conversation_id"] for r in out["results"]] == cids
    for cid, result in zip(cids, out["results"], strict=True):
        (stored,) = emu.messages(cid)
        assert stored["content"] == _nudge(cid, len(cids))  # rendered per conversation
        assert stored["message_type"] == "outgoing" and stored["private"] is False
        key = api.delivery_key("doto_test_batch_send", "nudge", dr.run_id, -1, cid)
        assert stored["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] == key  # SendMessageOperator's key
        assert result == {
            "conversation_id": cid,
            "status": "sent",
            "message_id": stored["id"],
            "message_status": "sent",  # as created: no wait_for
            "error": None,
        }
    assert len(_posts(emu)) == len(cids)


def test_messages_from_an_upstream_task(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(3)]
    dag = load_dag(DAGS, "doto_test_batch_send_messages")

    dr = dag.test(run_conf={"cids": cids})

    assert dr.state == "success"
    assert xcom(dr, "nudge")["sent"] == 3
    for cid in cids:
        (stored,) = emu.messages(cid)
        assert stored["content"] == f"Order {cid} has shipped." and stored["private"] is True


def test_content_from_a_template_file_rendered_per_conversation(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(3)]
    dag = load_dag(DAGS, "doto_test_batch_send_template")

    dr = dag.test(run_conf={"cids": cids, "order": "B-7"})

    assert dr.state == "success"
    for cid in cids:
        (stored,) = emu.messages(cid)
        assert stored["content"] == (
            f"Hello again, conversation {cid}: your order B-7 is on its way.\n(run {dr.run_id})"
        )


def test_missing_conversations_fail_the_task_naming_them(
    airflow_db: Path, doto_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(4)]
    asked = [cids[0], MISSING[0], *cids[1:3], MISSING[1], cids[3]]
    dag = load_dag(DAGS, "doto_test_batch_send")

    dr = dag.test(run_conf={"cids": asked})

    assert dr.state == "failed"
    ti = task_instances(dr)[("nudge", -1)]
    assert ti.state == "failed" and ti.try_number == 2  # retried once, as the DAG asks
    task_log = capsys.readouterr().out  # dag.test() prints the task logs
    assert (
        f"DotoBatchError: 2 of 6 Doto message(s) failed: conversation {MISSING[0]}: DotoNotFoundError"
        in task_log
    )
    assert f"conversation {MISSING[1]}: DotoNotFoundError" in task_log
    assert emu.token not in task_log
    out = xcom(dr, "nudge")  # the last try's results, pushed before it failed
    assert (out["already_delivered"], out["failed"], out["sent"]) == (4, 2, 0)
    failed = [r["conversation_id"] for r in out["results"] if r["status"] == "failed"]
    assert failed == list(MISSING)
    for cid in cids:  # the retry found every delivered message: none twice
        assert len(emu.messages(cid)) == 1 and len(_posts(emu, cid)) == 1


def test_tolerated_failures_pass_and_results_go_to_a_file(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(3)]
    asked = [cids[0], MISSING[0], cids[1], cids[2]]
    path = tmp_path / "results" / "nudges.jsonl"
    dag = load_dag(DAGS, "doto_test_batch_send_tolerant")  # tolerates half of them failing

    dr = dag.test(run_conf={"cids": asked, "results_path": str(path)})

    assert dr.state == "success"
    assert task_instances(dr)[("nudge", -1)].try_number == 1
    assert xcom(dr, "nudge") == {
        "total": 4,
        "sent": 3,
        "already_delivered": 0,
        "failed": 1,
        "path": str(path),
    }
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["conversation_id"], r["status"]) for r in rows] == [
        (cids[0], "sent"),
        (MISSING[0], "failed"),
        (cids[1], "sent"),
        (cids[2], "sent"),
    ]
    # The reply-window check reads the conversation first: the missing one fails there, nothing posted.
    assert rows[1]["error"].startswith("DotoNotFoundError: Doto GET ") and rows[1]["message_id"] is None
    assert [rows[i]["message_id"] for i in (0, 2, 3)] == [emu.messages(c)[0]["id"] for c in cids]


def test_a_bug_in_the_batch_fails_the_task_whatever_it_tolerates(
    airflow_db: Path,
    doto_emulator: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An exception that is not a Doto error is a bug, not a failed message: tolerate_failures=1.0
    does not let the task pass, the traceback reaches the task log, and the other conversations'
    results are still written and the counts pushed."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(4)]
    real_batch_result = api_batch.batch_result

    def buggy_batch_result(item: api.BatchItem, message: Any, already_delivered: bool) -> api.BatchResult:
        if item.conversation_id == cids[1]:
            raise RuntimeError(f"bug in the batch at conversation {item.conversation_id}")
        return real_batch_result(item, message, already_delivered)

    monkeypatch.setattr(api_batch, "batch_result", buggy_batch_result)
    dag = load_dag(DAGS, "doto_test_batch_send_tolerate_all")  # tolerates every message failing

    path = tmp_path / "nudges.jsonl"
    dr = dag.test(run_conf={"cids": cids, "results_path": str(path)})

    assert dr.state == "failed"
    ti = task_instances(dr)[("nudge", -1)]
    assert ti.state == "failed" and ti.try_number == 1
    task_log = capsys.readouterr().out  # dag.test() prints the task logs
    assert f"RuntimeError: bug in the batch at conversation {cids[1]}" in task_log
    assert "Traceback" in task_log and "in buggy_batch_result" in task_log
    assert f"to conversation {cids[1]}: an unexpected error, not a Doto error" in task_log
    out = xcom(dr, "nudge")  # pushed before the task failed
    assert out == {"total": 4, "sent": 3, "already_delivered": 0, "failed": 1, "path": str(path)}
    rows = [json.loads(line) for line in path.read_text().splitlines()]  # written before it failed
    assert [r["status"] for r in rows] == ["sent", "failed", "sent", "sent"]
    assert rows[1]["error"] == "RuntimeError"
    for cid in cids:  # the others were sent all the same (the bug struck after cids[1]'s POST)
        assert len(emu.messages(cid)) == 1


def test_retry_after_committed_but_unanswered_posts_sends_nothing_twice(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """Try 1 dies mid-batch in the ambiguous way: some POSTs were committed but their answers never
    came (the emulator commits, then drops the connection). Airflow retries the task: try 2 finds
    those and the ones try 1 saw delivered, and posts nothing."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(6)]
    for cid in cids[2:4]:
        emu.inject("drop_after", method="POST", path_contains=f"/conversations/{cid}/")
    dag = load_dag(DAGS, "doto_test_batch_send")

    dr = dag.test(run_conf={"cids": cids})

    assert dr.state == "success"
    assert emu.faults == []
    assert task_instances(dr)[("nudge", -1)].try_number == 2
    out = xcom(dr, "nudge")
    assert (out["sent"], out["already_delivered"], out["failed"]) == (0, 6, 0)
    for cid, result in zip(cids, out["results"], strict=True):
        (stored,) = emu.messages(cid)
        assert result["message_id"] == stored["id"]
        assert len(_posts(emu, cid)) == 1


def test_retry_sends_what_an_interrupted_try_did_not(airflow_db: Path, doto_emulator: Any) -> None:
    """Try 1 sends some messages and fails to reach the rest (a refused connection would look the
    same): try 2 sends exactly those."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(5)]
    # 500s are never re-sent within a try: these conversations get nothing from try 1.
    for cid in cids[::2]:
        emu.inject("status", status=500, method="POST", path_contains=f"/conversations/{cid}/")
    dag = load_dag(DAGS, "doto_test_batch_send")

    dr = dag.test(run_conf={"cids": cids})

    assert dr.state == "success" and task_instances(dr)[("nudge", -1)].try_number == 2
    out = xcom(dr, "nudge")
    assert [r["status"] for r in out["results"]] == ["sent", "already_delivered"] * 2 + ["sent"]
    assert all(len(emu.messages(cid)) == 1 for cid in cids)


def test_an_empty_batch_succeeds_without_a_request(airflow_db: Path, doto_emulator: Any) -> None:
    dag = load_dag(DAGS, "doto_test_batch_send")
    dr = dag.test(run_conf={"cids": []})
    assert dr.state == "success"
    assert xcom(dr, "nudge") == {"total": 0, "sent": 0, "already_delivered": 0, "failed": 0, "results": []}
    assert doto_emulator.requests == []


def test_closed_reply_windows_fail_their_conversations_and_count_against_the_tolerance(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    whatsapp = emu.add_inbox("whatsapp")
    closed = emu.add_conversation(inbox_id=whatsapp)  # the customer never wrote: no window
    opened = emu.add_conversation(inbox_id=whatsapp)
    emu.add_message(opened, "Is my refund through?")
    api_inbox = emu.add_conversation()  # no window at all
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_batch_send_window")

    dr = dag.test(run_conf={"cids": [closed, opened, api_inbox]})

    assert dr.state == "success"  # 1 of 3 failed, half tolerated
    output = xcom(dr, "nudge")
    assert {k: output[k] for k in ("total", "sent", "failed")} == {"total": 3, "sent": 2, "failed": 1}
    failed = output["results"][0]
    assert (failed["conversation_id"], failed["status"], failed["message_id"]) == (closed, "failed", None)
    assert failed["error"].startswith("DotoReplyWindowError: ") and "Channel::Whatsapp" in failed["error"]
    assert emu.messages(closed) == []
    posted = {int(r.path.split("/")[-2]) for r in emu.requests if r.method == "POST"}
    assert posted == {opened, api_inbox}

    dr = dag.test(run_conf={"cids": [closed]})  # 1 of 1: more than half
    assert dr.state == "failed"
    assert xcom(dr, "nudge")["failed"] == 1 and emu.messages(closed) == []


# ---- delivery status: wait_for ------------------------------------------------------------------

WHY = "Template not found or invalid template name"


def test_wait_for_fails_the_conversations_the_channel_failed_and_reports_each_final_status(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    emu.window_failure_delay = 0
    emu.delivery_receipts = (0, 0)
    whatsapp = emu.add_inbox("whatsapp")
    closed, *opened = (emu.add_conversation(inbox_id=whatsapp) for _ in range(3))
    for cid in opened:
        emu.add_message(cid, "Where is my order?")
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_batch_send_wait")

    dr = dag.test(run_conf={"cids": [closed, *opened]})

    assert dr.state == "success"  # 1 of 3 failed: tolerated
    assert task_instances(dr)[("nudge", -1)].try_number == 1
    output = xcom(dr, "nudge")
    assert {k: output[k] for k in ("total", "sent", "failed")} == {"total": 3, "sent": 2, "failed": 1}
    failed, *delivered = output["results"]
    (stored,) = emu.messages(closed)
    assert (failed["status"], failed["message_id"], failed["message_status"]) == (
        "failed",
        stored["id"],
        "failed",
    )
    assert failed["error"].startswith("DotoDeliveryError: ") and WHY in failed["error"]
    assert [(r["status"], r["message_status"]) for r in delivered] == [("sent", "read")] * 2
    assert len(_posts(emu)) == 3


def test_a_retry_sends_again_only_what_the_channel_failed(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    emu.window_failure_delay = 0
    emu.delivery_receipts = (0, 0)
    whatsapp = emu.add_inbox("whatsapp")
    closed = [emu.add_conversation(inbox_id=whatsapp) for _ in range(2)]
    opened = emu.add_conversation(inbox_id=whatsapp)
    emu.add_message(opened, "Where is my order?")
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_batch_send_wait")

    dr = dag.test(run_conf={"cids": [*closed, opened]})

    assert dr.state == "failed"  # 2 of 3 failed, on both tries
    assert task_instances(dr)[("nudge", -1)].try_number == 2
    output = xcom(dr, "nudge")  # the last try's results
    assert [(r["status"], r["message_status"]) for r in output["results"]] == [
        ("failed", "failed"),
        ("failed", "failed"),
        ("already_delivered", "read"),
    ]
    for cid in closed:  # each try sent one, the channel failed both
        assert [m["status"] for m in emu.messages(cid)] == ["failed", "failed"]
        assert len(_posts(emu, cid)) == 2
    assert len(_posts(emu, opened)) == 1  # delivered by the first try: never sent again


def test_bad_wait_for_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(DotoConfigError, match="wait_for must be None or one of sent, delivered, read"):
        BatchSendMessagesOperator(task_id="b", conversation_ids=[1], content="x", wait_for="recieved")
    with pytest.raises(DotoConfigError, match="delivery_timeout"):
        BatchSendMessagesOperator(
            task_id="b", conversation_ids=[1], content="x", wait_for="read", delivery_timeout=float("nan")
        )
