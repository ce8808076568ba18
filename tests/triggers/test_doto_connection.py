"""Loading the connection: only "no such connection" is a bad configuration (DotoConfigError). Any
other failure of the lookup (a secrets backend or the metadata DB briefly down) keeps its own type
and cause on both hooks, and a trigger waits it out like any transient failure."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

POLL = 0.02
GUARD = 30.0  # hang protection only


def flaky_lookup(monkeypatch: pytest.MonkeyPatch, failures: list[BaseException]) -> list[str]:
    """The async connection lookup raises each of ``failures`` once, then works; returns the calls."""
    import airflow.providers.common.compat.connection as compat

    real = compat.get_async_connection
    calls: list[str] = []

    async def lookup(conn_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(conn_id)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return await real(conn_id, *args, **kwargs)

    monkeypatch.setattr(compat, "get_async_connection", lookup)
    return calls


async def events(trigger: NewMessageTrigger) -> list[Any]:
    return [event async for event in trigger.run()]


def test_trigger_waits_out_a_secrets_backend_failure_and_fires(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cid = doto_emulator.add_conversation()
    message = doto_emulator.add_message(cid, "hello")
    outage = [RuntimeError("secrets backend unavailable"), OSError("metadata DB unreachable")] * 2
    calls = flaky_lookup(monkeypatch, outage)
    trigger = NewMessageTrigger(cid, start=0, poll_interval=POLL, max_failures=len(outage) + 1)
    got = asyncio.run(asyncio.wait_for(events(trigger), GUARD))
    assert [e.payload["status"] for e in got] == ["success"]
    assert [m["id"] for m in got[0].payload["messages"]] == [message["id"]]
    assert len(calls) == len(outage) + 1  # looked up again after each failure, then kept
    log = capsys.readouterr().out  # the trigger logs through Airflow's structlog, to the console
    assert "failed (1 of 5): RuntimeError" in log and "failed (4 of 5): OSError" in log


def test_a_lookup_that_keeps_failing_ends_with_its_own_type_not_a_config_error(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky_lookup(monkeypatch, [RuntimeError("secrets backend unavailable")] * 10)
    trigger = NewMessageTrigger(1, start=0, poll_interval=POLL, max_failures=3)
    (event,) = asyncio.run(asyncio.wait_for(events(trigger), GUARD))
    assert event.payload["status"] == "error"
    assert event.payload["error_type"] == "RuntimeError"
    assert "after 3 consecutive failed polls" in event.payload["error"]
    assert doto_emulator.requests == []


def test_a_watcher_outlasts_a_long_lookup_outage(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = doto_emulator.add_conversation()
    flaky_lookup(monkeypatch, [RuntimeError("secrets backend unavailable")] * 4)
    trigger = NewMessageTrigger(cid, poll_interval=POLL, max_failures=2)
    trigger.trigger_id, trigger.task_instance = 1, None  # as the triggerer sets up an AssetWatcher

    async def first_event() -> Any:
        """The watcher's first event, for a message added once it reaches the server again."""
        gen = trigger.run()
        try:
            collected = asyncio.ensure_future(anext(gen))  # type: ignore[call-overload]
            while not doto_emulator.requests:
                await asyncio.sleep(POLL)
            doto_emulator.add_message(cid, "after the outage")
            return await collected
        finally:
            await gen.aclose()  # type: ignore[attr-defined]

    event = asyncio.run(asyncio.wait_for(first_event(), GUARD))
    assert event.payload["status"] == "success"


def test_connection_not_defined_is_still_a_config_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DOTO_NOWHERE", raising=False)
    trigger = NewMessageTrigger(1, doto_conn_id="doto_nowhere", start=0, poll_interval=POLL)
    (event,) = asyncio.run(asyncio.wait_for(events(trigger), GUARD))
    assert event.payload["status"] == "error" and event.payload["error_type"] == "DotoConfigError"
    assert "doto_nowhere" in event.payload["error"]


def test_a_bug_after_the_connection_is_loaded_ends_the_trigger(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the lookup's own failures are waited out; anything else is raised, not retried."""
    polls: list[int] = []

    async def broken_poll(self: DotoAsyncHook, watch: Any, conversation_id: int) -> Any:
        await self.get_settings()
        polls.append(conversation_id)
        raise KeyError("a bug")

    monkeypatch.setattr(DotoAsyncHook, "poll", broken_poll)
    trigger = NewMessageTrigger(1, start=0, poll_interval=POLL, max_failures=5)
    with pytest.raises(KeyError):
        asyncio.run(asyncio.wait_for(events(trigger), GUARD))
    assert polls == [1]


# ---- the hooks: which failure is a DotoConfigError ---------------------------------------------


@pytest.mark.parametrize("client", ["sync", "async"])
def test_not_defined_is_a_config_error_caused_by_airflows_not_found(
    monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DOTO_NOWHERE", raising=False)
    with pytest.raises(DotoConfigError) as raised:
        if client == "sync":
            DotoHook("doto_nowhere").settings  # noqa: B018
        else:
            asyncio.run(DotoAsyncHook("doto_nowhere").get_settings())
    assert "doto_nowhere" in str(raised.value)
    assert isinstance(raised.value.__cause__, AirflowNotFoundException)


@pytest.mark.parametrize("failure", [RuntimeError("secrets backend unavailable"), OSError("DB down")])
@pytest.mark.parametrize("client", ["sync", "async"])
def test_any_other_lookup_failure_keeps_its_type_and_cause(
    monkeypatch: pytest.MonkeyPatch, client: str, failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise failure

    async def abroken(*args: Any, **kwargs: Any) -> Any:
        raise failure

    if client == "sync":
        monkeypatch.setattr(DotoHook, "get_connection", classmethod(broken))
        with pytest.raises(type(failure)) as raised:
            DotoHook("doto_default").settings  # noqa: B018
    else:
        import airflow.providers.common.compat.connection as compat

        monkeypatch.setattr(compat, "get_async_connection", abroken)
        hook = DotoAsyncHook("doto_default")
        with pytest.raises(type(failure)) as raised:
            asyncio.run(hook.get_settings())
        assert not hook.connection_loaded
    assert raised.value is failure
