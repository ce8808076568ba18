"""send_message / send_message_once with attachments (DotoHook): multipart as the web app uploads,
checked before anything is sent, streamed with bounded memory, and duplicate-safe on retry."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk import ObjectStoragePath

from airflow_provider_doto.exceptions import DotoUploadError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

pytestmark = pytest.mark.integration

CSV = b"day,orders\n2026-12-05,42\n" * 100


@pytest.fixture(params=["sync", "async"])
def send(request: pytest.FixtureRequest) -> Any:
    """``send_message`` of a fresh hook (of connection ``conn_id``), sync or async, driven to completion."""
    if request.param == "sync":
        return lambda *a, conn_id="doto_default", **kw: DotoHook(conn_id).send_message(*a, **kw)

    def run(*args: Any, conn_id: str = "doto_default", **kwargs: Any) -> Any:
        return asyncio.run(asyncio.wait_for(DotoAsyncHook(conn_id).send_message(*args, **kwargs), 60))

    return run


def _posts(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def _fetch(url: str) -> bytes:
    return requests.get(url, timeout=10).content  # the redirect to the storage listener, followed


def test_attachments_go_as_multipart_and_come_back_listed(
    send: Any, doto_emulator: Any, tmp_path: Path
) -> None:
    local = tmp_path / "report.csv"
    local.write_bytes(CSV)
    stored = tmp_path / "invoice.pdf"
    stored.write_bytes(b"%PDF-1.4 invoice")
    cid = doto_emulator.add_conversation()

    message = send(
        cid,
        "Today's report",
        attachments=[str(local), ObjectStoragePath(f"file://{stored}"), ("notes.txt", b"hello")],
    )

    (post,) = _posts(doto_emulator)
    assert post.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(post.headers["content-length"]) == len(post.body)  # announced, not chunked
    assert "transfer-encoding" not in post.headers
    assert post.body.count(b'name="attachments[]"') == 3
    assert [a.extension for a in message.attachments] == ["csv", "pdf", "txt"]
    assert [a.file_type for a in message.attachments] == ["file", "file", "file"]
    assert [a.file_size for a in message.attachments] == [len(CSV), 16, 5]
    assert message.content == "Today's report"
    assert _fetch(str(message.attachments[0].data_url)) == CSV
    assert _fetch(str(message.attachments[2].data_url)) == b"hello"
    (listed,) = DotoHook().list_messages(cid)
    assert [a.id for a in listed.attachments] == [a.id for a in message.attachments]


def test_the_form_fields_are_those_the_controller_reads(doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    message = DotoHook().send_message(
        cid,
        "note",
        private=True,
        content_attributes={"source": "airflow"},
        attachments=[("a.png", b"\x89PNG....")],
    )
    assert message.private is True
    assert message.content_attributes == {"source": "airflow"}
    (attachment,) = message.attachments
    assert attachment.file_type == "image"


@pytest.mark.parametrize(
    ("attachments", "reason", "named"),
    [
        ([("f.txt", b"x")] * 16, "too many", None),
        ([("ok.txt", b"x"), ("big.csv", b"x" * (1024 * 1024 + 1))], "too large", "big.csv"),
        ([("ok.txt", b"x"), ("run.exe", b"MZ")], "type not allowed", "run.exe"),
        ([("empty.csv", b"")], "empty", "empty.csv"),
    ],
)
def test_a_refused_set_sends_nothing(
    send: Any, doto_emulator: Any, attachments: list[tuple[str, bytes]], reason: str, named: str | None
) -> None:
    doto_emulator_conn = doto_emulator.connection_uri(max_upload_mb=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_DOTO_UPLOAD", doto_emulator_conn)
        cid = doto_emulator.add_conversation()
        doto_emulator.clear_requests()
        with pytest.raises(DotoUploadError) as err:
            send(cid, "files", attachments=attachments, conn_id="doto_upload")
    assert err.value.reason == reason
    assert err.value.filename == named
    if named:
        assert named in str(err.value)
    assert doto_emulator.requests == []


@pytest.mark.parametrize("client", ["sync", "async"])
def test_the_limit_is_the_connection_s_and_exactly_at_it_is_accepted(doto_emulator: Any, client: str) -> None:
    edge = [("edge.csv", b"x" * (1024 * 1024))]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_DOTO_UPLOAD", doto_emulator.connection_uri(max_upload_mb=1))
        cid = doto_emulator.add_conversation()
        if client == "sync":
            message = DotoHook("doto_upload").send_message(cid, "at the limit", attachments=edge)
        else:
            message = asyncio.run(
                DotoAsyncHook("doto_upload").send_message(cid, "at the limit", attachments=edge)
            )
    assert message.attachments[0].file_size == 1024 * 1024


def test_a_missing_file_is_named_and_nothing_is_sent(doto_emulator: Any, tmp_path: Path) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.clear_requests()
    with pytest.raises(DotoUploadError) as err:
        DotoHook().send_message(cid, "x", attachments=[str(tmp_path / "gone.csv")])
    assert "gone.csv" in str(err.value)
    assert err.value.reason == "unreadable"
    assert doto_emulator.requests == []


# ---- streaming: memory bounded by a chunk, not the file -----------------------------------------

FILE_SIZE = 20 * 1024 * 1024
ANSWER = json.dumps(
    {"id": 1, "content": "report", "message_type": 1, "created_at": 1_700_000_000, "private": False}
).encode()


class _Discard(http.server.BaseHTTPRequestHandler):
    """Reads a request's body 64 KiB at a time, keeps only its length, answers a message."""

    received: list[int] = []

    def do_POST(self) -> None:
        left = int(self.headers["content-length"])
        total = 0
        while left:
            chunk = self.rfile.read(min(65536, left))
            left -= len(chunk)
            total += len(chunk)
        self.received.append(total)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def discard_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _Discard.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conn = {
        "conn_type": "doto",
        "host": url,
        "password": "t",
        "extra": {"account_id": 1, "flavor": "chatwoot"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DISCARD", json.dumps(conn))
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def _peak_during(call: Any) -> int:
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def test_a_large_file_is_streamed_with_memory_bounded_by_a_chunk(discard_server: str, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        for _ in range(FILE_SIZE // (1024 * 1024)):
            out.write(b"x" * (1024 * 1024))
    hook = DotoHook("doto_discard")
    hook.send_message(1, "warm-up", attachments=[("tiny.csv", b"a,b\n")])  # session, imports

    peak = _peak_during(lambda: hook.send_message(1, "report", attachments=[str(big)]))
    assert _Discard.received[-1] > FILE_SIZE  # the whole file went
    assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sending a {FILE_SIZE / 1e6:.0f} MB file"

    # The control: a plain requests multipart upload of the same file holds it whole, and the
    # measurement sees it (so the bound above could fail).
    def plain() -> None:
        with big.open("rb") as file:
            requests.post(f"{discard_server}/x", files={"attachments[]": file}, timeout=30)

    assert _peak_during(plain) > FILE_SIZE


def test_the_async_hook_streams_a_large_file_with_memory_bounded_by_a_chunk(
    discard_server: str, tmp_path: Path
) -> None:
    """The async twin reads the file in worker threads and hands aiohttp one chunk at a time."""
    big = tmp_path / "big.csv"
    with big.open("wb") as out:
        for _ in range(FILE_SIZE // (1024 * 1024)):
            out.write(b"x" * (1024 * 1024))
    hook = DotoAsyncHook("doto_discard")

    async def send(name: str, attachment: Any) -> None:
        await hook.send_message(1, name, attachments=[attachment])

    asyncio.run(send("warm-up", ("tiny.csv", b"a,b\n")))  # imports, event-loop machinery

    peak = _peak_during(lambda: asyncio.run(send("report", str(big))))
    assert _Discard.received[-1] > FILE_SIZE  # the whole file went
    assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while sending a {FILE_SIZE / 1e6:.0f} MB file"
