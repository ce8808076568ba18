"""Operators given a conversation query: ListConversationsOperator (to XCom or a JSON Lines file),
and ExportMessagesOperator / BatchSendMessagesOperator with ``conversation_query`` instead of ids.

Checks at construction, then real DAG runs (``dag.test()``) from ``tests/dags`` against the emulator
over HTTP on both server flavors. What a query should list is read from the emulator's own data.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto import api
from airflow_provider_doto.api import _conversations
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators import conversations
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.conversations import ListConversationsOperator
from airflow_provider_doto.operators.doto import ExportMessagesOperator

pytestmark = pytest.mark.integration

DAGS = "test_dags/doto_test_conversations.py"
DAY = 24 * 3600


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _as_listed(emu: Any, cid: int) -> dict[str, Any]:
    return api.Conversation.from_dict(emu.conversation(cid)).to_dict()


def _list_requests(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]


def _posts(emu: Any, cid: int | None = None) -> list[Any]:
    return [
        r for r in emu.requests if r.method == "POST" and (cid is None or f"/conversations/{cid}/" in r.path)
    ]


def _seed_by_activity(emu: Any) -> tuple[list[int], int, dt.datetime]:
    """Three conversations active today (open, resolved, pending), two messages each, and one open
    conversation last active (and updated) three days ago; and a time between them."""
    now = emu.clock.now()
    emu.clock.freeze(now - 3 * DAY)
    old = emu.add_conversation(created_at=now - 3 * DAY - 60)
    emu.add_message(old, "old question", message_type="incoming")
    emu.clock.unfreeze()
    emu.clock.set(now)  # back to the present: unfreezing resumes from the frozen time
    recent = []
    for status in ("open", "resolved", "pending"):
        cid = emu.add_conversation(created_at=now - 600)
        emu.add_message(cid, f"{status} question", message_type="incoming", created_at=now - 500)
        emu.add_message(cid, f"{status} answer", created_at=now - 400)
        emu.update_conversation(cid, status=status)
        recent.append(cid)
    return recent, old, dt.datetime.fromtimestamp(now - DAY, dt.UTC)


# ---- construction-time validation -----------------------------------------------------------


def test_the_operator_names_the_query_fields() -> None:
    assert conversations.QUERY_FIELDS == _conversations.QUERY_FIELDS
    assert set(ListConversationsOperator.template_fields) == {*_conversations.QUERY_FIELDS, "output_path"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"status": "closed"}, "status must be one of open, resolved"),
        ({"inbox_id": "x"}, "inbox_id must be a positive integer"),
        ({"labels": "vip"}, "labels must be a list of strings"),
        ({"assignee_type": "nobody"}, "assignee_type must be one of"),
        ({"q": " "}, "q must be a non-empty string"),
        ({"sort_by": "newest"}, "sort_by must be one of"),
        ({"active_since": "yesterday"}, "active_since must be a Unix timestamp"),
        ({"active_since": 5, "sort_by": "created_at_desc"}, "cannot be combined with sort_by"),
        ({"output_path": ""}, "output_path must be a non-empty path or URL"),
        ({"compression": "zip"}, "compression must be 'gzip', None or 'infer'"),
    ],
)
def test_list_static_mistakes_fail_at_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        ListConversationsOperator(task_id="list", **kwargs)


def test_list_templates_are_checked_after_rendering() -> None:
    ListConversationsOperator(
        task_id="list",
        status="{{ params.status }}",
        labels="{{ params.labels }}",
        active_since="{{ data_interval_start }}",
        sort_by="created_at_desc",  # with a templated active_since: checked once rendered
        output_path="{{ params.out }}",
    )


@pytest.mark.parametrize("operator", ["export", "batch"])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conversation_ids": [1], "conversation_query": {"status": "all"}}, "not both"),
        ({"conversation_query": {"status": "closed"}}, "conversation_query: status must be one of"),
        ({"conversation_query": {"stauts": "all"}}, "conversation_query has no field stauts"),
        ({"conversation_query": {"stauts": "{{ x }}"}}, "conversation_query has no field stauts"),
        ({"conversation_query": {"inbox_id": "x", "q": "{{ x }}"}}, "inbox_id must be a positive integer"),
        ({"conversation_query": "status=all"}, "must be a mapping of the query's fields"),
    ],
)
def test_a_query_is_checked_at_construction(operator: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        if operator == "export":
            ExportMessagesOperator(task_id="t", output_path="/tmp/x.jsonl", **kwargs)
        else:
            BatchSendMessagesOperator(task_id="t", content="hi", **kwargs)


def test_ids_or_a_query_one_of_them() -> None:
    with pytest.raises(
        DotoConfigError, match="either conversation_ids or conversation_query, not both or neither"
    ):
        ExportMessagesOperator(task_id="t", output_path="/tmp/x.jsonl")
    with pytest.raises(DotoConfigError, match="either messages or conversation_ids"):
        BatchSendMessagesOperator(task_id="t", content="hi")
    with pytest.raises(DotoConfigError, match="conversation_query needs content"):
        BatchSendMessagesOperator(task_id="t", conversation_query={"status": "all"})
    query = api.ConversationQuery(status="resolved")
    assert (
        ExportMessagesOperator(task_id="e", conversation_query=query, output_path="/x").conversation_query
        is query
    )
    BatchSendMessagesOperator(task_id="b", conversation_query=query, content="hi")


# ---- ListConversationsOperator --------------------------------------------------------------


def test_list_to_xcom_filters_as_the_query_says(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cids = emu.build_account(60, seed=3)
    vip = [cid for cid in cids if "vip" in emu.conversation(cid)["labels"]]
    assert 0 < len(vip) < len(cids)
    dag = load_dag(DAGS, "doto_test_list_conversations")

    dr = dag.test(run_conf={"status": "all", "labels": ["vip"], "sort_by": "created_at_asc"})

    assert dr.state == "success"
    rows = xcom(dr, "list")
    assert [row["id"] for row in rows] == sorted(vip, key=lambda c: (emu.conversation(c)["created_at"], c))
    assert rows == [_as_listed(emu, row["id"]) for row in rows]


def test_list_by_inbox_and_activity(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    recent, old, since = _seed_by_activity(emu)
    dag = load_dag(DAGS, "doto_test_list_conversations")

    dr = dag.test(run_conf={"status": "open", "inbox_id": "1", "active_since": since.isoformat()})

    assert dr.state == "success"
    assert [row["id"] for row in xcom(dr, "list")] == [recent[0]]  # open, active since; not `old`
    dag = load_dag(DAGS, "doto_test_list_conversations")  # a task renders its fields in place
    dr = dag.test(run_conf={"status": "open", "inbox_id": 1})
    assert {row["id"] for row in xcom(dr, "list")} == {recent[0], old}


def test_list_to_a_file_page_by_page(airflow_db: Path, doto_emulator: Any, tmp_path: Path) -> None:
    emu = doto_emulator
    cids = emu.build_account(60, seed=4)
    out = tmp_path / "conversations" / "all.jsonl.gz"
    dag = load_dag(DAGS, "doto_test_list_conversations")

    dr = dag.test(run_conf={"status": "all", "output_path": str(out)})

    assert dr.state == "success"
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    rows = _read(out)
    assert sorted(row["id"] for row in rows) == sorted(cids)
    assert rows == [_as_listed(emu, row["id"]) for row in rows]
    assert xcom(dr, "list") == {"path": str(out), "count": 60}
    assert [r.query.get("page") for r in _list_requests(emu)] == ["1", "2", "3"]  # 25 a page
    assert sorted(p.name for p in out.parent.iterdir()) == ["all.jsonl.gz"]


@pytest.mark.parametrize(
    "conf",
    [{"status": "closed"}, {"inbox_id": "inbox"}, {"active_since": "last week"}],
)
def test_list_bad_templated_fields_fail_before_a_request(
    airflow_db: Path, doto_emulator: Any, conf: dict[str, Any]
) -> None:
    doto_emulator.add_conversation()
    dag = load_dag(DAGS, "doto_test_list_conversations")

    dr = dag.test(run_conf=conf)

    assert dr.state == "failed"
    assert doto_emulator.requests == []


# ---- ExportMessagesOperator with a query ----------------------------------------------------


@pytest.mark.parametrize("status", ["all", "resolved"])
def test_export_with_a_query_exports_what_it_lists(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path, status: str
) -> None:
    emu = doto_emulator
    recent, _old, since = _seed_by_activity(emu)
    listed = recent if status == "all" else [recent[1]]
    out = tmp_path / "exports" / "active.jsonl"
    dag = load_dag(DAGS, "doto_test_export_query")

    dr = dag.test(logical_date=since, run_conf={"status": status, "output_path": str(out)})

    assert dr.state == "success"
    rows = _read(out)
    assert {row["conversation_id"] for row in rows} == set(listed)  # never `old`, inactive since
    for cid in listed:
        stored = [m["id"] for m in emu.messages(cid)]
        assert [row["id"] for row in rows if row["conversation_id"] == cid] == stored
    result = xcom(dr, "export")
    assert result["count"] == 2 * len(listed) == len(rows)
    assert result["conversations"] == {str(cid): 2 for cid in listed}


def test_export_with_a_bad_rendered_query_fails_before_a_request(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    _seed_by_activity(doto_emulator)
    doto_emulator.clear_requests()
    out = tmp_path / "x.jsonl"
    dag = load_dag(DAGS, "doto_test_export_query")

    dr = dag.test(run_conf={"status": "closed", "output_path": str(out)})

    assert dr.state == "failed"
    assert doto_emulator.requests == [] and not out.exists()


# ---- BatchSendMessagesOperator with a query -------------------------------------------------


def test_batch_with_a_query_sends_each_listed_conversation_one_message(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """Try 1's POSTs to one listed conversation are committed but never answered: Airflow retries the
    task, which lists the same conversations and sends nothing twice."""
    emu = doto_emulator
    recent, old, since = _seed_by_activity(emu)
    emu.inject("drop_after", method="POST", path_contains=f"/conversations/{recent[1]}/")
    dag = load_dag(DAGS, "doto_test_batch_send_query")

    dr = dag.test(logical_date=since, run_conf={"status": "all"})

    assert dr.state == "success"
    assert emu.faults == []
    assert task_instances(dr)[("nudge", -1)].try_number == 2
    out = xcom(dr, "nudge")
    assert sorted(r["conversation_id"] for r in out["results"]) == sorted(recent)
    assert (out["sent"], out["already_delivered"], out["failed"]) == (0, 3, 0)
    for cid in recent:
        nudges = [m for m in emu.messages(cid) if m["content"].startswith("Hi!")]
        assert [m["content"] for m in nudges] == [f"Hi! Still need help with #{cid}?"]
        assert len(_posts(emu, cid)) == 1
    assert _posts(emu, old) == [] and len(emu.messages(old)) == 1
    # The window check (on by default) reads each window from the listing, never one conversation.
    single_reads = [
        r
        for r in emu.requests
        if r.method == "GET" and r.path.split("?")[0].split("/")[-2] == "conversations"
    ]
    assert single_reads == []


def test_batch_with_a_bad_rendered_query_sends_nothing(airflow_db: Path, doto_emulator: Any) -> None:
    _seed_by_activity(doto_emulator)
    doto_emulator.clear_requests()
    dag = load_dag(DAGS, "doto_test_batch_send_query")

    dr = dag.test(run_conf={"status": "closed"})

    assert dr.state == "failed"
    assert doto_emulator.requests == []
