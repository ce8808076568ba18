"""ExportMessagesOperator (and ListMessagesOperator's file branch): streamed JSON Lines exports.

Real DAGs from ``tests/dags`` run with ``dag.test()`` against the emulator over HTTP, on both server
flavors (the doto one with 100-message pages, as a capped server answers).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.operators.doto import ExportMessagesOperator, conversation_ids_of

from ..api._support import ISSUE_26, OVER_HTTP, RENUMBERED, busy_seconds, seed_busy

pytestmark = pytest.mark.integration

DAG_FILE = "test_dags/doto_test_export.py"


@pytest.fixture
def emu(doto_emulator: Any) -> Any:
    if doto_emulator.flavor == "doto":
        doto_emulator.page_cap = 100  # Chatwoot caps its pages by itself
    return doto_emulator


def _seed(emu: Any, start: int | None = None) -> list[int]:
    """Three conversations: a few hundred messages (three a second from ``start``), a short one
    with a deleted message, an empty one.

    A test that builds a window from ``start`` passes it in: the emulator's clock follows real time
    and may tick between seeding and the test reading it again.
    """
    big, short, empty = emu.add_conversation(), emu.add_conversation(), emu.add_conversation()
    start = emu.clock.now() - 400 if start is None else start
    for i in range(320):
        emu.add_message(
            big,
            f"big {i} ünïcode",
            message_type="incoming" if i % 2 else "outgoing",
            created_at=start + i // 3,
        )
        if i % 40 == 0:  # interleaved ids, as on a shared server
            emu.add_message(short, f"short {i}", created_at=start + i // 3)
    gone = emu.add_message(short, "to be deleted", created_at=start + 5)["id"]
    emu.soft_delete = True
    DotoHook().delete_message(short, gone)
    return [big, short, empty]


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _expected(cids: list[int], **window: Any) -> list[dict[str, Any]]:
    hook = DotoHook()
    return [
        {"conversation_id": cid, **m.to_dict()}
        for cid in cids
        for m in hook.list_messages(cid, **window)
        if not m.is_deleted
    ]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---- construction-time validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conversation_ids": [1, "x"]}, "conversation_ids item must be a positive integer"),
        ({"conversation_ids": 0}, "conversation_ids item must be a positive integer"),
        ({"conversation_ids": {"a": 1}}, r"conversation_ids must be a list, got dict: \{'a': 1\}"),
        ({"conversation_ids": "[1, 2"}, r"conversation_ids is not a list: the text '\[1, 2'"),
        ({"output_path": ""}, "output_path must be a non-empty path or URL"),
        ({"output_path": None}, "output_path must be a non-empty path or URL"),
        ({"compression": "zip"}, "compression must be 'gzip', None or 'infer'"),
        ({"after": "yesterday"}, "after must be a Unix timestamp"),
        ({"before": True}, "before must be a Unix timestamp"),
        ({"include_deleted": "no"}, "include_deleted must be True or False"),
    ],
)
def test_export_rejects_static_mistakes(kwargs: dict[str, Any], match: str) -> None:
    arguments = {"task_id": "export", "conversation_ids": [1, 2], "output_path": "/tmp/x.jsonl", **kwargs}
    with pytest.raises(DotoConfigError, match=match):
        ExportMessagesOperator(**arguments)


def test_export_accepts_templates_and_rendered_lists() -> None:
    ExportMessagesOperator(
        task_id="export",
        conversation_ids="{{ params.ids }}",
        output_path="{{ params.out }}",
        after="{{ data_interval_start }}",
    )
    assert conversation_ids_of("[3, 1, 3]") == [3, 1]
    assert conversation_ids_of("4, 5") == [4, 5]
    assert conversation_ids_of(7) == [7] == conversation_ids_of("7")
    assert conversation_ids_of([]) == []
    ExportMessagesOperator(task_id="mixed", conversation_ids=[1, "{{ params.id }}"], output_path="/tmp/x")


# ---- exports through dag.test() --------------------------------------------------------------


@pytest.mark.parametrize("name", ["messages.jsonl", "messages.jsonl.gz"])
def test_export_writes_every_message_once(airflow_db: Path, emu: Any, tmp_path: Path, name: str) -> None:
    cids = _seed(emu)
    out = tmp_path / "exports" / name
    dag = load_dag(DAG_FILE, "doto_test_export")

    dr = dag.test(run_conf={"conversation_ids": cids, "output_path": str(out)})

    assert dr.state == "success"
    rows = _read(out)
    if name.endswith(".gz"):
        assert out.read_bytes()[:2] == b"\x1f\x8b"
    else:
        assert out.read_text(encoding="utf-8").count("\n") == len(rows)
    assert rows == _expected(cids)
    assert len(rows) == 320 + 8 and len({(r["conversation_id"], r["id"]) for r in rows}) == len(rows)
    big, short, empty = cids
    result = xcom(dr, "export")
    assert result == {
        "path": str(out),
        "count": 328,
        "conversations": {str(big): 320, str(short): 8, str(empty): 0},
    }
    assert _leftovers(out.parent) == [name]  # no temporary file left beside it


def test_export_window_to_an_object_storage_url(airflow_db: Path, emu: Any, tmp_path: Path) -> None:
    start = emu.clock.now() - 400
    cids = _seed(emu, start)[:2]
    window = {"after": start + 20, "before": start + 90}
    dag = load_dag(DAG_FILE, "doto_test_export")

    dr = dag.test(
        run_conf={"conversation_ids": cids, "output_path": f"file://{tmp_path}/lake/doto.jsonl", **window}
    )

    assert dr.state == "success"
    rows = _read(tmp_path / "lake" / "doto.jsonl")
    assert rows == _expected(cids, **window)
    assert rows and all(window["after"] < r["created_at"] < window["before"] for r in rows)


def test_export_of_an_upstream_tasks_list(airflow_db: Path, emu: Any, tmp_path: Path) -> None:
    cids = _seed(emu)[:2]
    out = tmp_path / "from_upstream.jsonl"  # no .gz suffix: compression="gzip" all the same
    dag = load_dag(DAG_FILE, "doto_test_export_from_upstream")

    dr = dag.test(run_conf={"conversation_ids": cids, "output_path": str(out)})

    assert dr.state == "success"
    with gzip.open(out, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    assert rows == _expected(list(reversed(cids)))
    assert list(xcom(dr, "export")["conversations"]) == [str(cid) for cid in reversed(cids)]


@pytest.mark.parametrize("failure", ["missing_conversation", "server_error"])
def test_a_failed_export_leaves_no_complete_looking_file(
    airflow_db: Path, emu: Any, tmp_path: Path, failure: str
) -> None:
    big, short, _ = _seed(emu)
    out = tmp_path / "exports" / "messages.jsonl"
    out.parent.mkdir()
    out.write_text("yesterday's export\n")
    if failure == "missing_conversation":
        cids = [big, 987_654]
    else:  # the first conversation is written, then the server fails on the second
        cids = [big, short]
        emu.inject("status", status=500, times=50, path_contains=f"/conversations/{short}/messages")
    dag = load_dag(DAG_FILE, "doto_test_export")

    dr = dag.test(run_conf={"conversation_ids": cids, "output_path": str(out)})

    assert dr.state == "failed"
    assert task_instances(dr)[("export", -1)].state == "failed"
    assert out.read_text() == "yesterday's export\n"  # the earlier file, untouched
    assert _leftovers(out.parent) == ["messages.jsonl"]  # the partial file was removed


def test_a_failed_first_export_leaves_no_file(airflow_db: Path, emu: Any, tmp_path: Path) -> None:
    big = _seed(emu)[0]
    out = tmp_path / "exports" / "messages.jsonl.gz"
    dag = load_dag(DAG_FILE, "doto_test_export")

    dr = dag.test(run_conf={"conversation_ids": [big, 987_654], "output_path": str(out)})

    assert dr.state == "failed"
    assert _leftovers(out.parent) == []


def test_the_outlet_asset_gets_an_event_with_the_export(airflow_db: Path, emu: Any, tmp_path: Path) -> None:
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    cids = _seed(emu)[:2]
    out = tmp_path / "messages.jsonl"
    dag = load_dag(DAG_FILE, "doto_test_export")
    with create_session() as session:  # a queued run left by an earlier test
        session.execute(delete(AssetDagRunQueue))

    dr = dag.test(run_conf={"conversation_ids": cids, "output_path": str(out)})

    assert dr.state == "success"
    with create_session() as session:
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "doto_test_exports", AssetEvent.source_run_id == dr.run_id)
        ).all()
        extras = [dict(event.extra) for event in events]
    assert extras == [xcom(dr, "export")]
    assert extras[0]["path"] == str(out) and extras[0]["count"] == len(_read(out))
    with create_session() as session:
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
        consumer_known = session.get(DagModel, "doto_test_export_consumer") is not None
    if consumer_known:  # dag.test() syncs the DAG file's other DAGs too from Airflow 3.3 on
        assert queued == ["doto_test_export_consumer"]  # the event queued a run of the consumer


def test_lineage_names_the_conversations_and_the_file(emu: Any) -> None:
    task = ExportMessagesOperator(
        task_id="export", conversation_ids=[5, 7, 5], output_path="s3://lake/doto/{{ ds }}.jsonl.gz"
    )
    task.output_path = "s3://lake/doto/2026-11-29.jsonl.gz"  # as rendered
    inputs, output = task.lineage_datasets()
    host = emu.base_url.split("://", 1)[1].rstrip("/")
    assert inputs == [
        (f"doto://{host}", "accounts/1/conversations/5"),
        (f"doto://{host}", "accounts/1/conversations/7"),
    ]
    assert output == ("s3://lake", "doto/2026-11-29.jsonl.gz")
    task.output_path = "/data/exports/doto.jsonl"
    assert task.lineage_datasets()[1] == ("file", "/data/exports/doto.jsonl")


def test_openlineage_facets_on_complete(emu: Any) -> None:
    pytest.importorskip(
        "airflow.providers.openlineage",
        reason="apache-airflow-providers-openlineage is not installed in this environment",
    )
    task = ExportMessagesOperator(task_id="export", conversation_ids=[5], output_path="/data/doto.jsonl")
    lineage = task.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [task.lineage_datasets()[0][0]]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", "/data/doto.jsonl")]


# ---- Chatwoot: busy seconds and ids out of time order (issue 26) ---------------------------


def _export_ids(cid: int, path: Path, **window: Any) -> tuple[list[int], dict[str, Any]]:
    """The ids the export wrote for ``cid`` (in file order) and what it returned."""
    task = ExportMessagesOperator(task_id="export", conversation_ids=[cid], output_path=str(path), **window)
    result = task.execute(context={})  # type: ignore[arg-type]  # no outlets: the context is not read
    return [row["id"] for row in _read(path)], result


@pytest.mark.doto_flavor("chatwoot")
def test_busy_seconds_with_an_id_out_of_order_are_exported_whole(doto_emulator: Any, tmp_path: Path) -> None:
    """Issue 26: the export wrote and reported 130 of the window's 151 messages, without an error."""
    start = doto_emulator.clock.now() - 60
    cid = seed_busy(doto_emulator, **ISSUE_26, start=start)
    expected = [m["id"] for m in doto_emulator.messages(cid) if m["created_at"] > start + 4]
    written, result = _export_ids(cid, tmp_path / "busy.jsonl", after=start + 4)
    assert (len(written), result["count"]) == (151, 151)
    assert written == expected


