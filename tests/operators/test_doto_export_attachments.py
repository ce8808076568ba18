"""ExportMessagesOperator(attachments_to=...): each exported message's attachments copied, one file
each, through real dag.test() runs against the emulator (both flavors), token never off its origin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators.doto import ExportMessagesOperator
from airflow_provider_doto.testing.emulator.recorder import MASK

pytestmark = pytest.mark.integration

DAG_FILE = "test_dags/doto_test_export_attachments.py"
BIG = bytes(range(256)) * 12_000  # ~3 MB: more than one download chunk
CSV = b"day,count\n2026-01-01,3\n"


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(tmp_path: Path, cids: list[int]) -> tuple[Any, Path, Path]:
    out, files = tmp_path / "export" / "messages.jsonl", tmp_path / "files"
    dag = load_dag(DAG_FILE, "doto_test_export_attachments")
    dr = dag.test(run_conf={"conversation_ids": cids, "output_path": str(out), "attachments_to": str(files)})
    return dr, out, files


def test_attachments_are_copied_one_file_each(airflow_db: Path, doto_emulator: Any, tmp_path: Path) -> None:
    emu = doto_emulator
    first, second = emu.add_conversation(), emu.add_conversation()
    report = emu.add_message(first, "the report", attachments=[("weekly report.csv", CSV), ("dump.bin", BIG)])
    emu.add_message(first, "no files")
    photo = emu.add_message(second, "a photo", attachments=[("../../escape.png", b"\x89PNG", "image/png")])
    emu.clear_storage_requests()

    dr, out, files = _run(tmp_path, [first, second])

    assert dr.state == "success"
    (day,) = files.iterdir()  # the templated target ({{ ds }}) was rendered
    report_ids = [a["id"] for a in emu.message(report["id"])["attachments"]]
    (photo_id,) = [a["id"] for a in emu.message(photo["id"])["attachments"]]
    expected = {
        f"{report['id']}-{report_ids[0]}-weekly_report.csv": CSV,
        f"{report['id']}-{report_ids[1]}-dump.bin": BIG,
        f"{photo['id']}-{photo_id}-escape.png": b"\x89PNG",  # no path traversal: inside the directory
    }
    assert {p.name: p.read_bytes() for p in day.iterdir()} == expected
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.glob("**/.*partial"))

    rows = {row["id"]: row for row in _read(out)}
    assert rows[report["id"]]["attachments_written"] == [
        str(day / name) for name in sorted(expected) if name.startswith(f"{report['id']}-")
    ]
    assert [a["file_size"] for a in rows[report["id"]]["attachments"]] == [len(CSV), len(BIG)]
    (plain,) = [row for row in rows.values() if row["content"] == "no files"]
    assert "attachments_written" not in plain and plain["attachments"] == []
    assert xcom(dr, "export")["attachments"] == 3

    stored = emu.storage_requests
    assert len(stored) == 3
    assert not any("api_access_token" in r.headers or MASK in r.headers.values() for r in stored)


def test_attachments_go_to_an_object_storage_url(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    """``attachments_to`` as an object-storage URL (fsspec's in-memory store, as an s3:// URL would
    go): the real download from the emulator, streamed into ObjectStoragePath files."""
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # an object store fsspec keeps in this process
    emu = doto_emulator
    cid = emu.add_conversation()
    report = emu.add_message(cid, "the report", attachments=[("report.csv", CSV), ("dump.bin", BIG)])
    target = f"memory://doto-export/{tmp_path.name}"
    out = tmp_path / "messages.jsonl"
    dag = load_dag(DAG_FILE, "doto_test_export_attachments")

    dr = dag.test(run_conf={"conversation_ids": [cid], "output_path": str(out), "attachments_to": target})

    assert dr.state == "success"
    (day,) = ObjectStoragePath(target).iterdir()
    ids = [a["id"] for a in emu.message(report["id"])["attachments"]]
    names = [f"{report['id']}-{ids[0]}-report.csv", f"{report['id']}-{ids[1]}-dump.bin"]
    assert {p.name: p.read_bytes() for p in day.iterdir()} == dict(zip(names, (CSV, BIG), strict=True))
    (row,) = [r for r in _read(out) if r["id"] == report["id"]]
    assert row["attachments_written"] == [str(day / name) for name in sorted(names)]


def test_a_failed_download_fails_the_task_and_leaves_no_export(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "the report", attachments=[("report.csv", CSV)])
    emu.inject("status", status=500, times=10, path_contains="/rails/active_storage/")

    dr, out, files = _run(tmp_path, [cid])

    assert dr.state == "failed"
    assert task_instances(dr)[("export", -1)].state == "failed"
    assert not out.exists()
    assert not [p for p in files.rglob("*") if p.is_file()]


def test_without_attachments_to_nothing_is_downloaded(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "the report", attachments=[("report.csv", CSV)])
    emu.clear_storage_requests()
    out = tmp_path / "messages.jsonl"
    dag = load_dag("test_dags/doto_test_export.py", "doto_test_export")

    dr = dag.test(run_conf={"conversation_ids": [cid], "output_path": str(out)})

    assert dr.state == "success"
    (row,) = _read(out)
    assert "attachments_written" not in row and row["attachments"][0]["file_size"] == len(CSV)
    assert "attachments" not in xcom(dr, "export")
    assert emu.storage_requests == []


@pytest.mark.parametrize("value", ["", "   ", 5])
def test_attachments_to_is_checked_at_parse(value: Any) -> None:
    with pytest.raises(DotoConfigError, match="attachments_to must be a non-empty path or URL"):
        ExportMessagesOperator(task_id="x", conversation_ids=[1], output_path="/tmp/x", attachments_to=value)


def test_attachments_to_is_templated() -> None:
    assert "attachments_to" in ExportMessagesOperator.template_fields
    ExportMessagesOperator(task_id="x", conversation_ids=[1], output_path="/tmp/x", attachments_to="{{ ds }}")
