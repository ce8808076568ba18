"""Both hooks take proxy and CA-bundle settings from the environment, as requests does, but read
them once per hook rather than on every request. Against the emulator over real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator


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
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


def _sync_list(cid: int) -> None:
    DotoHook().list_messages(cid)


def _async_list(cid: int) -> None:
    asyncio.run(DotoAsyncHook().list_messages(cid))


HOOKS = pytest.mark.parametrize("list_messages", [_sync_list, _async_list], ids=["sync", "async"])


@pytest.fixture
def proxy(doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[PassThrough]:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    p = PassThrough((doto_emulator.host, doto_emulator.port))
    monkeypatch.setenv("http_proxy", p.url)
    yield p
    p.listener.close()


@HOOKS
def test_http_proxy_from_the_environment_carries_the_requests(
    doto_emulator: DotoEmulator, cid: int, proxy: PassThrough, list_messages: Callable[[int], None]
) -> None:
    list_messages(cid)
    list_messages(cid)
    assert proxy.connections >= 1
    assert [r.method for r in doto_emulator.requests] == ["GET", "GET"]


@HOOKS
def test_no_proxy_from_the_environment_bypasses_the_proxy(
    doto_emulator: DotoEmulator,
    cid: int,
    proxy: PassThrough,
    monkeypatch: pytest.MonkeyPatch,
    list_messages: Callable[[int], None],
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    list_messages(cid)
    assert proxy.connections == 0
    assert [r.method for r in doto_emulator.requests] == ["GET"]


def test_sync_hook_takes_the_ca_bundle_from_the_environment(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/corporate.pem")
    assert DotoHook().session.verify == "/etc/ssl/certs/corporate.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert DotoHook().session.verify is True
