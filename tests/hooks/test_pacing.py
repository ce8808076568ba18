"""Pacing against a rack-attack-style throttle (the emulator's), both hooks, both server flavors.

The emulator throttles like Chatwoot: a fixed window per client, aligned to the epoch, 429
``text/plain`` "Retry later" without ``Retry-After``. Windows here are 2 s (30 requests), so a
batch spans several of them; every assertion is on counts and outcomes, none on durations.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.hooks import _pacing
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

LIMIT, PERIOD = 30, 2  # the server's throttle: 30 requests per client per 2 s window
UNDER = 600  # requests a minute: 20 per window, +6 burst = 26 <= 30
OVER = 1_800  # 60 per window: twice the limit
GUARD = 120.0  # hang protection only


def connect(emu: DotoEmulator, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """``doto_default`` on the emulator, its flavor named (no detection requests), paced as given."""
    extra = {"flavor": emu.flavor, "rate_limit_window_seconds": PERIOD, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(**extra))


def batch(emu: DotoEmulator, n: int) -> list[api.BatchItem]:
    return [api.BatchItem(emu.add_conversation(), f"Hi #{i}") for i in range(n)]


def send(items: list[api.BatchItem], max_in_flight: int = 10) -> list[api.BatchResult]:
    hook = DotoAsyncHook(retry_policy=api.RetryPolicy(attempts=3, backoff=0.01))
    return asyncio.run(asyncio.wait_for(hook.send_messages(items, max_in_flight=max_in_flight), GUARD))


def stored_once(emu: DotoEmulator, items: list[api.BatchItem]) -> bool:
    return all([m["content"] for m in emu.messages(i.conversation_id)] == [i.content] for i in items)


@pytest.mark.doto_throttle(LIMIT, PERIOD)
def test_a_paced_batch_larger_than_the_window_sends_each_message_once_unrefused(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=UNDER)
    items = batch(emu, 3 * LIMIT)

    results = send(items)

    assert Counter(r.status for r in results) == {"sent": len(items)}
    assert stored_once(emu, items)
    posts = [r for r in emu.requests if r.method == "POST"]
    # The pace stays under the limit: the server (almost) never has to refuse. A loaded machine can
    # hold a few requests back into the next window, hence a small share rather than none.
    assert emu.throttled_requests <= 0.02 * len(posts) + 1


@pytest.mark.doto_throttle(LIMIT, PERIOD)
def test_a_pace_over_the_limit_pauses_on_429_slows_down_and_still_sends_each_once(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=OVER)
    items = batch(emu, 3 * LIMIT)

    results = send(items)

    assert Counter(r.status for r in results) == {"sent": len(items)}
    assert stored_once(emu, items)
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) == len(items) + emu.throttled_requests  # a refused POST is the only resend
    assert emu.throttled_requests >= 1
    # Each 429 paused every request: only those already in flight met the closed window too.
    assert emu.throttled_requests <= 0.15 * len(posts)
    (pacer,) = _pacing._pacers.values()
    assert pacer.pacer.pauses >= 1 and pacer.pacer.throttles == emu.throttled_requests
    assert any("the server throttled" in r.getMessage() for r in caplog.records)
    # The retry policy's backoff was never spent on a rate limit.
    assert not any("DotoRateLimitError; retry" in r.getMessage() for r in caplog.records)


@pytest.mark.doto_throttle(LIMIT, PERIOD)
def test_today_s_unpaced_batch_hammers_the_closed_window(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison: ``max_requests_per_minute: 0`` is the per-request retry alone (1, 2, 4 s)."""
    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=0)
    items = batch(emu, 3 * LIMIT)

    results = send(items)

    assert all(r.status in ("sent", "failed") for r in results)
    assert emu.throttled_requests > 0.15 * len([r for r in emu.requests if r.method == "POST"])


