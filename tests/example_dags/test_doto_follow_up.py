"""The follow-up rule of ``doto_follow_up`` / ``doto_backlog_nudge``, as pure functions: what the
conversation list alone decides, when one conversation's history is read, and what a run finds
(with a stand-in hook that records every call)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_doto.api import Conversation, Message
from airflow_provider_doto.api._conversations import parse_conversation
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.example_dags import doto_follow_up as rule
from airflow_provider_doto.example_dags.doto_follow_up import (
    DUE,
    NOT_DUE,
    READ_HISTORY,
    REPLY_WINDOW,
    find_follow_ups,
    follow_up,
    follow_up_blocker,
    matches,
)

NOW = 1_800_000_000
HOUR = 3600
_ids = iter(range(1, 10_000))


def message(kind: str = "outgoing", hours_ago: float = 30, **fields: Any) -> dict[str, Any]:
    """A message payload ``hours_ago`` before NOW (``private``, ``content_attributes``... in fields)."""
    return {
        "id": next(_ids),
        "content": "text",
        "message_type": kind,
        "created_at": int(NOW - hours_ago * HOUR),
        **fields,
    }


def conversation(last: dict[str, Any] | None = None, cid: int = 7, **fields: Any) -> Conversation:
    return parse_conversation(
        {
            "id": cid,
            "last_activity_at": NOW,
            "status": "open",
            "inbox_id": 1,
            "can_reply": True,
            "last_non_activity_message": last,
            **fields,
        }
    )


def history(*payloads: dict[str, Any]) -> list[Message]:
    return [parse_message(p) for p in payloads]


def decide(last: dict[str, Any] | None, hours: float = 24, **fields: Any) -> tuple[str, str]:
    verdict = follow_up(conversation(last, **fields), NOW, hours, lookback_days=7)
    return verdict.outcome, verdict.reason


# ---- from the conversation list alone ------------------------------------------------------------


def test_our_public_message_older_than_hours_with_no_reply_is_due():
    assert decide(message("outgoing", 30)) == (DUE, "nudge due")


def test_lookback_days_ends_where_a_history_read_would():
    assert decide(message("outgoing", 7 * 24 - 1 / HOUR))[0] == DUE
    assert decide(message("outgoing", 7 * 24))[0] == NOT_DUE


def test_exactly_hours_old_is_due_a_second_less_is_not():
    assert decide(message("outgoing", 24))[0] == DUE
    outcome, reason = decide(message("outgoing", 24 - 1 / HOUR))
    assert outcome == NOT_DUE and reason == "our last message is only 24.0 h old"


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (None, "no message in the conversation"),
        (message("incoming", 30), "the customer wrote last"),
        (message("outgoing", 2), "our last message is only 2.0 h old"),
        (message("outgoing", 8 * 24), "our last message is 7 day(s) old or older"),
        (
            message("outgoing", 30, content_attributes={"doto_follow_up": True}),
            "our last message is already a nudge",
        ),
        (
            message("outgoing", 30, content_attributes={"doto_backlog_nudge": True}),
            "our last message is already a nudge",
        ),
        (message("outgoing", 30, content_attributes={"deleted": True}), "the last message was deleted"),
        (message("template", 30), "the last message is of type template"),
    ],
)
def test_no_nudge_and_why(last, reason):
    assert decide(last) == (NOT_DUE, reason)


def test_a_private_note_last_asks_for_that_conversations_history():
    assert decide(message("outgoing", 1, private=True)) == (
        READ_HISTORY,
        "the last message is a private note",
    )


def test_a_closed_reply_window_skips_a_due_conversation_only():
    assert decide(message("outgoing", 30), can_reply=False)[0] == REPLY_WINDOW
    assert decide(message("incoming", 30), can_reply=False)[0] == NOT_DUE  # not due anyway: not listed
    assert decide(message("outgoing", 30), can_reply=None)[0] == DUE  # a server that does not say


# ---- from the history (a private note last) --------------------------------------------------------


def test_history_decides_past_notes_and_activity_messages():
    last_note = conversation(message("outgoing", 1, private=True))
    quiet = history(
        message("incoming", 40),
        message("outgoing", 30),
        message("outgoing", 2, private=True),
        message("activity", 1),
        message("outgoing", 1, private=True),
    )
    assert follow_up(last_note, NOW, 24, 7, history=quiet).outcome == DUE
    replied = history(message("outgoing", 30), message("incoming", 20), message("outgoing", 1, private=True))
    assert follow_up(last_note, NOW, 24, 7, history=replied) == (7, NOT_DUE, "the customer replied")
    notes_only = history(message("incoming", 40), message("outgoing", 1, private=True))
    assert (
        follow_up(last_note, NOW, 24, 7, history=notes_only).reason
        == "no outgoing message of ours to follow up on"
    )
    closed = conversation(message("outgoing", 1, private=True), can_reply=False)
    assert follow_up(closed, NOW, 24, 7, history=quiet).outcome == REPLY_WINDOW


def test_blocker_ignores_deleted_messages_as_today():
    messages = history(message("outgoing", 30), message("incoming", 20, content_attributes={"deleted": True}))
    assert follow_up_blocker(messages, NOW, 24) is None


# ---- which conversations ----------------------------------------------------------------------------


def test_matches_open_inbox_and_any_label():
    vip = conversation(message(), labels=["vip", "billing"], inbox_id=3)
    assert matches(vip, None, ())
    assert matches(vip, 3, ["vip"]) and matches(vip, None, ["other", "billing"])
    assert not matches(vip, 1, ()) and not matches(vip, None, ["other"])
    assert not matches(conversation(message(), status="resolved"), None, ())


class FakeHook:
    """The three hook methods the finder uses; every call recorded."""

    def __init__(self, conversations: list[Conversation], histories: dict[int, list[Message]]) -> None:
        self.conversations = {c.id: c for c in conversations}
        self.histories = histories
        self.calls: list[tuple[str, Any]] = []

    def iter_conversations(self, *, query: Any) -> Any:
        self.calls.append(("iter_conversations", query))
        return iter(c for c in self.conversations.values() if c.status == query.status)

    def get_conversation(self, cid: int) -> Conversation:
        self.calls.append(("get_conversation", cid))
        return self.conversations[cid]

    def list_messages(self, cid: int, *, after: int) -> list[Message]:
        self.calls.append(("list_messages", (cid, after)))
        return self.histories[cid]


def test_finder_reads_only_the_private_note_conversations_history():
    note = message("outgoing", 1, private=True)
    conversations = [
        conversation(message("outgoing", 30), cid=1),
        conversation(note, cid=2),
        conversation(message("incoming", 30), cid=3),
        conversation(message("outgoing", 30), cid=4, can_reply=False),
        conversation(message("outgoing", 30), cid=5, status="resolved"),
    ]
    hook = FakeHook(conversations, {2: history(message("outgoing", 30), note)})

    found = find_follow_ups(hook, NOW, hours=24, lookback_days=7, inbox_id=4, labels=["vip"])

    assert found == {"due": [1, 2], "skipped_reply_window": [4]}
    (listed, query), read = hook.calls[0], hook.calls[1:]
    assert listed == "iter_conversations"
    assert (query.status, query.inbox_id, query.labels) == ("open", 4, ("vip",))
    assert read == [("list_messages", (2, NOW - 7 * rule.DAY))]


def test_finder_with_a_template_keeps_a_closed_window_due():
    conversations = [
        conversation(message("outgoing", 30), cid=1),
        conversation(message("outgoing", 30), cid=4, can_reply=False),
        conversation(message("incoming", 30), cid=5, can_reply=False),  # not due anyway
    ]
    with_template = find_follow_ups(
        FakeHook(conversations, {}), NOW, hours=24, lookback_days=7, with_template=True
    )
    without = find_follow_ups(FakeHook(conversations, {}), NOW, hours=24, lookback_days=7)
    assert with_template == {"due": [1, 4], "skipped_reply_window": []}
    assert without == {"due": [1], "skipped_reply_window": [4]}


def test_finder_given_ids_reads_each_and_keeps_the_matching_open_ones_in_their_order():
    conversations = [
        conversation(message("outgoing", 30), cid=1, labels=["vip"]),
        conversation(message("outgoing", 30), cid=2),
        conversation(message("outgoing", 30), cid=3, labels=["vip"], status="resolved"),
        conversation(message("outgoing", 30), cid=4, labels=["vip"]),
    ]
    hook = FakeHook(conversations, {})

    found = find_follow_ups(
        hook, NOW, hours=24, lookback_days=7, conversation_ids=[4, 3, 2, 1, 4], labels=["vip"]
    )

    assert found == {"due": [4, 1], "skipped_reply_window": []}
    assert hook.calls == [("get_conversation", cid) for cid in (4, 3, 2, 1)]


def test_finder_logs_every_decision_and_why_a_given_id_is_left_out():
    conversations = [
        conversation(message("outgoing", 30), cid=1, status="resolved"),
        conversation(message("outgoing", 30), cid=2, inbox_id=9),
        conversation(message("incoming", 30), cid=3),
    ]
    lines: list[str] = []

    class Log:
        def info(self, text: str, *args: Any) -> None:
            lines.append(text % args)

    find_follow_ups(
        FakeHook(conversations, {}),
        NOW,
        hours=24,
        lookback_days=7,
        conversation_ids=[1, 2, 3],
        inbox_id=1,
        log=Log(),
    )

    assert lines == [
        "Conversation 1: not looked after (status resolved)",
        "Conversation 2: not looked after (inbox 9, labels none)",
        "Conversation 3: not_due (the customer wrote last)",
        "0 of 1 open conversation(s) are due a nudge; 0 more are but their reply window has closed",
    ]
