"""NewMessageTrigger, driven with asyncio against the emulator over real HTTP.

Task mode (deferred from the sensor): one event, then the generator ends. Watcher mode (an
``AssetWatcher`` in the triggerer: ``trigger_id`` set, no task instance, an ``asset_state_store``):
one event per batch, forever, with the cursor kept in the store across trigger restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import json
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from airflow_versions import HAS_STATE_STORES

from airflow_provider_doto import api, exceptions
from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError, DotoError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger, messages_from_event

POLL = 0.05
GUARD = 30.0  # hang protection only: every wait below ends on an event, not on a clock


# ---- helpers ---------------------------------------------------------------------------------


def gets(emu: DotoEmulator, cid: int) -> int:
    """How many list requests for this conversation reached the emulator."""
    return sum(1 for r in emu.requests if r.method == "GET" and f"/conversations/{cid}/" in r.path + "/")


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def events_of(trigger: NewMessageTrigger) -> AsyncGenerator[TriggerEvent, None]:
    return trigger.run()  # type: ignore[return-value]  # an async generator, typed as an iterator


async def first_event(trigger: NewMessageTrigger) -> TriggerEvent:
    gen = events_of(trigger)
    try:
        return await anext(gen)
    finally:
        await gen.aclose()


async def all_events(trigger: NewMessageTrigger) -> list[TriggerEvent]:
    """Every event of a trigger that is expected to end by itself (task mode)."""
    return [event async for event in trigger.run()]


def rebuild(trigger: NewMessageTrigger) -> NewMessageTrigger:
    """What the triggerer does: import the classpath and call it with the serialised kwargs."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


def ids(event: TriggerEvent) -> list[int]:
    return [m["id"] for m in event.payload["messages"]]


class MemoryStore:
    """Stands in for the triggerer's ``AssetStateStoreAccessors`` (``aget`` / ``aset``)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.data.get(key, default))

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))  # the real store only takes JSON
        self.writes += 1


def saved_ids(store: MemoryStore) -> set[int]:
    """Message ids the stored cursor is past for good (seen, and no longer pending)."""
    return {mid for state in store.data.values() for mid, _ in state.get("seen", [])} - pending_ids(store)


def pending_ids(store: MemoryStore) -> set[int]:
    """Message ids the stored cursor holds as announced but perhaps not stored by Airflow."""
    return {m["id"] for state in store.data.values() for batch in state.get("pending", []) for m in batch}


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handed-over event counts as stored from the next poll on (the real wait is seconds)."""
    monkeypatch.setattr(NewMessageTrigger, "event_settle_seconds", 0.0)


