"""NewMessageTrigger spreads its polls: the pause after its first successful poll is random within
the interval (triggers started together do not poll together forever); other pauses are not.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers import doto as trigger_module
from airflow_provider_doto.triggers.doto import NewMessageTrigger

POLL = 0.05


def gets(emu: DotoEmulator, cid: int) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and f"/conversations/{cid}/" in r.path + "/")


@pytest.fixture
def uniform_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    calls: list[tuple[float, float]] = []

    def spy(low: float, high: float) -> float:
        calls.append((low, high))
        return high / 2

    monkeypatch.setattr(trigger_module.random, "uniform", spy)
    return calls


def _wait_for_event(emu: DotoEmulator, trigger: NewMessageTrigger, cid: int, polls_before: int) -> Any:
    async def go() -> Any:
        gen = trigger.run()
        task = asyncio.ensure_future(anext(gen))  # type: ignore[call-overload]
        while gets(emu, cid) < polls_before:
            await asyncio.sleep(0.01)
        emu.add_message(cid, "are you there?")
        try:
            return await task
        finally:
            await gen.aclose()  # type: ignore[attr-defined]

    return asyncio.run(asyncio.wait_for(go(), 30))


def test_only_the_first_pause_is_random_within_the_interval(
    doto_emulator: DotoEmulator, uniform_calls: list[tuple[float, float]]
) -> None:
    cid = doto_emulator.add_conversation()
    trigger = NewMessageTrigger(cid, start=int(time.time()), poll_interval=POLL)
    event = _wait_for_event(doto_emulator, trigger, cid, polls_before=4)
    assert event.payload["status"] == "success"
    assert uniform_calls == [(0.0, POLL)]


def test_a_rate_limited_first_poll_keeps_retry_after_and_the_next_success_is_spread(
    doto_emulator: DotoEmulator, uniform_calls: list[tuple[float, float]]
) -> None:
    cid = doto_emulator.add_conversation()
    # Retry-After (1 s) must never be shortened by the spread: no random pause of (0, 1.0) here.
    doto_emulator.inject("status", times=1, status=429, retry_after=1)
    trigger = NewMessageTrigger(cid, start=int(time.time()), poll_interval=POLL)
    event = _wait_for_event(doto_emulator, trigger, cid, polls_before=4)
    assert event.payload["status"] == "success"
    assert uniform_calls == [(0.0, POLL)]  # one random pause, taken after the first good poll


def test_the_pause_after_a_429_is_never_shorter_than_retry_after(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that asks to wait 5 s gets its 5 s, though the poll interval is 0.05 s. The
    trigger's pauses are recorded (and skipped) with the requests the emulator had logged by then."""
    emu = doto_emulator
    cid = emu.add_conversation()
    start = int(time.time())
    message = emu.add_message(cid, "refund please", created_at=start)
    emu.inject("status", times=1, status=429, retry_after=5)
    pauses: list[tuple[int, float]] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        pauses.append((gets(emu, cid), delay))
        await real_sleep(0)

    monkeypatch.setattr(trigger_module, "asyncio", SimpleNamespace(sleep=sleep))
    trigger = NewMessageTrigger(cid, start=start, poll_interval=POLL)

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(events(), 30))
    assert [m["id"] for m in event.payload["messages"]] == [message["id"]]
    # One pause, after the one request that was answered 429, then the poll that found the message.
    assert [count for count, _ in pauses] == [1]
    assert pauses[0][1] >= 5.0
