"""Every example DAG, run for real with ``dag.test()`` against the emulator over HTTP.

Each test seeds conversations, runs the DAG with a config (params overridden by ``run_conf``) and
asserts the conversations' final state and the tasks' XCom values.
"""

from __future__ import annotations

import functools
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest
from dagrun import Background, has_xcom, load_dag, polls, task_instances, xcom

from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.testing.stack.local_airflow import wait_until

pytestmark = pytest.mark.integration

HOUR = 3600


def _contents(emulator: Any, cid: int) -> list[str]:
    return [m["content"] for m in emulator.messages(cid)]


def _conversation(emulator: Any, now: int, *messages: tuple[str, str, int, bool]) -> int:
    """A new conversation holding ``messages``: (content, message_type, hours before ``now``, private)."""
    cid = emulator.add_conversation()
    for content, message_type, hours_ago, private in messages:
        emulator.add_message(
            cid, content, message_type=message_type, private=private, created_at=now - hours_ago * HOUR
        )
    return cid


# ---- doto_follow_up ------------------------------------------------------------------------------


def test_follow_up_is_sent_only_where_the_customer_went_quiet(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    conversation = functools.partial(_conversation, emu, int(time.time()))
    quiet = conversation(
        ("my parcel is late", "incoming", 40, False), ("it ships today", "outgoing", 30, False)
    )
    replied = conversation(("it ships today", "outgoing", 30, False), ("thanks!", "incoming", 29, False))
    too_recent = conversation(("it ships today", "outgoing", 2, False))
    quiet_with_note = conversation(  # neither a private note nor an activity is a reply or our message
        ("it ships today", "outgoing", 30, False),
        ("customer may call", "outgoing", 1, True),
        ("Conversation assigned to Sam", "activity", 1, False),
    )
    never_answered = conversation(("hello?", "incoming", 50, False))
    before = {cid: _contents(emu, cid) for cid in (replied, too_recent, never_answered)}
    dag = load_dag("example_dags/doto_follow_up.py")

    dr = dag.test(
        run_conf={
            "conversation_ids": [quiet, replied, too_recent, quiet_with_note, never_answered],
            "hours": 24,
            "signature": "Ana, Acme support",
        }
    )

    assert dr.state == "success"
    assert xcom(dr, "find_due_conversations") == [quiet, quiet_with_note]
    for cid, unchanged in before.items():
        assert _contents(emu, cid) == unchanged  # not sent: replied, too recent, nothing of ours
    for map_index, cid in enumerate([quiet, quiet_with_note]):
        sent = emu.messages(cid)[-1]
        assert sent["message_type"] == "outgoing" and sent["private"] is False
        assert sent["content"].startswith("Hi! Just checking in: did our last message help?")
        assert sent["content"].endswith("\n\nAna, Acme support")
        assert sent["content_attributes"]["doto_follow_up"] is True
        assert xcom(dr, "send_follow_up", map_index)["id"] == sent["id"]
    assert len(emu.messages(quiet)) == 3

    # The next day: still no reply, but our last message is the follow-up: no second nudge.
    again = dag.test(run_conf={"conversation_ids": [quiet, quiet_with_note], "hours": 24})
    assert again.state == "success"
    assert xcom(again, "find_due_conversations") == []
    assert not has_xcom(again, "send_follow_up", 0)
    assert len(emu.messages(quiet)) == 3 and len(emu.messages(quiet_with_note)) == 4


def test_follow_up_hours_param_decides_what_is_too_recent(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "it ships today", message_type="outgoing", created_at=int(time.time()) - 2 * HOUR)
    dag = load_dag("example_dags/doto_follow_up.py")

    not_yet = dag.test(run_conf={"conversation_ids": [cid], "hours": 3})
    assert xcom(not_yet, "find_due_conversations") == [] and len(emu.messages(cid)) == 1

    due = dag.test(run_conf={"conversation_ids": [cid], "hours": 1.5})
    assert due.state == "success"
    assert xcom(due, "find_due_conversations") == [cid]
    assert len(emu.messages(cid)) == 2 and emu.messages(cid)[-1]["content_attributes"]["doto_follow_up"]


# ---- doto_backlog_nudge (in doto_follow_up.py) ---------------------------------------------------


def test_backlog_nudge_sends_one_batch_to_every_quiet_conversation(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    conversation = functools.partial(_conversation, emu, int(time.time()))
    quiet = [
        conversation(("my parcel is late", "incoming", 60, False), ("it ships today", "outgoing", 50, False))
        for _ in range(12)
    ]
    replied = conversation(("it ships today", "outgoing", 50, False), ("thanks!", "incoming", 49, False))
    too_recent = conversation(("it ships today", "outgoing", 2, False))
    only_a_note = conversation(("hello?", "incoming", 60, False), ("call them", "outgoing", 50, True))
    quiet_with_note = conversation(
        ("it ships today", "outgoing", 50, False), ("customer may call", "outgoing", 1, True)
    )
    due = [*quiet, quiet_with_note]
    untouched = {cid: _contents(emu, cid) for cid in (replied, too_recent, only_a_note)}
    dag = load_dag("example_dags/doto_follow_up.py", "doto_backlog_nudge")
    ids = [*quiet[:6], replied, too_recent, only_a_note, *quiet[6:], quiet_with_note]

    dr = dag.test(run_conf={"conversation_ids": ids, "signature": "Ana, Acme support"})

    assert dr.state == "success"
    assert xcom(dr, "find_backlog") == due
    out = xcom(dr, "nudge_backlog")
    assert (out["total"], out["sent"], out["failed"]) == (len(due), len(due), 0)
    assert [r["conversation_id"] for r in out["results"]] == due
    for cid, result in zip(due, out["results"], strict=True):
        nudge = emu.messages(cid)[-1]
        assert nudge["content"] == (
            f"Hi! Just checking in on conversation #{cid}: do you still need help? "
            "Reply here and we'll pick it up.\n\nAna, Acme support"
        )
        assert nudge["message_type"] == "outgoing" and nudge["private"] is False
        assert nudge["content_attributes"]["doto_backlog_nudge"] is True
        assert result["message_id"] == nudge["id"]
    for cid, contents in untouched.items():
        assert _contents(emu, cid) == contents
    assert sum(1 for r in emu.requests if r.method == "POST") == len(due)

    # The next day: still quiet, but our last message is the nudge: no second one.
    again = dag.test(run_conf={"conversation_ids": ids})
    assert again.state == "success"
    assert xcom(again, "find_backlog") == []
    assert xcom(again, "nudge_backlog")["total"] == 0
    assert all(len(emu.messages(cid)) == 3 for cid in quiet)


def test_neither_nudge_dag_nudges_after_the_others_nudge(airflow_db: Path, doto_emulator: Any) -> None:
    """One nudge per silence between the two DAGs, each nudge older than the other DAG's ``hours``."""
    emu = doto_emulator
    now = int(time.time())
    followed_up, batch_nudged = emu.add_conversation(), emu.add_conversation()
    for cid, marker, hours_ago in (
        (followed_up, "doto_follow_up", 50),
        (batch_nudged, "doto_backlog_nudge", 30),
    ):
        emu.add_message(cid, "it ships today", message_type="outgoing", created_at=now - 60 * HOUR)
        emu.add_message(
            cid,
            "checking in",
            message_type="outgoing",
            created_at=now - hours_ago * HOUR,
            content_attributes={marker: True},
        )
    ids = [followed_up, batch_nudged]

    backlog = load_dag("example_dags/doto_follow_up.py", "doto_backlog_nudge").test(
        run_conf={"conversation_ids": ids, "hours": 48}
    )
    follow_up = load_dag("example_dags/doto_follow_up.py").test(
        run_conf={"conversation_ids": ids, "hours": 24}
    )

    assert backlog.state == follow_up.state == "success"
    assert xcom(backlog, "find_backlog") == [] and xcom(follow_up, "find_due_conversations") == []
    assert [len(emu.messages(cid)) for cid in ids] == [2, 2]


# ---- doto_escalation -------------------------------------------------------------------------------


def _seed_escalation(emu: Any, start: int) -> tuple[int, int]:
    """A conversation whose only escalation-worthy message is the last one; returns (cid, its id)."""
    cid = emu.add_conversation()
    emu.add_message(cid, "I wanted to cancel last week", created_at=start - 60)  # before the run
    emu.add_message(cid, "You can cancel any time", message_type="outgoing", created_at=start + 1)
    emu.add_message(cid, "cancel? refund?", message_type="outgoing", private=True, created_at=start + 2)
    emu.add_message(cid, "Hello, where is my parcel?", created_at=start + 3)
    emu.add_message(cid, "Cancel this, I am ANGRY", sender_type="AgentBot", created_at=start + 4)
    match = emu.add_message(cid, "Still nothing.\nPlease cancel my order.", created_at=start + 5)
    return cid, match["id"]


def _assert_escalated(emu: Any, dr: Any, cid: int, match_id: int, seeded: int) -> list[dict[str, Any]]:
    assert dr.state == "success"
    (found,) = xcom(dr, "wait_for_message")
    assert found["id"] == match_id and found["content"] == "Still nothing.\nPlease cancel my order."
    messages = emu.messages(cid)
    assert len(messages) == seeded + 2  # the note and the acknowledgement, each exactly once
    note, ack = messages[-2:]
    assert note["private"] is True and note["message_type"] == "outgoing"
    assert "> Still nothing.\n> Please cancel my order." in note["content"]
    assert f"message {match_id}" in note["content"] and dr.run_id in note["content"]
    assert "Hello, where is my parcel?" not in note["content"]
    assert ack["private"] is False and ack["message_type"] == "outgoing"
    assert ack["content"].startswith("Thanks for letting us know.")
    assert xcom(dr, "post_team_note")["id"] == note["id"]
    assert xcom(dr, "acknowledge_customer")["id"] == ack["id"]
    return messages


def test_escalation_poke_and_deferrable_agree(airflow_db: Path, doto_emulator: Any) -> None:
    """Same data, sensor polling from the worker vs deferred to the trigger: same outcome."""
    emu = doto_emulator
    start = int(time.time()) - 120
    dag = load_dag("example_dags/doto_escalation.py")
    outcomes = []
    for deferrable in (False, True):
        cid, match_id = _seed_escalation(emu, start)
        dr = dag.test(
            logical_date=pendulum.from_timestamp(start),
            run_conf={
                "conversation_id": cid,
                "pattern": "(?i)cancel",
                "poke_interval": 0.2,
                "deferrable": deferrable,
            },
        )
        messages = _assert_escalated(emu, dr, cid, match_id, seeded=6)
        outcomes.append(
            [
                (
                    m["message_type"],
                    m["private"],
                    m["content"].replace(dr.run_id, "<run>").replace(f"message {match_id}", "<id>"),
                )
                for m in messages
            ]
        )
    assert outcomes[0] == outcomes[1]


def test_escalation_waits_for_the_matching_customer_message(airflow_db: Path, doto_emulator: Any) -> None:
    """The customer writes while the sensor waits (deferrable, the DAG's default)."""
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "I want a refund", created_at=int(time.time()) - 3600)  # before the run
    matches: list[int] = []

    def conversation_goes_on() -> None:
        wait_until(lambda: polls(emu, cid) >= 1, what="the sensor's first poll")
        emu.add_message(cid, "Sorry for the delay, a refund is possible.", message_type="outgoing")
        emu.add_message(cid, "Refund requested, handle with care", message_type="outgoing", private=True)
        emu.add_message(cid, "ok, thank you")
        seen = polls(emu, cid)
        wait_until(lambda: polls(emu, cid) > seen, what="a poll that sees the distractions")
        matches.append(emu.add_message(cid, "Actually I'm angry: this is the third time")["id"])

    dag = load_dag("example_dags/doto_escalation.py")
    with Background(conversation_goes_on):
        dr = dag.test(run_conf={"conversation_id": cid, "poke_interval": 0.2})

    assert dr.state == "success"
    (found,) = xcom(dr, "wait_for_message")
    assert found["id"] == matches[0]
    messages = emu.messages(cid)
    assert [m["content"] for m in messages[:5]] == [
        "I want a refund",
        "Sorry for the delay, a refund is possible.",
        "Refund requested, handle with care",
        "ok, thank you",
        "Actually I'm angry: this is the third time",
    ]
    note, ack = messages[5:]
    assert note["private"] and "> Actually I'm angry: this is the third time" in note["content"]
    assert not ack["private"] and ack["content"].startswith("Thanks for letting us know.")


def test_escalation_failure_posts_a_private_note(airflow_db: Path, doto_emulator: Any) -> None:
    """A failing task (here: an acknowledgement that renders empty) leaves the team a note."""
    emu = doto_emulator
    start = int(time.time()) - 120
    cid, match_id = _seed_escalation(emu, start)
    dag = load_dag("example_dags/doto_escalation.py")

    dr = dag.test(
        logical_date=pendulum.from_timestamp(start),
        run_conf={"conversation_id": cid, "poke_interval": 0.2, "deferrable": False, "acknowledgement": " "},
    )

    assert dr.state == "failed"
    tis = task_instances(dr)
    assert tis[("post_team_note", -1)].state == "success"
    assert tis[("acknowledge_customer", -1)].state == "failed"
    escalation_note, failure_note = emu.messages(cid)[-2:]
    assert escalation_note["private"] and f"message {match_id}" in escalation_note["content"]
    assert failure_note["private"] is True
    assert failure_note["content"] == (
        f"Airflow could not finish the escalation: task acknowledge_customer of run {dr.run_id} failed. "
        "Please check this conversation by hand."
    )


# ---- doto_export ---------------------------------------------------------------------------------


def test_export_writes_exactly_yesterdays_messages(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    emu = doto_emulator
    emu.soft_delete = True
    run_at = pendulum.now("UTC")
    day_start = run_at.start_of("day").subtract(days=1)
    start, end = day_start.int_timestamp, day_start.add(days=1).int_timestamp
    first, second = emu.add_conversation(), emu.add_conversation()
    emu.add_message(first, "the day before, last second", created_at=start - 1)
    expected = [
        emu.add_message(first, "midnight sharp", created_at=start)["id"],
        emu.add_message(first, "morning reply", message_type="outgoing", created_at=start + 8 * HOUR)["id"],
        emu.add_message(
            first, "team note", message_type="outgoing", private=True, created_at=start + 9 * HOUR
        )["id"],
        emu.add_message(first, "last second of the day", created_at=end - 1)["id"],
    ]
    deleted = emu.add_message(first, "deleted later", created_at=start + 10 * HOUR)["id"]
    DotoHook().delete_message(first, deleted)
    emu.add_message(first, "today, midnight", created_at=end)
    only = emu.add_message(second, "hello", created_at=start + 12 * HOUR)["id"]
    dag = load_dag("example_dags/doto_export.py")

    dr = dag.test(
        logical_date=run_at, run_conf={"conversation_ids": [first, second], "output_dir": str(tmp_path)}
    )

    assert dr.state == "success"
    assert (dr.data_interval_start, dr.data_interval_end) == (day_start, day_start.add(days=1))
    path = tmp_path / day_start.strftime("%Y-%m-%d") / "messages.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    assert [(r["conversation_id"], r["id"]) for r in rows] == [(first, i) for i in expected] + [
        (second, only)
    ]
    assert all(start <= r["created_at"] < end for r in rows)
    assert xcom(dr, "export_messages") == {
        "path": str(path),
        "count": len(rows),
        "conversations": {str(first): len(expected), str(second): 1},
    }