class BrokenStore:
    async def aget(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("state store unavailable")

    async def aset(self, key: str, value: Any) -> None:
        raise RuntimeError("state store unavailable")


def as_watcher(trigger: NewMessageTrigger, store: Any = None, trigger_id: int = 1) -> NewMessageTrigger:
    """Set the trigger up the way the triggerer sets up an AssetWatcher's trigger."""
    trigger.trigger_id = trigger_id
    trigger.task_instance = None
    trigger.asset_state_store = store
    return trigger


class EventCollector:
    """Runs a watcher like the triggerer does (``async for``), collecting its events."""

    def __init__(self, trigger: NewMessageTrigger) -> None:
        self.trigger = trigger
        self.events: list[TriggerEvent] = []
        self.task: asyncio.Task[None] = asyncio.ensure_future(self._consume())

    async def _consume(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event)

    async def wait_events(self, n: int) -> None:
        await until(lambda: len(self.events) >= n or self.task.done())
        if self.task.done():
            self.task.result()  # surface an exception
            raise AssertionError(f"the watcher returned after {len(self.events)} event(s)")

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


@pytest.fixture
def start() -> int:
    return int(time.time()) - 60


# ---- serialisation ---------------------------------------------------------------------------


def full_trigger(cid: int, start: int, state: dict[str, Any] | None = None) -> NewMessageTrigger:
    return NewMessageTrigger(
        conversation_id=cid,
        doto_conn_id="doto_default",
        start=start,
        poll_interval=0.25,
        message_types=["incoming", "outgoing"],
        include_private=True,
        sender_types=["Contact"],
        content_pattern="refund|return",
        min_messages=2,
        overlap=7,
        max_failures=3,
        state=state,
        timeout_at=start + 3600.5,
    )


def test_serialize_round_trip_rebuilds_an_equal_trigger(cid: int, start: int) -> None:
    trigger = full_trigger(cid, start)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_doto.triggers.doto.NewMessageTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON, no tuples or objects
    again = rebuild(trigger)
    assert type(again) is NewMessageTrigger
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["sender_types"] == ["Contact"] and kwargs["content_pattern"] == "refund|return"
    assert kwargs["min_messages"] == 2 and kwargs["overlap"] == 7 and kwargs["timeout_at"] == start + 3600.5


def test_kwargs_survive_airflows_own_trigger_encoding(cid: int, start: int) -> None:
    """The triggerer decodes kwargs stored by Airflow's encoder; the trigger must come back the same."""
    try:
        from airflow.serialization.decoders import smart_decode_trigger_kwargs
        from airflow.serialization.encoders import encode_trigger
    except ImportError:  # Airflow 3.1: both in serialized_objects
        from airflow.serialization.serialized_objects import (
            _encode_trigger as encode_trigger,
        )
        from airflow.serialization.serialized_objects import (
            smart_decode_trigger_kwargs,
        )

    state = api.MessageWatch(start=start, position=start + 5, seen={11: start + 5}).to_state()
    trigger = full_trigger(cid, start, state=state)
    encoded = encode_trigger(trigger)
    decoded = {k: smart_decode_trigger_kwargs(v) for k, v in encoded["kwargs"].items()}
    assert NewMessageTrigger(**decoded).serialize() == trigger.serialize()


def test_serialised_kwargs_never_hold_the_token(doto_emulator: DotoEmulator, cid: int, start: int) -> None:
    trigger = full_trigger(cid, start)
    _, kwargs = trigger.serialize()
    text = json.dumps(kwargs)
    assert doto_emulator.token not in text
    assert "password" not in text and "api_access_token" not in text
    assert kwargs["doto_conn_id"] == "doto_default"  # only the connection's id travels


def test_cursor_in_state_survives_serialisation(doto_emulator: DotoEmulator, cid: int, start: int) -> None:
    """The sensor's cursor handed to the trigger: what it already returned is never reported again."""
    emu = doto_emulator
    first = emu.add_message(cid, "first")
    watch = api.MessageWatch(start=start)
    assert [m.id for m in DotoHook().poll(watch, cid) or []] == [first["id"]]

    trigger = rebuild(NewMessageTrigger(cid, start=start, poll_interval=POLL, state=watch.to_state()))
    assert trigger.state == watch.to_state()

    async def scenario() -> TriggerEvent:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: gets(emu, cid) >= 2)  # the trigger has polled and found nothing new
        second = emu.add_message(cid, "second")
        event = await pending
        await gen.aclose()
        assert ids(event) == [second["id"]]
        return event

    run(scenario())


def test_watcher_kwargs_are_deterministic(cid: int) -> None:
    """Two parses of a DAG build the same watcher trigger: Airflow keeps one trigger, not two."""
    a = NewMessageTrigger(conversation_id=cid, poll_interval=30)
    b = NewMessageTrigger(conversation_id=str(cid), poll_interval=30.0)  # type: ignore[arg-type]
    (path_a, kwargs_a), (path_b, kwargs_b) = a.serialize(), b.serialize()
    assert kwargs_a["start"] is None and kwargs_a["state"] is None and kwargs_a["timeout_at"] is None
    assert BaseEventTrigger.hash(path_a, kwargs_a) == BaseEventTrigger.hash(path_b, kwargs_b)
    other = NewMessageTrigger(conversation_id=cid + 1, poll_interval=30)
    assert BaseEventTrigger.hash(*other.serialize()) != BaseEventTrigger.hash(path_a, kwargs_a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conversation_id": 0},
        {"conversation_id": "abc"},
        {"conversation_id": 1, "poll_interval": 0},
        {"conversation_id": 1, "message_types": ["bogus"]},
        {"conversation_id": 1, "content_pattern": "("},
        {"conversation_id": 1, "start": 0, "min_messages": 0},
        {"conversation_id": 1, "start": 0, "overlap": -1},
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DotoConfigError):
        NewMessageTrigger(**kwargs)


# ---- task mode -----------------------------------------------------------------------------


