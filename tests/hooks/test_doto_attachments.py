"""download_attachment (DotoHook and DotoAsyncHook): a data_url's redirect followed by the hook, the
bytes streamed, and the API token sent to the Base URL's origin only (never to the storage listener,
another origin)."""

from __future__ import annotations

import asyncio
import http.server
import io
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from airflow_provider_doto import api
from airflow_provider_doto.api import _attachments as attachments_module
from airflow_provider_doto.exceptions import DotoAttachmentError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator.recorder import MASK

pytestmark = pytest.mark.integration

BIG = bytes(range(256)) * 4096  # 1 MiB, not a multiple of the chunk sizes below


Download = Callable[..., int]


@pytest.fixture(params=["sync", "async"])
def download(request: pytest.FixtureRequest) -> Download:
    """``download_attachment`` of a fresh hook, sync or async (run to completion)."""
    if request.param == "sync":
        return lambda attachment, out, **kw: DotoHook().download_attachment(attachment, out, **kw)

    def run(attachment: Any, out: Any, **kw: Any) -> int:
        return asyncio.run(asyncio.wait_for(DotoAsyncHook().download_attachment(attachment, out, **kw), 30))

    return run


def _attachment(emu: Any, files: list[tuple[str, bytes]]) -> list[api.Attachment]:
    cid = emu.add_conversation()
    emu.add_message(cid, "files", attachments=files)
    (message,) = DotoHook().list_messages(cid)
    return list(message.attachments)


def _token_reached(recorded: Any) -> bool:
    return "api_access_token" in recorded.headers or MASK in recorded.headers.values()


def test_download_follows_the_redirect_and_keeps_the_token_home(
    download: Download, doto_emulator: Any
) -> None:
    (attachment,) = _attachment(doto_emulator, [("report.csv", BIG)])
    doto_emulator.clear_requests()
    doto_emulator.clear_storage_requests()
    out = io.BytesIO()

    assert download(attachment, out) == len(BIG) == attachment.file_size
    assert out.getvalue() == BIG
    # The API's own origin got the token (the first hop, the data_url) ...
    (first_hop,) = doto_emulator.requests
    assert first_hop.path.startswith("/rails/active_storage/blobs/redirect/") and first_hop.authorized
    # ... storage, another origin, never did.
    (stored,) = doto_emulator.storage_requests
    assert stored.path.startswith("/blobs/")
    assert not _token_reached(stored) and not stored.authorized


def test_the_check_sees_a_forwarded_token(
    download: Download, doto_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: were the hook to send the token to every origin, the storage record would show it,
    so the test above fails if the origin check goes."""
    (attachment,) = _attachment(doto_emulator, [("a.txt", b"abc")])
    monkeypatch.setattr(attachments_module, "carries_token", lambda url, base_url: True)
    doto_emulator.clear_storage_requests()
    download(attachment, io.BytesIO())
    (stored,) = doto_emulator.storage_requests
    assert _token_reached(stored) and stored.authorized


def test_requests_own_redirects_would_leak_the_token(doto_emulator: Any) -> None:
    """Why the hook follows redirects itself: requests strips Authorization on a host change, not a
    custom header such as api_access_token."""
    (attachment,) = _attachment(doto_emulator, [("a.txt", b"abc")])
    doto_emulator.clear_storage_requests()
    assert attachment.data_url is not None
    requests.get(attachment.data_url, headers={"api_access_token": doto_emulator.token}, timeout=10)
    (stored,) = doto_emulator.storage_requests
    assert _token_reached(stored)


def test_streamed_in_chunks(download: Download, doto_emulator: Any) -> None:
    (attachment,) = _attachment(doto_emulator, [("big.bin", BIG)])
    sizes: list[int] = []

    class Sink(io.RawIOBase):
        def write(self, data: Any) -> int:
            sizes.append(len(data))
            return len(data)

    assert download(attachment, Sink(), chunk_size=10_000) == len(BIG)
    assert sum(sizes) == len(BIG) and max(sizes) <= 10_000 and len(sizes) > 100


def test_several_attachments_each_their_own_bytes(download: Download, doto_emulator: Any) -> None:
    files = [("a.txt", b"first"), ("b.txt", b"second"), ("c.png", b"\x89PNG")]
    attachments = _attachment(doto_emulator, files)
    for attachment, (_, data) in zip(attachments, files, strict=True):
        out = io.BytesIO()
        download(attachment, out)
        assert out.getvalue() == data
    assert not any(_token_reached(r) for r in doto_emulator.storage_requests)


def _assert_clean(error: DotoAttachmentError, *secrets: str) -> None:
    assert error.__cause__ is None and error.__suppress_context__
    text = "".join(traceback.format_exception(error))
    for secret in secrets:
        assert secret not in text


def test_a_missing_file_is_a_typed_error_naming_the_origin_only(
    download: Download, doto_emulator: Any
) -> None:
    (attachment,) = _attachment(doto_emulator, [("secret-name.txt", b"abc")])
    doto_emulator.reset(flavor=doto_emulator.flavor)  # the blob is gone: the redirect answers 404
    with pytest.raises(DotoAttachmentError, match=r"answered HTTP 404") as info:
        download(attachment, io.BytesIO())
    assert info.value.status == 404
    assert "secret-name" not in str(info.value) and doto_emulator.base_url.split("//")[1] in str(info.value)


def test_a_redirect_without_location(download: Download, doto_emulator: Any) -> None:
    (attachment,) = _attachment(doto_emulator, [("a.txt", b"abc")])
    doto_emulator.inject("status", status=302, path_contains="/rails/active_storage/")
    with pytest.raises(DotoAttachmentError, match="without a Location"):
        download(attachment, io.BytesIO())


def test_an_unreachable_storage_never_chains_the_transport_error(
    download: Download, doto_emulator: Any
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}/blobs/k/a.txt?sig=very-secret"
    with pytest.raises(
        DotoAttachmentError, match=r"failed \((ConnectionError|ClientConnectorError)\)"
    ) as info:
        download(url, io.BytesIO())
    _assert_clean(info.value, "very-secret", doto_emulator.token)


@pytest.fixture
def redirect_loop() -> Iterator[str]:
    """A server on another origin that redirects every request to itself."""

    class Loop(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "/again")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Loop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/start"
    server.shutdown()
    server.server_close()


def test_too_many_redirects(download: Download, doto_emulator: Any, redirect_loop: str) -> None:
    with pytest.raises(DotoAttachmentError, match="redirected more than 5 times"):
        download(redirect_loop, io.BytesIO())


def test_no_data_url_nothing_sent(download: Download, doto_emulator: Any) -> None:
    doto_emulator.clear_requests()
    with pytest.raises(DotoAttachmentError, match="no http"):
        download(api.Attachment(id=1, message_id=2), io.BytesIO())
    assert doto_emulator.requests == []


def test_the_storage_session_has_no_token(doto_emulator: Any) -> None:
    hook = DotoHook()
    assert "api_access_token" in hook.session.headers
    assert "api_access_token" not in hook._storage_session.headers
    assert hook._storage_session is not hook.session
