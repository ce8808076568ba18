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
import requests
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
    assert xcom(dr, "find_due_conversations") == {"due": [quiet, quiet_with_note], "skipped_reply_window": []}
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
    assert xcom(again, "find_due_conversations")["due"] == []
    assert not has_xcom(again, "send_follow_up", 0)
    assert len(emu.messages(quiet)) == 3 and len(emu.messages(quiet_with_note)) == 4


def test_follow_up_hours_param_decides_what_is_too_recent(airflow_db: Path, doto_emulator: Any) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "it ships today", message_type="outgoing", created_at=int(time.time()) - 2 * HOUR)
    dag = load_dag("example_dags/doto_follow_up.py")

    not_yet = dag.test(run_conf={"conversation_ids": [cid], "hours": 3})
    assert xcom(not_yet, "find_due_conversations")["due"] == [] and len(emu.messages(cid)) == 1

    due = dag.test(run_conf={"conversation_ids": [cid], "hours": 1.5})
    assert due.state == "success"
    assert xcom(due, "find_due_conversations")["due"] == [cid]
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
    assert xcom(dr, "find_backlog") == {"due": due, "skipped_reply_window": []}
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
    assert xcom(again, "find_backlog")["due"] == []
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
    assert (
        xcom(backlog, "find_backlog")["due"] == [] and xcom(follow_up, "find_due_conversations")["due"] == []
    )
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
    DotoHook().delete_message(first, deleted)  # exported as the server shows it, flagged deleted
    expected.insert(3, deleted)
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
    assert [r["content_attributes"].get("deleted", False) for r in rows] == [r["id"] == deleted for r in rows]
    assert xcom(dr, "select_conversations") == [first, second]
    assert xcom(dr, "export_messages") == {
        "path": str(path),
        "count": len(rows),
        "conversations": {str(first): len(expected), str(second): 1},
    }


# ---- the whole account: the three DAGs with no ids ---------------------------------------------------


def _history_reads(emu: Any) -> list[int]:
    """The conversations whose messages were listed, one entry per request (``GET .../:id/messages``)."""
    return [
        int(r.path.split("/")[-2])
        for r in emu.requests
        if r.method == "GET" and r.path.endswith("/messages") and "/conversations/" in r.path
    ]


def _sent_by_dag(emu: Any, cid: int, marker: str) -> list[dict[str, Any]]:
    return [m for m in emu.messages(cid) if m["content_attributes"].get(marker)]


def test_follow_up_with_no_params_looks_after_every_open_conversation(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """Decided from the conversation list; only a private-note last message costs a history read; a
    conversation past its channel's reply window is skipped and listed."""
    emu = doto_emulator
    conversation = functools.partial(_conversation, emu, int(time.time()))
    quiet = conversation(
        ("my parcel is late", "incoming", 40, False), ("it ships today", "outgoing", 30, False)
    )
    replied = conversation(("it ships today", "outgoing", 30, False), ("thanks!", "incoming", 29, False))
    too_recent = conversation(("it ships today", "outgoing", 2, False))
    too_old = conversation(("it ships today", "outgoing", 8 * 24, False))  # beyond lookback_days (7)
    never_answered = conversation(("hello?", "incoming", 50, False))
    quiet_with_note = conversation(
        ("it ships today", "outgoing", 30, False),
        ("customer may call", "outgoing", 1, True),
        ("Conversation assigned to Sam", "activity", 1, False),
    )
    replied_then_note = conversation(
        ("it ships today", "outgoing", 30, False),
        ("thanks!", "incoming", 20, False),
        ("all good now", "outgoing", 19, True),
    )
    resolved, pending = (
        conversation(("it ships today", "outgoing", 30, False)),
        conversation(("it ships today", "outgoing", 30, False)),
    )
    emu.update_conversation(resolved, status="resolved")
    emu.update_conversation(pending, status="pending")
    whatsapp = emu.add_inbox("whatsapp", "WhatsApp")
    closed_window = emu.add_conversation(inbox_id=whatsapp)  # the customer wrote 40 h ago: window shut
    emu.add_message(closed_window, "my parcel is late", created_at=int(time.time()) - 40 * HOUR)
    emu.add_message(
        closed_window, "it ships today", message_type="outgoing", created_at=int(time.time()) - 30 * HOUR
    )
    assert emu.conversation(closed_window)["can_reply"] is False
    seeded = {cid: _contents(emu, cid) for cid in range(1, closed_window + 1)}
    emu.clear_requests()
    dag = load_dag("example_dags/doto_follow_up.py")

    dr = dag.test()  # no params: every open conversation

    assert dr.state == "success"
    found = xcom(dr, "find_due_conversations")
    assert sorted(found["due"]) == sorted([quiet, quiet_with_note])
    assert found["skipped_reply_window"] == [closed_window]
    assert set(_history_reads(emu)) == {quiet_with_note, replied_then_note}  # no other history read
    listed = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]
    assert [r.query.get("status") for r in listed] == ["open"]  # one page holds them all
    for cid in (quiet, quiet_with_note):
        assert len(_sent_by_dag(emu, cid, "doto_follow_up")) == 1
    untouched = (
        replied,
        too_recent,
        too_old,
        never_answered,
        replied_then_note,
        resolved,
        pending,
        closed_window,
    )
    assert [_contents(emu, cid) for cid in untouched] == [seeded[cid] for cid in untouched]
    assert sum(1 for r in emu.requests if r.method == "POST") == 2