def test_task_mode_fires_once_with_new_matching_messages_then_ends(
    doto_emulator: DotoEmulator, cid: int, start: int
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "before the start", created_at=start - 100)
    trigger = NewMessageTrigger(
        cid, start=start, poll_interval=POLL, content_pattern="refund", min_messages=2
    )

    async def scenario() -> list[TriggerEvent]:
        collected: list[TriggerEvent] = []

        async def consume() -> None:
            async for event in trigger.run():
                collected.append(event)

        task = asyncio.ensure_future(consume())
        await until(lambda: gets(emu, cid) >= 1)
        emu.add_message(cid, "refund one")
        emu.add_message(cid, "refund but outgoing", message_type="outgoing")
        emu.add_message(cid, "refund private", message_type="outgoing", private=True)
        emu.add_message(cid, "hello, no keyword")
        deleted = emu.add_message(cid, "refund deleted", content_attributes={"deleted": True})
        assert deleted
        await until(lambda: gets(emu, cid) >= 3)  # polled since: one match is not enough
        assert not task.done()
        emu.add_message(cid, "refund two")
        await task  # task mode ends by itself after its one event
        return collected

    events = run(scenario())
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success" and payload["conversation_id"] == cid
    assert [m["content"] for m in payload["messages"]] == ["refund one", "refund two"]
    assert json.loads(json.dumps(payload)) == payload
    assert messages_from_event(payload) == payload["messages"]