@pytest.mark.doto_throttle(LIMIT, PERIOD)
def test_sync_hooks_in_threads_share_one_pace(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four threads, each with its own DotoHook: one pacer for the connection, under the limit."""
    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=UNDER)
    items = batch(emu, 2 * LIMIT)
    errors: list[BaseException] = []

    def worker(part: list[api.BatchItem]) -> None:
        hook = DotoHook()
        try:
            for item in part:
                hook.send_message(item.conversation_id, item.content)
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            hook.session.close()

    threads = [threading.Thread(target=worker, args=(items[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)

    assert errors == []
    assert stored_once(emu, items)
    assert len(_pacing._pacers) == 1
    assert emu.throttled_requests <= 0.02 * len(items) + 1


@pytest.mark.doto_throttle(5, 3600)
def test_a_throttle_outlasting_the_budget_fails_the_rest_with_the_figures(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hour-long window, 2 s of budget: after the first 5 the server refuses until the hour turns,
    so every item not sent fails with DotoRateLimitError naming the limit and the time waited, and
    nothing is sent twice."""
    emu = doto_emulator
    connect(
        emu,
        monkeypatch,
        max_requests_per_minute=6_000,
        rate_limit_wait_seconds=2,
        rate_limit_window_seconds=3600,
    )
    items = batch(emu, 20)

    results = send(items, max_in_flight=4)

    by_status = Counter(r.status for r in results)
    assert by_status == {"sent": 5, "failed": 15}
    for result in results:
        if result.status == "failed":
            assert "HTTP 429" in result.error and "rate_limit_wait_seconds (2 s)" in result.error
            assert "6,000 a minute (max_requests_per_minute)" in result.error
    sent = [i for i, r in zip(items, results, strict=True) if r.status == "sent"]
    assert stored_once(emu, sent)
    # Only the requests in flight when the window closed were refused: the rest never went out.
    assert emu.throttled_requests <= 4


@pytest.mark.doto_throttle(5, PERIOD)
def test_a_trigger_s_polls_wait_for_the_window_after_a_429(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trigger polling far faster than the server allows: its one-attempt polls report a 429, and
    the connection's pacer holds its next poll until the window has turned, so each window sees at
    most one refused poll and the trigger never reaches its failure limit."""
    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=6_000)
    cid = emu.add_conversation()
    start = int(emu.clock.now())
    trigger = NewMessageTrigger(cid, start=start, poll_interval=0.01, max_failures=2)
    polls = 4 * 5  # about four windows of polls before the customer writes

    def write_later() -> None:
        while len([r for r in emu.requests if r.method == "GET"]) < polls:
            threading.Event().wait(0.05)
        emu.add_message(cid, "refund please")

    writer = threading.Thread(target=write_later, daemon=True)
    writer.start()

    async def first() -> Any:
        gen = trigger.run()
        try:
            return await anext(gen)  # type: ignore[call-overload]
        finally:
            await gen.aclose()  # type: ignore[attr-defined]

    event = asyncio.run(asyncio.wait_for(first(), GUARD))
    writer.join(GUARD)

    assert event.payload["status"] == "success"
    throttle = emu._throttle
    assert throttle is not None and emu.throttled_requests >= 1
    # At most one refused poll per window the polls spanned (each window admits 5).
    assert throttle.throttled <= throttle.allowed / 5 + 1


@pytest.mark.doto_throttle(5, PERIOD)
def test_a_sensor_poking_faster_than_the_limit_waits_for_the_window_instead_of_failing(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Poke mode (the sync hook, its default retry policy): a 429 is waited out inside the poke, so
    30 pokes against 5 requests a window never raise, and each window sees at most one refusal."""
    from airflow.sdk import PokeReturnValue

    from airflow_provider_doto.sensors.doto import NewMessageSensor

    emu = doto_emulator
    connect(emu, monkeypatch, max_requests_per_minute=6_000)
    cid = emu.add_conversation()
    start = int(emu.clock.now()) - 60
    sensor = NewMessageSensor(task_id="wait", conversation_id=cid, start=start)

    results = [sensor.poke({}) for _ in range(30)]  # type: ignore[arg-type]  # no run context needed
    emu.add_message(cid, "refund please", created_at=start + 1)
    done = sensor.poke({})  # type: ignore[arg-type]

    assert results == [False] * 30
    assert isinstance(done, PokeReturnValue) and [m["content"] for m in done.xcom_value] == ["refund please"]
    throttle = emu._throttle
    assert throttle is not None and throttle.throttled >= 1
    assert throttle.throttled <= throttle.allowed / 5 + 1
