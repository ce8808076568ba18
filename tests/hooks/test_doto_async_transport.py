"""DotoAsyncHook's transport choices (aiohttp): one pooled session per event loop, closed with the
loop; proxy variables honoured like the sync hook's requests. Against the emulator over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_doto.hooks import doto_async
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook, shared_session
from airflow_provider_doto.testing import DotoEmulator


@pytest.fixture
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


def test_hooks_share_one_session_per_loop_and_it_closes_with_the_loop(
    doto_emulator: DotoEmulator, cid: int, caplog: pytest.LogCaptureFixture
) -> None:
    sessions: list[Any] = []

    async def two_hooks() -> None:
        await DotoAsyncHook().list_messages(cid)
        await DotoAsyncHook().send_message(cid, "hello", message_type="outgoing")
        sessions.append(shared_session())
        assert shared_session() is sessions[-1]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(two_hooks())
        asyncio.run(two_hooks())
        gc.collect()
    first, second = sessions
    assert first is not second  # a new loop gets a new session
    assert first.closed and second.closed
    assert doto_async._sessions == {}
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert "Unclosed" not in caplog.text
    assert [r.method for r in doto_emulator.requests] == ["GET", "POST", "GET", "POST"]


class PassThrough:
    """A TCP pass-through standing in for an HTTP proxy (the emulator accepts absolute-form targets)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(self.upstream)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[PassThrough]:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    p = PassThrough((doto_emulator.host, doto_emulator.port))
    monkeypatch.setenv("http_proxy", p.url)
    yield p
    p.listener.close()


def test_http_proxy_from_the_environment_carries_the_requests(
    doto_emulator: DotoEmulator, cid: int, proxy: PassThrough
) -> None:
    asyncio.run(DotoAsyncHook().list_messages(cid))
    assert proxy.connections == 1
    assert [r.method for r in doto_emulator.requests] == ["GET"]


def test_no_proxy_from_the_environment_bypasses_the_proxy(
    doto_emulator: DotoEmulator, cid: int, proxy: PassThrough, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    asyncio.run(DotoAsyncHook().list_messages(cid))
    assert proxy.connections == 0
    assert [r.method for r in doto_emulator.requests] == ["GET"]