def test_gets_its_connection_through_the_async_helper(
    doto_emulator: DotoEmulator, cid: int, start: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection comes from AIRFLOW_CONN_DOTO_DEFAULT via Airflow's async connection helper."""
    import airflow.providers.common.compat.connection as compat

    seen: list[str] = []
    real = compat.get_async_connection

    async def spy(conn_id: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(conn_id)
        return await real(conn_id, *args, **kwargs)

    monkeypatch.setattr(compat, "get_async_connection", spy)
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_WATCH", doto_emulator.connection_uri())
    doto_emulator.add_message(cid, "hi")
    event = run(
        first_event(NewMessageTrigger(cid, doto_conn_id="doto_watch", start=start, poll_interval=POLL))
    )
    assert event.payload["status"] == "success" and len(event.payload["messages"]) == 1
    assert seen == ["doto_watch"]


def test_missing_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DOTO_NOWHERE", raising=False)
    events = run(all_events(NewMessageTrigger(1, doto_conn_id="doto_nowhere", start=0, poll_interval=POLL)))
    assert len(events) == 1
    assert events[0].payload["status"] == "error"
    assert events[0].payload["error_type"] == "DotoConfigError"
    assert "doto_nowhere" in events[0].payload["error"]


@pytest.mark.parametrize(("status", "error_type"), [(401, "DotoAuthError"), (404, "DotoNotFoundError")])
def test_fatal_status_ends_at_once_with_an_error_event(
    doto_emulator: DotoEmulator, cid: int, start: int, status: int, error_type: str
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "would match")
    emu.inject("status", times=10, status=status)
    events = run(all_events(NewMessageTrigger(cid, start=start, poll_interval=POLL, max_failures=5)))
    assert [e.payload["status"] for e in events] == ["error"]
    assert events[0].payload["error_type"] == error_type
    assert f"HTTP {status}" in events[0].payload["error"]
    assert emu.token not in json.dumps(events[0].payload)
    assert gets(emu, cid) == 1  # no retry, no second poll


@pytest.mark.parametrize(
    ("kind", "status"), [("status", 503), ("status", 429), ("status", 502), ("drop_before", None)]
)
def test_transient_failures_back_off_and_continue(
    doto_emulator: DotoEmulator,
    cid: int,
    start: int,
    kind: str,
    status: int | None,
    pinned_flavor: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = doto_emulator
    # After a 429 without Retry-After the connection's pacer holds the next poll until the server's
    # window can have turned: a 1 s window here (the default is Chatwoot's minute).
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(flavor=pinned_flavor, rate_limit_window_seconds=1)
    )
    message = emu.add_message(cid, "refund please")
    emu.inject(kind, times=3, status=status)  # type: ignore[arg-type]
    events = run(all_events(NewMessageTrigger(cid, start=start, poll_interval=POLL, max_failures=4)))
    assert [e.payload["status"] for e in events] == ["success"]
    assert ids(events[0]) == [message["id"]]
    if kind == "status":
        # Three failed polls, each tried once, then the good one (on Chatwoot: the window's first
        # id, then the listing).
        assert gets(emu, cid) == 4 + (pinned_flavor == "chatwoot")


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "text"),
    [
        ("status", 503, "DotoServerError", "HTTP 503"),
        ("drop_before", None, "DotoConnectionLostError", "connection broke"),
    ],
)
def test_n_consecutive_failures_end_with_the_typed_error(
    doto_emulator: DotoEmulator,
    cid: int,
    start: int,
    kind: str,
    status: int | None,
    error_type: str,
    text: str,
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "never seen")
    emu.inject(kind, times=50, status=status)  # type: ignore[arg-type]
    events = run(all_events(NewMessageTrigger(cid, start=start, poll_interval=POLL, max_failures=3)))
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "error" and payload["error_type"] == error_type
    assert text in payload["error"] and "after 3 consecutive failed polls" in payload["error"]
    if kind == "status":
        assert gets(emu, cid) == 3  # (a dropped keep-alive connection may be re-sent by the HTTP client)

    # The sensor raises that error again, as its own class (what poke mode raises), with its text.
    sensor = NewMessageSensor(task_id="wait", conversation_id=cid, deferrable=True)
    with pytest.raises(DotoError) as raised:
        sensor.execute_complete(context={}, event=payload)  # type: ignore[arg-type]
    assert type(raised.value).__name__ == error_type
    assert f"{error_type}: {raised.value}" == payload["error"]
    assert (raised.value.method, raised.value.path) == (
        "GET",
        f"/api/v1/accounts/1/conversations/{cid}/messages",
    )
    if kind == "status":
        assert raised.value.status == status  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error",
    [
        DotoAuthError(
            "Doto GET /p failed with HTTP 401: Invalid Access Token", method="GET", path="/p", status=401
        ),
        DotoConfigError("Doto connection 'doto_default' has no Account ID"),
        exceptions.DotoRateLimitError(
            "Doto GET /p failed with HTTP 429", method="GET", path="/p", status=429, retry_after=3.0
        ),
        exceptions.DotoTimeoutError("Doto GET /p: no answer within 30 s", method="GET", path="/p"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_event_is_raised_again_as_the_error_the_trigger_met(error: DotoError) -> None:
    """Trigger event -> the triggerer's JSON -> the resumed sensor (or a watcher's DAG): the same
    class, text and fields, so ``except DotoAuthError`` works as in poke mode."""
    event = NewMessageTrigger(5)._error_event(error)
    payload = json.loads(json.dumps(event.payload))
    for read in (
        messages_from_event,
        lambda p: NewMessageSensor(task_id="wait", conversation_id=5).execute_complete({}, p),  # type: ignore[arg-type]
    ):
        with pytest.raises(DotoError) as raised:
            read(payload)
        assert type(raised.value) is type(error)
        assert str(raised.value) == str(error) and vars(raised.value) == vars(error)


def test_an_error_event_of_a_foreign_error_is_a_trigger_error() -> None:
    """A connection lookup's own failure (not a provider error) ends the wait as DotoTriggerError."""
    payload = json.loads(json.dumps(NewMessageTrigger(5)._error_event(RuntimeError("backend down")).payload))
    assert payload["error_type"] == "RuntimeError" and payload["error_fields"] == {}
    with pytest.raises(exceptions.DotoTriggerError, match=r"^RuntimeError$"):
        messages_from_event(payload)


def test_timeout_at_ends_an_empty_wait_with_a_timeout_event(
    doto_emulator: DotoEmulator, cid: int, start: int
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "outgoing does not count", message_type="outgoing")
    trigger = NewMessageTrigger(cid, start=start, poll_interval=POLL, timeout_at=time.time() + 0.5)
    events = run(all_events(trigger))
    assert [e.payload["status"] for e in events] == ["timeout"]
    assert gets(emu, cid) >= 2  # it kept polling until the deadline

    sensor = NewMessageSensor(task_id="wait", conversation_id=cid, deferrable=True)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete(context={}, event=events[0].payload)  # type: ignore[arg-type]


def test_execute_complete_returns_the_messages_of_a_success_event(
    doto_emulator: DotoEmulator, cid: int, start: int
) -> None:
    doto_emulator.add_message(cid, "hello")
    event = run(first_event(NewMessageTrigger(cid, start=start, poll_interval=POLL)))
    sensor = NewMessageSensor(task_id="wait", conversation_id=cid, deferrable=True)
    assert sensor.execute_complete(context={}, event=event.payload) == event.payload["messages"]  # type: ignore[arg-type]


# ---- watcher mode --------------------------------------------------------------------------


def test_watcher_yields_one_event_per_batch_and_never_returns(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.add_message(cid, "old news", created_at=int(time.time()) - 3600)
    store = MemoryStore()
    trigger = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), store)

    async def scenario() -> list[TriggerEvent]:
        watcher = EventCollector(trigger)
        await until(lambda: gets(emu, cid) >= 1)
        m1 = emu.add_message(cid, "one")
        await watcher.wait_events(1)
        m2 = emu.add_message(cid, "two", late=1)  # hidden until the next message lands: one batch
        m3 = emu.add_message(cid, "three")
        await watcher.wait_events(2)
        polls = gets(emu, cid)
        await until(lambda: gets(emu, cid) >= polls + 3)  # it keeps polling after its events
        assert not watcher.task.done()
        await watcher.stop()
        assert [ids(e) for e in watcher.events] == [[m1["id"]], [m2["id"], m3["id"]]]
        return watcher.events

    events = run(scenario())
    assert all(e.payload["status"] == "success" for e in events)
    # Every reported message is in the stored cursor: past it for good, or pending until it settles.
    assert saved_ids(store) | pending_ids(store) >= {m["id"] for e in events for m in e.payload["messages"]}


def test_restarted_watcher_resumes_from_the_stored_cursor(
    doto_emulator: DotoEmulator, cid: int, quick_settle: None
) -> None:
    """Triggerer restart: a new instance with the same kwargs and store loses and repeats nothing."""
    emu = doto_emulator
    store = MemoryStore()
    first = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), store, trigger_id=1)

    async def scenario() -> tuple[list[TriggerEvent], list[TriggerEvent], list[int]]:
        a = EventCollector(first)
        await until(lambda: gets(emu, cid) >= 1)
        sent = [emu.add_message(cid, "before restart")["id"]]
        await a.wait_events(1)
        # The batch leaves the stored cursor's pending list once its event had time to be stored.
        await until(lambda: sent[0] in saved_ids(store))
        await a.stop()

        # While the triggerer is down, two messages arrive (one committed late); the new instance
        # starts after them, so only the stored cursor (not "now") can find them.
        down_at = int(time.time()) + 1
        await until(lambda: time.time() >= down_at + 1)
        sent.append(emu.add_message(cid, "while down 1", late=1, created_at=down_at)["id"])
        sent.append(emu.add_message(cid, "while down 2", created_at=down_at)["id"])

        second = as_watcher(rebuild(first), store, trigger_id=2)
        b = EventCollector(second)
        await b.wait_events(1)
        sent.append(emu.add_message(cid, "after restart")["id"])
        await b.wait_events(2)
        await b.stop()
        return a.events, b.events, sent

    before, after, sent = run(scenario())
    reported = [i for e in before + after for i in ids(e)]
    assert reported == sent  # every message exactly once, in order
    assert ids(after[0]) == sent[1:3]