FOLLOW_UP_TEMPLATE = {
    "name": "follow_up",
    "category": "UTILITY",
    "language": "en_US",
    "processed_params": {"body": {"1": "your order"}},
}


def _mixed_account(emu: Any) -> dict[str, int]:
    """Quiet conversations (our message 30 h ago, no reply): WhatsApp inside its window (the
    customer wrote 23.5 h ago, before our message), WhatsApp outside it, and a web widget."""
    now = int(time.time())
    inbox = emu.add_inbox("whatsapp", "WhatsApp")
    emu.add_template(inbox, "follow_up", "en_US")
    ids = {}
    for name, inbox_id, customer_hours in (("open", inbox, 23.5), ("closed", inbox, 40), ("web", 2, 40)):
        cid = emu.add_conversation(inbox_id=inbox_id)
        emu.add_message(cid, "my parcel is late", created_at=now - int(customer_hours * HOUR))
        emu.add_message(cid, "it ships today", message_type="outgoing", created_at=now - int(23 * HOUR))
        ids[name] = cid
    assert [emu.conversation(ids[n])["can_reply"] for n in ("open", "closed", "web")] == [True, False, True]
    return ids


@pytest.mark.parametrize(("dag_id", "finder", "sender"), [
    ("doto_follow_up", "find_due_conversations", "doto_follow_up"),
    ("doto_backlog_nudge", "find_backlog", "doto_backlog_nudge"),
])  # fmt: skip
@pytest.mark.parametrize("with_template", [True, False], ids=["template", "no-template"])
def test_follow_ups_send_the_template_where_the_window_closed_or_skip_and_list(
    airflow_db: Path, doto_emulator: Any, dag_id: str, finder: str, sender: str, with_template: bool
) -> None:
    """Free text where the window is open, the template where it closed (or, without one, skipped
    and listed); nothing reported as sent that the server marked failed."""
    emu = doto_emulator
    emu.window_failure_delay = 0
    ids = _mixed_account(emu)
    dag = load_dag("example_dags/doto_follow_up.py", dag_id)

    conf: dict[str, Any] = {"hours": 20}
    if with_template:
        conf["template"] = FOLLOW_UP_TEMPLATE
    dr = dag.test(run_conf=conf)

    assert dr.state == "success"
    found = xcom(dr, finder)
    if with_template:
        assert sorted(found["due"]) == sorted(ids.values()) and found["skipped_reply_window"] == []
    else:
        assert sorted(found["due"]) == sorted([ids["open"], ids["web"]])
        assert found["skipped_reply_window"] == [ids["closed"]]
    sent = {name: _sent_by_dag(emu, cid, sender) for name, cid in ids.items()}
    assert [len(sent["open"]), len(sent["web"])] == [1, 1]
    assert len(sent["closed"]) == (1 if with_template else 0)
    for name, messages in sent.items():
        for message in messages:
            templated = (message.get("additional_attributes") or {}).get("template_params")
            assert templated == (FOLLOW_UP_TEMPLATE if name == "closed" else None)
            assert emu.message(message["id"])["status"] != "failed"


