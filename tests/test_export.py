"""``_export``: JSON Lines written through ObjectStoragePath, whole or not at all."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto._export import (
    LINES_PER_WRITE,
    check_compression,
    check_output_path,
    compression_for,
    write_jsonl,
)
from airflow_provider_doto.exceptions import DotoConfigError


def rows(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {"id": i, "content": f"Grüße {i}"}


def read_lines(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_rows_become_one_json_line_each_across_write_batches(tmp_path: Path) -> None:
    count = LINES_PER_WRITE * 2 + 1
    path, written = write_jsonl(str(tmp_path / "out" / "messages.jsonl"), rows(count))
    target = tmp_path / "out" / "messages.jsonl"
    assert written == count and str(path).endswith("messages.jsonl")
    assert read_lines(target) == list(rows(count))
    assert "Grüße" in target.read_text(encoding="utf-8")  # not \u-escaped
    assert sorted(p.name for p in target.parent.iterdir()) == ["messages.jsonl"]


def test_gz_is_inferred_and_the_gzip_header_names_the_final_file(tmp_path: Path) -> None:
    target = tmp_path / "messages.jsonl.gz"
    write_jsonl(str(target), rows(3))
    with gzip.open(target, "rb") as f:
        assert f.read().count(b"\n") == 3
    # The header's file name (after 10 bytes, FNAME flag set) is what gunzip restores: the
    # target's name without .gz, not the temporary file's.
    raw = target.read_bytes()
    assert raw[3] & 0x08 and raw[10:].split(b"\0", 1)[0] == b"messages.jsonl"


def test_compression_none_writes_plain_text_even_to_a_gz_name(tmp_path: Path) -> None:
    target = tmp_path / "messages.jsonl.gz"
    write_jsonl(str(target), rows(2), compression=None)
    assert target.read_bytes().startswith(b'{"id": 0')


def test_a_failing_source_leaves_the_earlier_file_and_no_leftover(tmp_path: Path) -> None:
    target = tmp_path / "messages.jsonl"
    target.write_text("yesterday's export\n")

    def broken() -> Iterator[dict[str, Any]]:
        yield from rows(LINES_PER_WRITE + 5)  # past one write to the temporary file
        raise RuntimeError("the server went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_jsonl(str(target), broken())
    assert target.read_text() == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["messages.jsonl"]


def test_an_object_storage_url_is_written_too(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/daily/messages.jsonl"
    _, written = write_jsonl(url, rows(4))
    assert written == 4 and len(read_lines(tmp_path / "daily" / "messages.jsonl")) == 4


@pytest.mark.parametrize(
    ("path", "given", "chosen"),
    [
        ("a.jsonl.gz", "infer", "gzip"),
        ("a.jsonl", "infer", None),
        ("a.jsonl", "gzip", "gzip"),
        ("a.jsonl.gz", None, None),
    ],
)
def test_compression_for(path: str, given: str | None, chosen: str | None) -> None:
    assert compression_for(path, given) == chosen


@pytest.mark.parametrize("bad", ["zip", "GZIP", "", 1, True])
def test_an_unknown_compression_is_refused_by_name(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(DotoConfigError, match="compression must be"):
        check_compression(bad)
    with pytest.raises(DotoConfigError, match="compression must be"):
        write_jsonl(str(tmp_path / "a.jsonl"), rows(1), compression=bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["", "   ", None, 42, ["a.jsonl"]])
def test_a_bad_output_path_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(DotoConfigError, match="output_path must be"):
        check_output_path(bad)
    with pytest.raises(DotoConfigError, match="output_path must be"):
        write_jsonl(bad, rows(1))


# ---- attachments: one file each, written whole or not at all ---------------------------------


def _message_with(*attachments: Any) -> Any:
    from airflow_provider_doto.api._messages import parse_message

    return parse_message({"id": 41, "created_at": 1, "message_type": 0, "attachments": list(attachments)})


def _fake_download(contents: dict[str, bytes]) -> Any:
    def download(attachment: Any, out: Any) -> int:
        data = contents[attachment.data_url]
        for start in range(0, len(data), 3):
            out.write(data[start : start + 3])
        return len(data)

    return download


def test_attachments_go_to_object_storage_named_by_message(tmp_path: Path) -> None:
    import fsspec
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach

    from airflow_provider_doto._export import write_attachments

    attach("memory", fs=fsspec.filesystem("memory"))  # an object store fsspec keeps in this process
    message = _message_with(
        {"id": 7, "data_url": "https://h/r/k1/report.csv"},
        {"id": 8, "data_url": "https://h/r/k2/..%2F..%2Fx.txt"},
        {"id": 9, "file_type": "location"},  # no file to copy: skipped
    )
    download = _fake_download({"https://h/r/k1/report.csv": b"a,b\n", "https://h/r/k2/..%2F..%2Fx.txt": b"x"})
    target = f"memory://doto-test/{tmp_path.name}/files"
    written = write_attachments(target, message, download)
    directory = ObjectStoragePath(target)
    assert written == [str(directory / "41-7-report.csv"), str(directory / "41-8-x.txt")]
    assert sorted(p.name for p in directory.iterdir()) == ["41-7-report.csv", "41-8-x.txt"]
    assert (directory / "41-7-report.csv").read_bytes() == b"a,b\n"
    assert [p.name for p in ObjectStoragePath(f"memory://doto-test/{tmp_path.name}").iterdir()] == ["files"]


def test_a_failed_download_leaves_no_file(tmp_path: Path) -> None:
    from airflow_provider_doto._export import write_attachments
    from airflow_provider_doto.exceptions import DotoAttachmentError

    def download(attachment: Any, out: Any) -> int:
        out.write(b"half")
        raise DotoAttachmentError("the attachment download at http://h:80 answered HTTP 500", status=500)

    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "41-7-a.txt").write_bytes(b"earlier")
    with pytest.raises(DotoAttachmentError):
        write_attachments(
            str(tmp_path / "files"), _message_with({"id": 7, "data_url": "https://h/k/a.txt"}), download
        )
    assert [p.name for p in (tmp_path / "files").iterdir()] == ["41-7-a.txt"]
    assert (tmp_path / "files" / "41-7-a.txt").read_bytes() == b"earlier"


@pytest.mark.integration
@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_copying_holds_a_chunk_not_the_file(doto_emulator: Any, tmp_path: Path) -> None:
    """A 16 MB attachment copied through the hook into a file: the traced peak stays far below it
    (reading it whole, ``chunk_size=size``, peaks above 16 MB: checked when this test was written)."""
    import tracemalloc

    from airflow_provider_doto._export import write_attachments
    from airflow_provider_doto.hooks.doto import DotoHook

    size = 16 * 1024 * 1024
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "big", attachments=[("big.bin", b"\x01" * size)])
    hook = DotoHook()
    (message,) = hook.list_messages(cid)
    hook.session  # noqa: B018  (built before measuring)
    tracemalloc.start()
    try:
        (written,) = write_attachments(str(tmp_path), message, hook.download_attachment)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Path(written).stat().st_size == size
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while copying {size}"