def test_watcher_stopped_before_saving_reports_again_rather_than_losing(
    doto_emulator: DotoEmulator, cid: int
) -> None:
    """The batch is saved as pending before its event leaves: a crash before it settles re-reports."""
    emu = doto_emulator
    store = MemoryStore()
    trigger = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), store)

    async def scenario() -> tuple[list[int], list[int], int]:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: gets(emu, cid) >= 1)
        message = emu.add_message(cid, "hand-over interrupted")
        event = await pending
        await gen.aclose()  # dies before asking for the next event: nothing saved for this batch
        again = await first_event(as_watcher(rebuild(trigger), store, trigger_id=2))
        return ids(event), ids(again), message["id"]

    first_ids, again_ids, mid = run(scenario())
    assert first_ids == again_ids == [mid]


def test_watcher_without_store_starts_from_now_and_misses_messages_while_down(
    doto_emulator: DotoEmulator, cid: int
) -> None:
    """No asset state store (Airflow < 3.3): each start begins at "now"; the gap is lost (documented)."""
    emu = doto_emulator
    emu.add_message(cid, "before the watcher existed", created_at=int(time.time()) - 30)
    first = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), store=None)

    async def scenario() -> tuple[list[int], list[int], int, int, int]:
        a = EventCollector(first)
        await until(lambda: gets(emu, cid) >= 1)
        m1 = emu.add_message(cid, "seen")["id"]
        await a.wait_events(1)
        await a.stop()
        missed = emu.add_message(cid, "arrived while down", created_at=int(time.time()) - 5)["id"]
        b = EventCollector(as_watcher(rebuild(first), store=None, trigger_id=2))
        polls = gets(emu, cid)
        await until(lambda: gets(emu, cid) >= polls + 2)
        m3 = emu.add_message(cid, "after restart")["id"]
        await b.wait_events(1)
        await b.stop()
        return [i for e in a.events for i in ids(e)], [i for e in b.events for i in ids(e)], m1, missed, m3

    a_ids, b_ids, m1, missed, m3 = run(scenario())
    assert a_ids == [m1]
    assert b_ids == [m3]
    assert missed not in a_ids + b_ids