def test_backlog_nudge_narrowed_by_inbox_labels_and_ids(airflow_db: Path, doto_emulator: Any) -> None:
    """``inbox_id``, ``labels`` and ``conversation_ids`` each narrow the open conversations looked
    after; more than a page of them is read page by page."""
    emu = doto_emulator
    now = int(time.time())
    email = emu.add_inbox("email", "Support mail")

    def quiet(inbox_id: int, labels: tuple[str, ...] = ()) -> int:
        cid = emu.add_conversation(inbox_id=inbox_id, labels=labels)
        emu.add_message(cid, "it ships today", message_type="outgoing", created_at=now - 50 * HOUR)
        return cid

    mail = [quiet(email) for _ in range(27)]  # more than one page of 25
    vip = [quiet(1, ("vip",)), quiet(email, ("vip", "billing"))]
    other = [quiet(1, ("billing",)), quiet(1)]
    # A fresh DAG for each run: dag.test() keeps a run's config in the DAG's params.
    dag = functools.partial(load_dag, "example_dags/doto_follow_up.py", "doto_backlog_nudge")

    by_inbox = dag().test(run_conf={"inbox_id": email})
    assert by_inbox.state == "success"
    assert sorted(xcom(by_inbox, "find_backlog")["due"]) == sorted([*mail, vip[1]])
    assert xcom(by_inbox, "nudge_backlog")["sent"] == len(mail) + 1
    lists = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]
    assert [(r.query.get("inbox_id"), r.query.get("page")) for r in lists] == [
        (str(email), "1"),
        (str(email), "2"),
    ]
    assert _history_reads(emu) == []

    by_label = dag().test(run_conf={"labels": ["vip"]})
    assert by_label.state == "success"
    assert xcom(by_label, "find_backlog")["due"] == [vip[0]]  # vip[1] has its nudge already

    by_id = dag().test(run_conf={"conversation_ids": [other[0], mail[0]], "labels": ["billing"]})
    assert by_id.state == "success"
    assert xcom(by_id, "find_backlog")["due"] == [other[0]]  # mail[0]: no billing label
    assert [len(_sent_by_dag(emu, cid, "doto_backlog_nudge")) for cid in [*mail, *vip, *other]] == [1] * (
        len(mail) + 3
    ) + [0]


