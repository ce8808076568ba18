"""DotoAsyncHook's transport (aiohttp): one pooled session per event loop, closed with the loop.
Against the emulator over real HTTP. (Proxy settings: test_doto_proxy.py.)
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest

from airflow_provider_doto.hooks import doto_async
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook, shared_session
from airflow_provider_doto.testing.emulator import DotoEmulator


@pytest.fixture
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


def test_hooks_share_one_session_per_loop_and_it_closes_with_the_loop(
    doto_emulator: DotoEmulator, cid: int, caplog: pytest.LogCaptureFixture, pinned_flavor: str
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