def test_this_airflow_hands_watchers_a_state_store_from_3_3_on(cid: int) -> None:
    """Which watcher test above is this Airflow: 3.3+ gives triggers an ``asset_state_store`` (filled
    by the triggerer; test_restarted_watcher_resumes_from_the_stored_cursor); 3.1 and 3.2 have none
    (test_watcher_without_store_starts_from_now_and_misses_messages_while_down)."""
    trigger = NewMessageTrigger(cid, poll_interval=POLL)
    assert hasattr(trigger, "asset_state_store") is HAS_STATE_STORES
    assert trigger._state_store is None  # until a triggerer hands one over


def test_watcher_outlasts_max_failures_of_transient_errors(doto_emulator: DotoEmulator, cid: int) -> None:
    """A deferred wait gives up after max_failures; a watcher backs off and keeps going."""
    emu = doto_emulator
    trigger = as_watcher(NewMessageTrigger(cid, poll_interval=0.01, max_failures=2), MemoryStore())

    async def scenario() -> TriggerEvent:
        gen = events_of(trigger)
        pending = asyncio.ensure_future(anext(gen))
        await until(lambda: gets(emu, cid) >= 1)
        emu.inject("status", times=4, status=503)
        message = emu.add_message(cid, "after the outage")
        event = await pending
        await gen.aclose()
        assert ids(event) == [message["id"]]
        return event

    event = run(scenario())
    assert event.payload["status"] == "success"
    assert gets(emu, cid) >= 6  # the first poll, four failures, then the good one


def test_watcher_keeps_going_when_the_state_store_fails(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    trigger = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), BrokenStore())

    async def scenario() -> list[list[int]]:
        watcher = EventCollector(trigger)
        await until(lambda: gets(emu, cid) >= 1)
        m1 = emu.add_message(cid, "one")["id"]
        await watcher.wait_events(1)
        m2 = emu.add_message(cid, "two")["id"]
        await watcher.wait_events(2)
        await watcher.stop()
        assert [ids(e) for e in watcher.events] == [[m1], [m2]]
        return [ids(e) for e in watcher.events]

    run(scenario())


