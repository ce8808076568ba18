"""NewMessageSensor: validation, filters and cursor correctness.

Filters are checked by calling ``poke()`` against the emulator over HTTP (no Airflow run needed).
Cursor correctness runs real DAGs (``tests/dags/doto_test_sensor.py``) in poke, reschedule and
deferrable mode while a background thread feeds the conversation between polls.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from unittest import mock

import pendulum
import pytest
from airflow.sdk import PokeReturnValue
from airflow_versions import HAS_STATE_STORES
from dagrun import Background, load_dags, polls, task_instances, xcom

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.testing.stack.local_airflow import wait_until

# ---- construction-time validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"content_pattern": "(unclosed"}, "is not a valid regular expression"),
        ({"content_pattern": "*refund"}, "is not a valid regular expression"),
        ({"min_messages": 0}, "min_messages must be a positive integer"),
        ({"min_messages": -2}, "min_messages must be a positive integer"),
        ({"min_messages": "2"}, "min_messages must be a positive integer"),
        ({"min_messages": 1.5}, "min_messages must be a positive integer"),
        ({"min_messages": True}, "min_messages must be a positive integer"),
        ({"message_types": "incoming"}, "message_types must be a list"),
        ({"message_types": ["incoming", "email"]}, "message_types must be a list"),
        ({"include_private": "yes"}, "include_private must be True or False"),
        ({"conversation_id": "abc"}, "conversation_id must be a positive integer"),
        ({"conversation_id": 0}, "conversation_id must be a positive integer"),
        ({"start": "last tuesday"}, "start must be a Unix timestamp"),
        ({"overlap": -1}, "overlap must be a non-negative integer"),
    ],
)
def test_rejects_static_mistakes(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        NewMessageSensor(**{"task_id": "wait", "conversation_id": 5, **kwargs})


def test_templated_values_are_checked_after_rendering() -> None:
    sensor = NewMessageSensor(
        task_id="wait",
        conversation_id="{{ params.conversation_id }}",
        content_pattern="{{ params.pattern }}",
        start="{{ data_interval_start }}",
    )
    assert sensor.content_pattern == "{{ params.pattern }}"


# ---- filters (poke against the emulator) ------------------------------------------------------


def _sensor(cid: int, start: int, **kwargs: Any) -> NewMessageSensor:
    return NewMessageSensor(task_id="wait", conversation_id=cid, start=start, **kwargs)


def _poke(sensor: NewMessageSensor) -> list[dict[str, Any]] | None:
    result = sensor.poke({})  # type: ignore[arg-type]  # an explicit start needs no run context
    if isinstance(result, PokeReturnValue):
        assert result.is_done
        return result.xcom_value
    assert result is False
    return None


def _contents(batch: list[dict[str, Any]] | None) -> list[str]:
    assert batch is not None
    return [m["content"] for m in batch]


@pytest.fixture
def busy_conversation(doto_emulator: Any) -> tuple[int, int]:
    """A conversation with one message of every kind after ``start``, and one before it."""
    emu = doto_emulator
    start = int(time.time()) - 600
    cid = emu.add_conversation()
    emu.add_message(cid, "refund: old news", created_at=start - 1)
    emu.add_message(cid, "agent: we can refund", message_type="outgoing", created_at=start + 1)
    emu.add_message(cid, "note: refund?", message_type="outgoing", private=True, created_at=start + 2)
    emu.add_message(cid, "activity: assigned", message_type="activity", created_at=start + 3)
    emu.add_message(cid, "bot: refund policy", sender_type="AgentBot", created_at=start + 4)
    emu.add_message(cid, "customer: hello", created_at=start + 5)
    emu.add_message(cid, "customer: REFUND now", created_at=start + 6)
    return cid, start


def test_default_counts_incoming_public_messages_after_start(busy_conversation: tuple[int, int]) -> None:
    cid, start = busy_conversation
    assert _contents(_poke(_sensor(cid, start))) == [
        "bot: refund policy",
        "customer: hello",
        "customer: REFUND now",
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"content_pattern": "(?i)refund"}, ["bot: refund policy", "customer: REFUND now"]),
        ({"content_pattern": "refund"}, ["bot: refund policy"]),
        ({"sender_types": ["Contact"]}, ["customer: hello", "customer: REFUND now"]),
        ({"sender_types": ["Contact"], "content_pattern": "(?i)refund"}, ["customer: REFUND now"]),
        ({"message_types": ["outgoing"]}, ["agent: we can refund"]),
        ({"message_types": ["outgoing"], "include_private": True}, ["agent: we can refund", "note: refund?"]),
        ({"message_types": ["activity"]}, ["activity: assigned"]),
        (
            {"message_types": ["incoming", "outgoing"], "content_pattern": "refund", "include_private": True},
            ["agent: we can refund", "note: refund?", "bot: refund policy"],
        ),
    ],
)
def test_filters(busy_conversation: tuple[int, int], kwargs: dict[str, Any], expected: list[str]) -> None:
    cid, start = busy_conversation
    assert _contents(_poke(_sensor(cid, start, **kwargs))) == expected


def test_nothing_matching_means_not_done(busy_conversation: tuple[int, int]) -> None:
    cid, start = busy_conversation
    assert _poke(_sensor(cid, start, content_pattern="cancel")) is None


def test_integer_message_types_from_a_chatwoot_server(
    doto_emulator: Any, busy_conversation: tuple[int, int]
) -> None:
    doto_emulator.int_message_types = True
    cid, start = busy_conversation
    batch = _poke(_sensor(cid, start, sender_types=["Contact"]))
    assert _contents(batch) == ["customer: hello", "customer: REFUND now"]
    assert batch is not None and {m["message_type"] for m in batch} == {"incoming"}


def test_min_messages_waits_and_collects_across_pokes(doto_emulator: Any) -> None:
    emu = doto_emulator
    start = int(time.time()) - 60
    cid = emu.add_conversation()
    emu.add_message(cid, "one", created_at=start + 1)
    emu.add_message(cid, "two", created_at=start + 2)
    sensor = _sensor(cid, start, min_messages=3)

    assert _poke(sensor) is None
    assert _poke(sensor) is None  # the same two again are not counted twice
    emu.add_message(cid, "three", created_at=start + 3)
    assert _contents(_poke(sensor)) == ["one", "two", "three"]
    assert _poke(sensor) is None  # reported once, never again


def test_deleted_messages_are_never_new(doto_emulator: Any) -> None:
    emu = doto_emulator
    emu.soft_delete = True  # deleted messages stay in lists, flagged (Chatwoot)
    start = int(time.time()) - 60
    cid = emu.add_conversation()
    gone = emu.add_message(cid, "I want a refund (deleted)", created_at=start + 1)["id"]
    DotoHook().delete_message(cid, gone)
    sensor = _sensor(cid, start)

    assert _poke(sensor) is None
    emu.add_message(cid, "hello", created_at=start + 2)
    assert _contents(_poke(sensor)) == ["hello"]


def test_burst_in_one_second_and_late_commits_across_pokes(doto_emulator: Any) -> None:
    """The cursor sits on a crowded second; more arrive in it and behind it: none lost or repeated."""
    emu = doto_emulator
    now = emu.clock.freeze(int(time.time()))
    cid = emu.add_conversation()
    sensor = _sensor(cid, now - 5)
    reported: list[int] = []

    def poke_and_collect() -> None:
        batch = _poke(sensor)
        reported.extend(m["id"] for m in batch or [])

    expected = [emu.add_message(cid, f"burst {i}")["id"] for i in range(30)]
    poke_and_collect()
    expected += [emu.add_message(cid, f"same second {i}")["id"] for i in range(10)]
    hidden = emu.add_message(cid, "committed late, older", created_at=now - 2, visible=False)["id"]
    late = emu.add_message(cid, "shows up after one more", late=1)["id"]
    poke_and_collect()
    emu.reveal(hidden)
    expected += [hidden, late, emu.add_message(cid, "the one more")["id"]]
    poke_and_collect()
    emu.clock.advance(1)
    expected += [emu.add_message(cid, f"next second {i}")["id"] for i in range(5)]
    poke_and_collect()
    poke_and_collect()

    assert sorted(reported) == sorted(expected)
    assert len(reported) == len(set(reported)) == 48


# ---- cursor correctness in real DAG runs --------------------------------------------------------


class Feed:
    """Feeds a conversation in phases, each after the sensor's next poll, and records what must be found."""

    def __init__(self, emulator: Any, cid: int, start: int) -> None:
        self.emu, self.cid, self.start = emulator, cid, start
        self.expected: list[int] = []
        self.emu.soft_delete = True
        self.crowded = self.emu.clock.freeze(start + 5)  # every message lands in one second
        self.emu.add_message(cid, "before the run's start", created_at=start - 1)
        self._count(self.emu.add_message(cid, f"burst {i}") for i in range(4))

    def _count(self, messages: Any) -> None:
        self.expected += [m["id"] for m in messages]

    def _after_next_poll(self, count: int) -> None:
        wait_until(lambda: polls(self.emu, self.cid) >= count, what=f"sensor poll {count}")

    def run(self) -> None:
        emu, cid = self.emu, self.cid
        self._after_next_poll(1)
        self._count(emu.add_message(cid, f"same second {i}") for i in range(4))
        emu.add_message(cid, "our reply", message_type="outgoing")
        emu.add_message(cid, "team note", message_type="outgoing", private=True)
        hidden = emu.add_message(cid, "late commit, older second", created_at=self.crowded - 2, visible=False)
        late = emu.add_message(cid, "late commit, same second", late=1)
        self._after_next_poll(2)
        emu.reveal(hidden["id"])
        self._count([hidden, late])
        self._count(emu.add_message(cid, f"after the late ones {i}") for i in range(2))
        gone = emu.add_message(cid, "deleted before anyone saw it", visible=False)
        DotoHook().delete_message(cid, gone["id"])
        emu.reveal(gone["id"])  # now listed, flagged deleted
        self._after_next_poll(3)
        emu.clock.advance(1)
        self._count(emu.add_message(cid, f"next second {i}") for i in range(3))


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_run_loses_and_repeats_nothing(airflow_db: Path, doto_emulator: Any, mode: str) -> None:
    dag = load_dags("test_dags/doto_test_sensor.py")[f"doto_test_sensor_{mode}"]
    cid = doto_emulator.add_conversation()
    start = int(time.time()) - 30
    feed = Feed(doto_emulator, cid, start)
    expected_count = 4 + 4 + 2 + 2 + 3

    with Background(feed.run):
        dr = dag.test(
            logical_date=pendulum.from_timestamp(start),
            run_conf={"conversation_id": cid, "min_messages": expected_count, "poke_interval": 0.2},
        )

    assert dr.state == "success"
    batch = xcom(dr, "wait")
    ids = [m["id"] for m in batch]
    assert len(feed.expected) == expected_count
    assert sorted(ids) == sorted(feed.expected)  # nothing lost, nothing extra
    assert len(ids) == len(set(ids)) == expected_count  # nothing repeated
    assert [(m["created_at"], m["id"]) for m in batch] == sorted((m["created_at"], m["id"]) for m in batch)
    cursors = [
        int(r.query["after"])
        for r in doto_emulator.requests
        if r.method == "GET"
        and r.path.endswith(f"/conversations/{cid}/messages")
        and set(r.query) == {"after"}
    ]
    assert len(cursors) >= 4
    # The cursor moved forward (asking with an overlap) and, in reschedule mode, survived between
    # task runs through the task state store: later polls ask from later than the first one.
    assert cursors == sorted(cursors)
    if mode == "reschedule" and not HAS_STATE_STORES:
        # Airflow < 3.3 has no task state store: each reschedule starts again from the start point
        # and reads the whole window since it (the same messages, at a cost that grows with it).
        assert set(cursors) == {cursors[0]}
    elif doto_emulator.flavor == "doto":  # (a Chatwoot id cursor moves once messages leave the overlap)
        assert cursors[-1] > cursors[0]
    if mode == "reschedule":
        assert task_instances(dr)[("wait", -1)].try_number == 1  # rescheduled, not retried


def test_resumed_account_sensor_logs_the_conversations_its_messages_came_from() -> None:
    """An account watch's event has no conversation of its own: the log names the messages' ones."""
    sensor = NewMessageSensor(task_id="account")
    messages = [
        {"id": 7, "conversation_id": 12},
        {"id": 9, "conversation_id": 3},
        {"id": 10, "conversation_id": 12},
    ]
    logged: list[str] = []
    with mock.patch.object(type(sensor), "log", new_callable=mock.PropertyMock) as log:
        log.return_value.info.side_effect = lambda text, *args: logged.append(text % args)
        got = sensor.execute_complete(
            {}, {"status": "success", "conversation_id": None, "messages": messages}
        )
    assert got == messages
    assert logged == ["3 new message(s) in conversation(s) 12, 3"]
