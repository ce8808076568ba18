"""hooks/_uploads.py: what each kind of attachment is, and the streamed body (its exact length, a
chunk at a time, again on every attempt, and a file that changed size refused)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_doto._airflow import GivenFile, LocalFile
from airflow_provider_doto.api._uploads import multipart_body
from airflow_provider_doto.exceptions import DotoUploadError
from airflow_provider_doto.hooks._uploads import StreamedBody, uploads_of
from airflow_provider_doto.operators.doto import SendMessageOperator


def test_each_kind_of_attachment_is_looked_at_not_read(tmp_path: Path) -> None:
    local = tmp_path / "a.csv"
    local.write_bytes(b"1,2\n")
    stored = tmp_path / "b.pdf"
    stored.write_bytes(b"%PDF")
    found = uploads_of(
        [str(local), local, ObjectStoragePath(f"file://{stored}"), f"file://{stored}", ("c.txt", b"hi")]
    )
    assert [(u.filename, u.size, u.content_type) for u in found] == [
        ("a.csv", 4, "text/csv"),
        ("a.csv", 4, "text/csv"),
        ("b.pdf", 4, "application/pdf"),
        ("b.pdf", 4, "application/pdf"),
        ("c.txt", 2, "text/plain"),
    ]
    assert (
        uploads_of(None) == [] and len(uploads_of(str(local))) == 1 and len(uploads_of(("x.csv", b"1"))) == 1
    )
    assert uploads_of([GivenFile("d.json", b"{}")])[0].size == 2
    one = uploads_of(ObjectStoragePath(f"file://{stored}"))  # one file given on its own
    assert [(u.filename, u.size) for u in one] == [("b.pdf", 4)]


def test_what_is_not_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DotoUploadError, match=r"gone\.csv") as err:
        uploads_of([str(tmp_path / "gone.csv")])
    assert err.value.reason == "unreadable"
    with pytest.raises(DotoUploadError, match="not int"):
        uploads_of([42])


def test_the_streamed_body_has_the_length_it_announces_and_replays(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(bytes(range(256)) * 1000)
    body = multipart_body({"content": "x"}, uploads_of([str(big), ("s.txt", b"small")]))
    streamed = StreamedBody(body, chunk_size=1000)
    chunks = list(streamed)
    assert sum(map(len, chunks)) == len(streamed) == body.length
    assert max(map(len, chunks)) <= 1000  # a chunk at a time, never the file
    assert b"".join(list(streamed)) == b"".join(chunks)  # a resend streams the same bytes again
    assert bytes(range(256)) * 1000 in b"".join(chunks)


def test_a_file_that_changed_size_since_it_was_looked_at_is_refused(tmp_path: Path) -> None:
    report = tmp_path / "r.csv"
    report.write_bytes(b"12345")
    streamed = StreamedBody(multipart_body({}, uploads_of([str(report)])))
    report.write_bytes(b"123456789")
    with pytest.raises(DotoUploadError, match="changed size"):
        list(streamed)


def test_the_operator_keeps_file_names_from_template_file_rendering(tmp_path: Path) -> None:
    """A ``.txt`` path or pair is not read as a Jinja template file; other paths are templated."""
    op = SendMessageOperator(
        task_id="t",
        conversation_id=1,
        content="x",
        attachments=["/data/{{ ds }}.csv", "/data/notes.txt", ("n.txt", b"hi")],
    )
    op.render_template_fields({"ds": "2026-12-05"})  # type: ignore[arg-type]
    assert op.attachments == ["/data/2026-12-05.csv", LocalFile("/data/notes.txt"), GivenFile("n.txt", b"hi")]


def test_a_local_path_is_kept_for_the_hook_whatever_the_airflow_version(tmp_path: Path) -> None:
    """Airflow 3.1 renders a value with a ``resolve`` method by calling it with the context, and
    ``Path.resolve(strict=context)`` raises for a file not there yet: the operator keeps a Path as a
    LocalFile, which the hook reads as any path."""
    report = tmp_path / "later.csv"
    op = SendMessageOperator(task_id="t", conversation_id=1, content="x", attachments=[report])
    op.render_template_fields({"ds": "2026-12-05"})  # type: ignore[arg-type]
    assert op.attachments == [LocalFile(str(report))]
    report.write_bytes(b"a,b\n")
    (upload,) = uploads_of(op.attachments)
    assert (upload.filename, upload.size) == ("later.csv", 4)