def test_watcher_reports_a_fatal_error_as_an_event(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.inject("status", times=1, status=401)
    trigger = as_watcher(NewMessageTrigger(cid, poll_interval=POLL), MemoryStore())

    async def scenario() -> TriggerEvent:
        gen = events_of(trigger)
        event = await anext(gen)
        await gen.aclose()
        return event

    event = run(scenario())
    assert event.payload["status"] == "error" and event.payload["error_type"] == "DotoAuthError"
    # The run its asset event starts fails with the same error a poking sensor would raise.
    with pytest.raises(DotoAuthError, match="401") as raised:
        messages_from_event(event.payload)
    assert raised.value.status == 401


# ---- the server's flavor travels with the cursor -------------------------------------------------


def probes(emu: DotoEmulator, cid: int) -> int:
    """auto's flavor probes (``after`` and ``before`` together) for this conversation."""
    return sum(
        1
        for r in emu.requests
        if r.method == "GET"
        and f"/conversations/{cid}/" in r.path + "/"
        and {"after", "before"} <= set(r.query)
    )


def forget_flavors() -> None:
    """What a new worker or triggerer process starts with: no flavor known for any server."""
    from airflow_provider_doto.hooks import doto

    doto._found_readings.clear()


def test_a_deferred_sensor_hands_the_detected_flavor_to_its_trigger(
    doto_emulator: DotoEmulator, cid: int, start: int
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "before the wait", created_at=start - 100)
    sensor = NewMessageSensor(task_id="wait", conversation_id=cid, start=start, deferrable=True)
    watch = sensor._load_watch({})
    assert sensor.hook.poll(watch, cid) is None  # the worker's first check: auto probes once
    assert probes(emu, cid) == 1 and watch.to_state()["flavor"] == emu.flavor
    trigger = NewMessageTrigger(cid, start=start, poll_interval=POLL, state=watch.to_state())
    forget_flavors()  # the triggerer is another process
    rebuilt = rebuild(trigger)
    message = emu.add_message(cid, "during the wait")
    assert ids(run(first_event(rebuilt))) == [message["id"]]
    assert probes(emu, cid) == 1  # the trigger did not probe again


def test_a_restarted_watcher_keeps_the_flavor_in_its_stored_cursor(
    doto_emulator: DotoEmulator, cid: int, quick_settle: None
) -> None:
    emu = doto_emulator
    emu.add_message(cid, "history", created_at=emu.clock.now() - 100)
    store = MemoryStore()

    async def one_event(trigger: NewMessageTrigger, text: str) -> TriggerEvent:
        polls = gets(emu, cid)
        collector = EventCollector(as_watcher(trigger, store))
        # It has polled once: the first trigger saved its new cursor, the second resumes the stored one.
        await until(lambda: store.writes > 0 and gets(emu, cid) > polls)
        mid = emu.add_message(cid, text)["id"]
        await collector.wait_events(1)
        await until(lambda: mid in saved_ids(store))  # its event is stored: not announced again
        await collector.stop()
        return collector.events[0]

    first = run(one_event(NewMessageTrigger(cid, poll_interval=POLL), "first"))
    (state,) = store.data.values()
    assert state["flavor"] == emu.flavor and probes(emu, cid) == 1
    forget_flavors()  # a new triggerer process
    second = run(one_event(NewMessageTrigger(cid, poll_interval=POLL), "second"))
    assert [m["content"] for m in first.payload["messages"] + second.payload["messages"]] == [
        "first",
        "second",
    ]
    assert probes(emu, cid) == 1


# ---- every constructor argument survives serialize() (mutation-checked, scripts/mutants.py) ----


def test_rebuilt_trigger_keeps_every_constructor_argument() -> None:
    """Comparing serialize() with serialize() of the rebuilt trigger cannot see an argument left out
    of serialize() (it is missing on both sides). Here every constructor argument gets a value other
    than its default, and the rebuilt trigger must hold each one. The argument list comes from the
    constructor's signature, so a new argument fails this test until it is given a value here."""
    import inspect

    start = 1_700_000_000
    state = api.MessageWatch(
        start=start,
        position=start + 5,
        seen={11: start + 5},
        reading=api.ServerReading("auto", "chatwoot"),
        after_id=10,
    ).to_state()
    values: dict[str, Any] = {
        "conversation_id": 77,
        "doto_conn_id": "doto_elsewhere",
        "start": start,
        "poll_interval": 7.5,
        "message_types": ("incoming", "outgoing"),
        "include_private": True,
        "sender_types": ("Contact",),
        "content_pattern": "refund|return",
        "min_messages": 3,
        "overlap": 4,
        "max_failures": 9,
        "state": state,
        "timeout_at": start + 3600.5,
    }
    params = dict(inspect.signature(NewMessageTrigger.__init__).parameters)
    params.pop("self")
    # conversation_id and conversation_query exclude each other: one trigger of each kind.
    account = {
        **{k: v for k, v in values.items() if k not in ("conversation_id", "state")},
        "conversation_query": {"inbox_id": 3, "labels": ["vip"], "status": "open"},
    }
    assert set(params) == set(values) | {"conversation_query"}, (
        "give the new constructor argument a value here"
    )
    for given in (values, account):
        for name, param in params.items():
            if name in given:
                assert given[name] != param.default, f"{name}: the test value must differ from the default"

        classpath, kwargs = NewMessageTrigger(**given).serialize()
        assert json.loads(json.dumps(kwargs)) == kwargs
        rebuilt = importlib.import_module(classpath.rsplit(".", 1)[0]).NewMessageTrigger(**kwargs)

        def held(trigger: NewMessageTrigger, name: str) -> Any:
            value = getattr(trigger, name) if hasattr(trigger, name) else getattr(trigger.filter, name)
            return tuple(value) if isinstance(value, list | tuple) else value

        for name, value in given.items():
            assert name in kwargs, f"serialize() leaves out {name}"
            assert held(rebuilt, name) == (tuple(value) if isinstance(value, tuple) else value), name