@pytest.mark.doto_flavor("chatwoot")
@OVER_HTTP
@given(
    per_second=busy_seconds(6),
    renumbered=RENUMBERED,
    after=st.integers(-1, 6),
)
@example(**ISSUE_26, after=4)
def test_property_busy_seconds_each_message_exported_once(
    doto_emulator: Any,
    tmp_path_factory: pytest.TempPathFactory,
    per_second: list[int],
    renumbered: list[tuple[int, int]],
    after: int,
) -> None:
    """Busy seconds and ids out of time order: the export writes the window's messages once each."""
    start = doto_emulator.clock.now() - 100
    cid = seed_busy(doto_emulator, per_second, renumbered, start)  # a new conversation per example
    expected = [m["id"] for m in doto_emulator.messages(cid) if m["created_at"] > start + after]
    written, result = _export_ids(cid, tmp_path_factory.mktemp("export") / "out.jsonl", after=start + after)
    assert written == expected and result["count"] == len(expected)


# ---- ListMessagesOperator's file branch streams through the same writer ---------------------


def test_list_messages_to_a_gzip_file(airflow_db: Path, emu: Any, tmp_path: Path) -> None:
    start = emu.clock.now() - 400
    big = _seed(emu, start)[0]
    out = tmp_path / "conversation.jsonl.gz"
    dag = load_dag("test_dags/doto_test_list.py")

    dr = dag.test(
        run_conf={"conversation_id": big, "after": start - 1, "before": start + 1000, "output_path": str(out)}
    )

    assert dr.state == "success"
    rows = _read(out)
    assert rows == xcom(dr, "list_to_xcom") and len(rows) == 320
    assert xcom(dr, "list_to_file") == {"path": str(out), "count": 320}