def test_export_with_no_ids_exports_the_whole_account_for_the_interval(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    """Every status; every kind of message; a message committed late whose conversation's
    ``last_activity_at`` moved back before the interval; [start, end) exact."""
    emu = doto_emulator
    emu.soft_delete = True
    run_at = pendulum.now("UTC")
    day_start = run_at.start_of("day").subtract(days=1)
    start, end = day_start.int_timestamp, day_start.add(days=1).int_timestamp
    # Untouched since the day before the interval: not listed at all.
    emu.clock.set(start - 2 * 86400)
    untouched = emu.add_conversation()
    emu.add_message(untouched, "an old question", created_at=start - 2 * 86400)
    emu.clock.reset()

    expected: dict[int, list[int]] = {}
    open_ = emu.add_conversation()
    emu.add_message(open_, "the day before, last second", created_at=start - 1)
    expected[open_] = [
        emu.add_message(open_, "midnight sharp", created_at=start)["id"],
        emu.add_message(open_, "morning reply", message_type="outgoing", created_at=start + 8 * HOUR)["id"],
        emu.add_message(
            open_, "team note", message_type="outgoing", private=True, created_at=start + 9 * HOUR
        )["id"],
        emu.add_message(
            open_, "Conversation assigned to Sam", message_type="activity", created_at=start + 9 * HOUR
        )["id"],
    ]
    deleted = emu.add_message(open_, "deleted later", created_at=start + 10 * HOUR)["id"]
    DotoHook().delete_message(open_, deleted)
    expected[open_] += [deleted, emu.add_message(open_, "last second of the day", created_at=end - 1)["id"]]
    emu.add_message(open_, "today, midnight", created_at=end)

    resolved = emu.add_conversation()
    expected[resolved] = [emu.add_message(resolved, "thanks, solved", created_at=start + 12 * HOUR)["id"]]
    emu.update_conversation(resolved, status="resolved")
    snoozed = emu.add_conversation()
    expected[snoozed] = [emu.add_message(snoozed, "call me monday", created_at=start + 13 * HOUR)["id"]]
    emu.update_conversation(snoozed, status="snoozed")

    # The interval's first second, then the day before's last second committed after it (a late
    # commit): last_activity_at goes back before the interval, updated_at forward.
    late = emu.add_conversation()
    expected[late] = [
        emu.add_message(late, "in the interval", message_type="outgoing", created_at=start + 1)["id"]
    ]
    emu.add_message(late, "the day before, committed late", message_type="outgoing", created_at=start - 1)
    assert emu.conversation(late)["last_activity_at"] == start - 1
    # Written in the interval, shown only after a later message of the day after has landed.
    hidden = emu.add_conversation()
    emu.add_message(hidden, "written before, shown late", created_at=start + 20 * HOUR, late=1)
    emu.add_message(hidden, "today", message_type="outgoing", created_at=end + 60)
    expected[hidden] = [emu.messages(hidden)[0]["id"]]
    emu.clear_requests()
    dag = load_dag("example_dags/doto_export.py")

    dr = dag.test(logical_date=run_at, run_conf={"output_dir": str(tmp_path)})

    assert dr.state == "success"
    selected = xcom(dr, "select_conversations")
    assert sorted(selected) == sorted([open_, resolved, snoozed, late, hidden])
    assert untouched not in selected
    path = tmp_path / day_start.strftime("%Y-%m-%d") / "messages.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    exported: dict[int, list[int]] = {}
    for row in rows:
        exported.setdefault(row["conversation_id"], []).append(row["id"])
    assert exported == expected
    assert all(start <= r["created_at"] < end for r in rows)
    assert {r["message_type"] for r in rows} == {"incoming", "outgoing", "activity"}
    assert [r["id"] for r in rows if r["content_attributes"].get("deleted")] == [deleted]
    result = xcom(dr, "export_messages")
    assert result["count"] == len(rows) == sum(map(len, expected.values()))
    assert result["conversations"] == {str(cid): len(ids) for cid, ids in expected.items()}
    listed = [r for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]
    assert len(listed) == 1 and listed[0].query["status"] == "all" and "updated_within" in listed[0].query


def test_export_with_no_ids_on_a_server_older_than_updated_within(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    """A server that ignores ``updated_within`` is paged by last activity instead: every conversation
    active in the interval, of any status, is exported, more than a page of them; a conversation
    whose activity a late commit moved back before the interval is missed there (the DAG's
    documented limit on such servers)."""
    emu = doto_emulator
    emu.supports_updated_within = False
    run_at = pendulum.now("UTC")
    day_start = run_at.start_of("day").subtract(days=1)
    start = day_start.int_timestamp
    active = []
    for n in range(27):
        cid = emu.add_conversation()
        emu.add_message(cid, f"question {n}", created_at=start + n * 60)
        active.append(cid)
    emu.update_conversation(active[0], status="resolved")
    moved_back = emu.add_conversation()
    emu.add_message(moved_back, "in the interval", message_type="outgoing", created_at=start + 1)
    emu.add_message(
        moved_back, "the day before, committed late", message_type="outgoing", created_at=start - 1
    )
    emu.clear_requests()

    dr = load_dag("example_dags/doto_export.py").test(
        logical_date=run_at, run_conf={"output_dir": str(tmp_path)}
    )

    assert dr.state == "success"
    assert sorted(xcom(dr, "select_conversations")) == sorted(active)  # not moved_back
    assert xcom(dr, "export_messages")["count"] == len(active)
    listed = [r.query for r in emu.requests if r.method == "GET" and r.path.endswith("/conversations")]
    assert [q.get("page") for q in listed] == ["1", "1", "2"]  # the ignored window, then page by page
    assert all(q["status"] == "all" and q["sort_by"] == "last_activity_at_desc" for q in listed)


# ---- doto_daily_report -------------------------------------------------------------------------------


def test_daily_report_sends_the_day_s_csv_as_an_attachment(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    cid = doto_emulator.add_conversation()
    run_at = pendulum.now("UTC")
    dag = load_dag("example_dags/doto_daily_report.py")

    dr = dag.test(logical_date=run_at, run_conf={"conversation_id": cid, "report_dir": str(tmp_path)})

    assert dr.state == "success"
    day = dr.data_interval_start.strftime("%Y-%m-%d")
    report = tmp_path / f"orders_{day}.csv"
    assert report.read_text().splitlines()[0] == "day,region,orders,revenue"
    (stored,) = doto_emulator.messages(cid)
    assert stored["content"] == f"Daily orders report for {day} attached."
    (attachment,) = stored["attachments"]
    assert attachment["extension"] == "csv" and attachment["file_size"] == report.stat().st_size
    assert requests.get(attachment["data_url"], timeout=10).content == report.read_bytes()
    sent = xcom(dr, "send_report")
    assert [a["id"] for a in sent["attachments"]] == [attachment["id"]]


def test_daily_report_sends_the_team_s_own_file_and_refuses_one_the_server_would(
    airflow_db: Path, doto_emulator: Any, tmp_path: Path
) -> None:
    cid = doto_emulator.add_conversation()
    run_at = pendulum.now("UTC")
    dag = load_dag("example_dags/doto_daily_report.py")
    for back in range(3):  # the run's day (the last complete interval) is one of these
        day = run_at.subtract(days=back).strftime("%Y-%m-%d")
        (tmp_path / f"orders_{day}.csv").write_bytes(b"")  # the team's job left an empty file

    dr = dag.test(logical_date=run_at, run_conf={"conversation_id": cid, "report_dir": str(tmp_path)})

    assert dr.state == "failed"
    tis = task_instances(dr)
    assert (tis[("write_report", -1)].state, tis[("send_report", -1)].state) == ("success", "failed")
    assert all(p.read_bytes() == b"" for p in tmp_path.iterdir())  # the team's file, not rewritten
    assert doto_emulator.messages(cid) == []
    assert [r for r in doto_emulator.requests if r.method == "POST"] == []
