"""The emulator's account: conversation list, meta and show as Chatwoot answers them, on both flavors.

Facts from CHATWOOT-ACCOUNT.md (Chatwoot's ConversationFinder, SortHandler, MessageWindowService,
Message callbacks and the conversation partial).
"""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from tests.testing.emulator.test_emulator import headers, printed_values, served_port, serving, stop

REPO = Path(__file__).resolve().parents[3]
OPENAPI = REPO.parent / "shared" / "doto-api" / "chatwoot-openapi.json"
both = pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
T0 = 1_780_000_000
HOUR = 3600


def get(emu: DotoEmulator, path: str = "", **params: Any) -> requests.Response:
    return requests.get(emu.conversations_url() + path, headers=headers(emu), params=params, timeout=10)


def data(emu: DotoEmulator, **params: Any) -> dict[str, Any]:
    response = get(emu, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["data"]
    return body


def ids(emu: DotoEmulator, **params: Any) -> list[int]:
    return [c["id"] for c in data(emu, **params)["payload"]]


def show(emu: DotoEmulator, cid: int) -> dict[str, Any]:
    response = requests.get(emu.conversation_url(cid), headers=headers(emu), timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def frozen(emu: DotoEmulator, ts: int = T0) -> DotoEmulator:
    emu.clock.freeze(ts)
    return emu


# -- the list: status, paging, filters ------------------------------------------------------------------------


@both
def test_status_defaults_to_open_and_all_lists_every_status(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    opened = emu.add_conversation()
    resolved = emu.add_conversation(status="resolved")
    pending = emu.add_conversation(status="pending")
    snoozed = emu.add_conversation(status="snoozed")
    assert ids(emu) == [opened]
    assert ids(emu, status="resolved") == [resolved]
    assert ids(emu, status="pending") == [pending]
    assert ids(emu, status="snoozed") == [snoozed]
    assert sorted(ids(emu, status="all")) == [opened, resolved, pending, snoozed]
    assert ids(emu, status="nonsense") == []
    assert data(emu, status="all")["meta"]["all_count"] == 4


@both
def test_pages_of_25_and_counts_of_every_match(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    created = [emu.add_conversation(created_at=T0 + i) for i in range(60)]
    pages = [data(emu, page=p) for p in (1, 2, 3, 4)]
    assert [len(p["payload"]) for p in pages] == [25, 25, 10, 0]
    assert all(p["meta"]["all_count"] == 60 for p in pages)
    listed = [c["id"] for p in pages for c in p["payload"]]
    assert listed == created[::-1]  # last_activity_at desc: the newest first
    assert ids(emu, page="junk") == ids(emu, page=0) == ids(emu)  # Kaminari: page 1


@both
def test_assignee_type_filters_after_the_counts(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    mine = emu.add_conversation(assignee="Doto Agent")  # the token's own user
    theirs = emu.add_conversation(assignee="Sam Rivera")
    nobody = emu.add_conversation()
    counts = {"mine_count": 1, "assigned_count": 2, "unassigned_count": 1, "all_count": 3}
    for assignee_type, expected in (
        ("me", [mine]),
        ("assigned", [mine, theirs]),
        ("unassigned", [nobody]),
        ("all", [mine, theirs, nobody]),
    ):
        body = data(emu, assignee_type=assignee_type)
        assert sorted(c["id"] for c in body["payload"]) == expected
        assert body["meta"] == counts
    assignee = show(emu, theirs)["meta"]["assignee"]
    assert assignee["name"] == "Sam Rivera" and isinstance(assignee["id"], int)
    assert "assignee" not in show(emu, nobody)["meta"]


@both
def test_inbox_team_and_label_filters(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    whatsapp = emu.add_inbox("whatsapp", "WhatsApp")
    support = emu.add_team("Support")
    a = emu.add_conversation(inbox_id=whatsapp, labels=["vip", "billing"], team_id=support)
    b = emu.add_conversation(labels=["bug"])
    c = emu.add_conversation()
    assert ids(emu, inbox_id=whatsapp) == [a]
    assert sorted(ids(emu, inbox_id=1)) == [b, c]
    assert ids(emu, inbox_id=999) == []
    assert ids(emu, team_id=support) == [a]
    assert sorted(ids(emu, **{"labels[]": ["vip", "bug"]})) == [a, b]  # any of them
    assert ids(emu, **{"labels[]": "billing"}) == [a]
    assert ids(emu, labels="bug") == [b]
    assert data(emu, **{"labels[]": "nope"})["meta"]["all_count"] == 0
    unknown_team = get(emu, team_id=99)
    assert (unknown_team.status_code, unknown_team.json()) == (404, {"error": "Resource could not be found"})
    rendered = show(emu, a)
    assert rendered["labels"] == ["vip", "billing"] and rendered["inbox_id"] == whatsapp
    assert rendered["meta"]["channel"] == "Channel::Whatsapp"
    assert rendered["meta"]["team"]["id"] == support and rendered["meta"]["team"]["name"] == "Support"


@both
def test_q_searches_incoming_and_outgoing_content_and_ignores_status(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    parcel = emu.add_conversation(status="resolved")
    emu.add_message(parcel, "Where is my PARCEL?", message_type="outgoing")
    emu.update_conversation(parcel, status="resolved")
    note = emu.add_conversation()
    emu.add_message(note, "parcel lost", message_type="activity")
    other = emu.add_conversation()
    emu.add_message(other, "hello")
    assert ids(emu, q="parcel") == [parcel]  # resolved, found anyway; activity messages don't count
    assert sorted(ids(emu, q="")) == [parcel, other]  # ILIKE '%%': any chat message
    assert ids(emu, q="nothing like it") == []


@both
def test_sort_by(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    old = emu.add_conversation(created_at=T0 - 300, priority="low")
    new = emu.add_conversation(created_at=T0 - 200, priority="urgent")
    mid = emu.add_conversation(created_at=T0 - 100)
    emu.add_message(new, "hi", created_at=T0 - 150)  # waiting since T0 - 150
    emu.add_message(old, "hi", created_at=T0 - 50)  # waiting since T0 - 50, most recently active
    assert ids(emu) == ids(emu, sort_by="last_activity_at_desc") == [old, mid, new]
    assert ids(emu, sort_by="latest") == [old, mid, new]
    assert ids(emu, sort_by="last_activity_at_asc") == [new, mid, old]
    assert ids(emu, sort_by="created_at_asc") == [old, new, mid]
    assert ids(emu, sort_by="created_at_desc") == [mid, new, old]
    # No priority sorts as low (0); ties by last_activity_at in the same direction.
    assert ids(emu, sort_by="priority_desc") == [new, old, mid]
    assert ids(emu, sort_by="priority_asc") == [mid, old, new]
    # Nobody waiting sorts as now().
    assert ids(emu, sort_by="waiting_since_asc") == [new, old, mid]
    assert ids(emu, sort_by="waiting_since_desc") == [mid, old, new]
    assert ids(emu, sort_by="unread") == [old, new, mid]
    assert ids(emu, sort_by="no_such_order") == [old, mid, new]


@both
def test_sort_by_unread_counts_then_last_activity(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    quiet = emu.add_conversation(created_at=T0 - 10)  # no messages, the most recent
    chatty = emu.add_conversation(created_at=T0 - 300)
    once = emu.add_conversation(created_at=T0 - 300)
    for n in range(3):
        emu.add_message(chatty, f"hello {n}", created_at=T0 - 200 + n)
    emu.add_message(once, "hello", created_at=T0 - 100)
    assert [show(emu, c)["unread_count"] for c in (quiet, chatty, once)] == [0, 3, 1]
    assert ids(emu, sort_by="unread") == [chatty, once, quiet]
    assert ids(emu) == [quiet, once, chatty]


# -- meta and show ----------------------------------------------------------------------------------------------


@both
def test_meta_answers_the_counts_alone_with_the_same_filters(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.add_conversation(assignee="Doto Agent", labels=["vip"])
    emu.add_conversation()
    emu.add_conversation(status="resolved")
    response = get(emu, "/meta")
    assert response.status_code == 200
    assert response.json() == {
        "meta": {"mine_count": 1, "assigned_count": 1, "unassigned_count": 1, "all_count": 2}
    }
    assert get(emu, "/meta", status="all").json()["meta"]["all_count"] == 3
    assert get(emu, "/meta", labels="vip").json()["meta"]["all_count"] == 1


@both
def test_show_one_conversation_and_404(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(contact="Ann Smith", priority="high")
    emu.add_message(cid, "hello", created_at=T0 - 10)
    emu.add_message(cid, "assigned to Sam", message_type="activity", created_at=T0 - 5)
    body = show(emu, cid)
    assert body == emu.conversation(cid)
    assert body["id"] == cid and body["account_id"] == emu.account_id and body["status"] == "open"
    assert body["priority"] == "high" and body["meta"]["sender"]["name"] == "Ann Smith"
    assert body["meta"]["channel"] == "Channel::Api"
    assert [m["content"] for m in body["messages"]] == ["assigned to Sam"]  # the last message
    assert body["last_non_activity_message"]["content"] == "hello"
    sender = emu.messages(cid)[0]["sender"]
    assert (sender["name"], sender["id"]) == ("Ann Smith", body["meta"]["sender"]["id"])
    for path in ("/999", "/abc"):
        missing = get(emu, path)
        assert (missing.status_code, missing.json()) == (404, {"error": "Resource could not be found"})
    assert requests.get(emu.conversation_url(cid), timeout=5).status_code == 401


@both
def test_conversation_fields_and_types(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation()
    body = data(emu)["payload"][0]
    assert body["id"] == cid
    ints = (
        "account_id", "inbox_id", "created_at", "timestamp", "last_activity_at", "waiting_since",
        "first_reply_created_at", "unread_count", "agent_last_seen_at", "assignee_last_seen_at",
        "contact_last_seen_at",
    )  # fmt: skip
    assert all(type(body[name]) is int for name in ints), {n: body[n] for n in ints}
    assert type(body["updated_at"]) is float
    assert body["messages"] == [] and body["last_non_activity_message"] is None
    assert body["labels"] == [] and body["priority"] is None and body["snoozed_until"] is None
    assert body["can_reply"] is True and body["muted"] is False and isinstance(body["uuid"], str)
    assert (body["waiting_since"], body["first_reply_created_at"]) == (0, 0)  # nil.to_i
    assert set(body["meta"]) == {"sender", "channel", "hmac_verified"}


# -- what moves a conversation --------------------------------------------------------------------------------


@both
def test_messages_move_last_activity_updated_at_and_waiting_since(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(created_at=T0 - 1000)
    before = show(emu, cid)
    assert before["last_activity_at"] == T0 - 1000 and before["updated_at"] == T0 - 1000
    emu.add_message(cid, "help", created_at=T0 - 100)
    emu.add_message(cid, "again", created_at=T0 - 90)
    body = show(emu, cid)
    assert body["last_activity_at"] == body["timestamp"] == T0 - 90
    assert body["updated_at"] == float(T0)  # the commit time
    assert body["waiting_since"] == T0 - 100  # the first incoming while nobody waited
    assert body["unread_count"] == 2
    emu.add_message(cid, "a note", message_type="outgoing", private=True, created_at=T0 - 80)
    assert show(emu, cid)["waiting_since"] == T0 - 100  # a private note answers nobody
    emu.clock.advance(5)
    reply = requests.post(
        emu.messages_url(cid),
        headers=headers(emu),
        json={"content": "on it", "message_type": "outgoing"},
        timeout=5,
    )
    assert reply.status_code == 200
    body = show(emu, cid)
    assert body["waiting_since"] == 0 and body["first_reply_created_at"] == T0 + 5
    assert body["last_activity_at"] == T0 + 5 and body["updated_at"] == float(T0 + 5)
    emu.add_message(cid, "thanks", created_at=T0 + 6)
    assert show(emu, cid)["waiting_since"] == T0 + 6  # waiting again


@both
def test_bot_reply_clears_waiting_since(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation()
    emu.add_message(cid, "help")
    emu.add_message(cid, "I am a bot", message_type="outgoing", sender_type="AgentBot")
    body = show(emu, cid)
    assert body["waiting_since"] == 0 and body["first_reply_created_at"] == 0


@both
def test_late_commit_moves_last_activity_back_but_not_updated_at(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(created_at=T0 - 100)
    late = emu.add_message(cid, "created first", created_at=T0 - 20, late=1)
    assert show(emu, cid)["last_activity_at"] == T0 - 100  # not committed yet
    emu.clock.advance(1)
    emu.add_message(cid, "created second", created_at=T0 - 10)
    # The newer message lands, then the late one commits: last_activity_at goes back to its created_at.
    body = show(emu, cid)
    assert body["last_activity_at"] == T0 - 20 and body["updated_at"] == float(T0 + 1)
    assert late["id"] < body["messages"][0]["id"]
    # A seeded message with an older created_at does the same; updated_at never goes back.
    emu.clock.set(T0 - 500)
    emu.add_message(cid, "much older", created_at=T0 - 60)
    body = show(emu, cid)
    assert body["last_activity_at"] == T0 - 60 and body["updated_at"] == float(T0 + 1)


@both
def test_reveal_commits_a_hidden_message(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(created_at=T0 - 100)
    hidden = emu.add_message(cid, "hidden", created_at=T0 - 30, visible=False)
    assert show(emu, cid)["last_activity_at"] == T0 - 100
    emu.clock.advance(7)
    emu.reveal(hidden["id"])
    body = show(emu, cid)
    assert body["last_activity_at"] == T0 - 30 and body["updated_at"] == float(T0 + 7)


@both
def test_incoming_reopens_resolved_and_snoozed(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    resolved = emu.add_conversation(status="resolved")
    snoozed = emu.add_conversation(status="snoozed")
    pending = emu.add_conversation(status="pending")
    for cid in (resolved, snoozed, pending):
        emu.add_message(cid, "outgoing keeps it", message_type="outgoing")
    assert [show(emu, c)["status"] for c in (resolved, snoozed, pending)] == [
        "resolved",
        "snoozed",
        "pending",
    ]
    for cid in (resolved, snoozed, pending):
        emu.add_message(cid, "I'm back")
    assert [show(emu, c)["status"] for c in (resolved, snoozed, pending)] == ["open", "open", "pending"]
    assert sorted(ids(emu)) == [resolved, snoozed]


@both
def test_changes_without_a_message_move_only_updated_at(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(created_at=T0 - 100)
    emu.add_message(cid, "hi", created_at=T0 - 50)
    emu.add_team("Support", team_id=4)
    for step, change in enumerate(
        (
            {"status": "resolved"},
            {"labels": ["vip"]},
            {"priority": "urgent"},
            {"assignee": "Sam Rivera"},
            {"assignee": None},
            {"team_id": 4},
        ),
        start=1,
    ):
        emu.clock.set(T0 + step)
        emu.update_conversation(cid, **change)
        body = show(emu, cid)
        assert body["updated_at"] == float(T0 + step) and body["last_activity_at"] == T0 - 50
    body = show(emu, cid)
    assert (body["status"], body["labels"], body["priority"]) == ("resolved", ["vip"], "urgent")
    assert "assignee" not in body["meta"] and body["meta"]["team"]["id"] == 4
    with pytest.raises(ValueError, match="status"):
        emu.update_conversation(cid, status="closed")
    with pytest.raises(ValueError, match="unknown team"):
        emu.update_conversation(cid, team_id=5)


@both
def test_update_endpoints(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    cid = emu.add_conversation(created_at=T0 - 100)
    url = emu.conversation_url(cid)
    emu.clock.set(T0 + 1)
    toggled = requests.post(url + "/toggle_status", headers=headers(emu), json={}, timeout=5)
    assert toggled.status_code == 200
    assert toggled.json()["payload"] == {
        "success": True,
        "current_status": "resolved",
        "conversation_id": cid,
    }
    assert show(emu, cid)["updated_at"] == float(T0 + 1)
    snooze = {"status": "snoozed", "snoozed_until": T0 + 3600}
    assert requests.post(url + "/toggle_status", headers=headers(emu), json=snooze, timeout=5).ok
    assert (show(emu, cid)["status"], show(emu, cid)["snoozed_until"]) == ("snoozed", T0 + 3600)
    bad = requests.post(url + "/toggle_status", headers=headers(emu), json={"status": "closed"}, timeout=5)
    assert bad.status_code == 422
    emu.clock.set(T0 + 2)
    assert requests.post(
        url + "/toggle_priority", headers=headers(emu), json={"priority": "high"}, timeout=5
    ).ok
    labels = requests.post(url + "/labels", headers=headers(emu), json={"labels": ["a", "b"]}, timeout=5)
    assert labels.json() == {"payload": ["a", "b"]}
    body = show(emu, cid)
    assert (body["priority"], body["labels"], body["updated_at"]) == ("high", ["a", "b"], float(T0 + 2))
    missing = requests.post(emu.conversation_url(99) + "/labels", headers=headers(emu), json={}, timeout=5)
    assert missing.status_code == 404


@both
def test_a_bot_may_toggle_but_not_label_or_read(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    bot = emu.add_bot_token("bot-token")
    cid = emu.add_conversation()
    url = emu.conversation_url(cid)
    toggled = requests.post(
        url + "/toggle_status", headers=headers(emu, bot), json={"status": "pending"}, timeout=5
    )
    assert toggled.status_code == 200 and show(emu, cid)["status"] == "pending"
    assert requests.post(url + "/toggle_priority", headers=headers(emu, bot), json={}, timeout=5).ok
    denied = [
        requests.post(url + "/labels", headers=headers(emu, bot), json={"labels": ["x"]}, timeout=5),
        requests.get(url, headers=headers(emu, bot), timeout=5),
        requests.get(emu.conversations_url(), headers=headers(emu, bot), timeout=5),
        requests.get(emu.conversations_url() + "/meta", headers=headers(emu, bot), timeout=5),
    ]
    assert [r.status_code for r in denied] == [401] * 4


# -- updated_within -----------------------------------------------------------------------------------------------


@both
def test_updated_within_answers_every_match_without_paging(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator, T0 - 10_000)
    quiet = [emu.add_conversation() for _ in range(40)]
    emu.clock.set(T0)
    touched = [emu.add_conversation() for _ in range(30)]  # created now
    emu.update_conversation(quiet[0], labels=["x"])  # no message, still updated
    emu.add_message(quiet[1], "new message", created_at=T0 - 20_000)  # committed now, however old
    body = data(emu, updated_within=60)
    assert len(body["payload"]) == 32  # more than a page, all in one answer
    assert {c["id"] for c in body["payload"]} == {*touched, quiet[0], quiet[1]}
    assert body["meta"]["all_count"] == 70  # the counts ignore updated_within
    assert len(data(emu, updated_within=60, page=2)["payload"]) == 32  # page ignored
    assert ids(emu, updated_within=60, status="resolved") == []  # other filters still apply
    assert len(data(emu, updated_within=20_000)["payload"]) == 70
    assert len(data(emu, updated_within="")["payload"]) == 25  # not present: paged


@both
def test_an_older_server_ignores_updated_within(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator, T0 - 10_000)
    for _ in range(40):
        emu.add_conversation()
    emu.clock.set(T0)
    recent = emu.add_conversation()
    emu.supports_updated_within = False
    pages = [data(emu, updated_within=60, page=p)["payload"] for p in (1, 2)]
    assert [len(p) for p in pages] == [25, 16]  # paged, and the old conversations are there
    assert pages[0][0]["id"] == recent
    emu.reset()
    assert emu.supports_updated_within is True


# -- can_reply ----------------------------------------------------------------------------------------------------

WINDOWS = [
    # (channel, add_inbox kwargs, window in hours or None)
    ("api", {}, None),
    ("api", {"agent_reply_time_window": 12}, 12),
    ("web_widget", {}, None),
    ("email", {}, None),
    ("sms", {}, None),
    ("twilio_sms", {}, None),
    ("telegram", {}, None),
    ("whatsapp", {}, 24),
    ("twilio_whatsapp", {}, 24),
    ("facebook", {}, 24),
    ("facebook", {"human_agent": True}, 7 * 24),
    ("instagram", {}, 24),
    ("instagram", {"human_agent": True}, 7 * 24),
    ("tiktok", {}, 48),
]


@both
@pytest.mark.parametrize(("channel", "settings", "window"), WINDOWS)
def test_can_reply_follows_the_channel_window(
    doto_emulator: DotoEmulator, channel: str, settings: dict[str, Any], window: int | None
) -> None:
    emu = frozen(doto_emulator)
    inbox = emu.add_inbox(channel, **settings)
    cid = emu.add_conversation(inbox_id=inbox)
    # No incoming message yet: no window means yes, a window means no.
    assert show(emu, cid)["can_reply"] is (window is None)
    emu.add_message(cid, "hi", created_at=T0)
    emu.add_message(cid, "an agent's answer does not reopen the window", message_type="outgoing")
    assert show(emu, cid)["can_reply"] is True
    emu.clock.set(T0 + (window or 1000) * HOUR - 1)
    assert show(emu, cid)["can_reply"] is True
    emu.clock.set(T0 + (window or 1000) * HOUR)
    assert show(emu, cid)["can_reply"] is (window is None)
    emu.add_message(cid, "me again")  # a new incoming message opens the window again
    assert data(emu, status="all")["payload"][0]["can_reply"] is True


@both
def test_incoming_posts_only_in_api_inboxes(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    whatsapp = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    body = {"content": "hi", "message_type": "incoming"}
    response = requests.post(emu.messages_url(whatsapp), headers=headers(emu), json=body, timeout=5)
    assert response.status_code == 422
    api = emu.add_conversation(inbox_id=emu.add_inbox("api", agent_reply_time_window=1))
    response = requests.post(emu.messages_url(api), headers=headers(emu), json=body, timeout=5)
    assert response.status_code == 200 and response.json()["inbox_id"] == show(emu, api)["inbox_id"]


def test_inbox_arguments_are_checked(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    with pytest.raises(ValueError, match="unknown channel"):
        emu.add_inbox("pigeon")
    with pytest.raises(ValueError, match="API inboxes only"):
        emu.add_inbox("whatsapp", agent_reply_time_window=5)
    with pytest.raises(ValueError, match="unknown inbox"):
        emu.add_conversation(inbox_id=77)
    with pytest.raises(ValueError, match="already exists"):
        emu.add_inbox("api", inbox_id=1)
    assert [(i.inbox_id, i.channel_type) for i in emu.inboxes()] == [
        (1, "Channel::Api"),
        (2, "Channel::WebWidget"),
    ]


@both
def test_other_accounts_get_their_own_inboxes(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    emu.add_account(2)
    cid = emu.add_conversation(account_id=2)
    rendered = emu.conversation(cid, account_id=2)
    assert rendered["account_id"] == 2 and rendered["inbox_id"] not in (1, 2)
    assert [i.account_id for i in emu.inboxes(account_id=2)] == [2]
    assert ids(emu) == []


# -- a big account ------------------------------------------------------------------------------------------------


@both
def test_ten_thousand_conversations_build_and_list(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    built = emu.build_account(10_000, messages=2)
    assert len(built) == len(set(built)) == 10_000
    states = [emu.conversation(c) for c in built[::100]]
    channels = {s["meta"]["channel"] for s in states}
    assert {"Channel::Api", "Channel::Whatsapp", "Channel::Email"} <= channels
    everything = data(emu, status="all")
    assert everything["meta"]["all_count"] == 10_000
    meta = everything["meta"]
    assert meta["assigned_count"] + meta["unassigned_count"] == 10_000 and meta["mine_count"] > 0
    per_status = {
        s: data(emu, status=s)["meta"]["all_count"] for s in ("open", "resolved", "pending", "snoozed")
    }
    assert sum(per_status.values()) == 10_000 and all(per_status.values())
    last_page = data(emu, status="all", page=400)
    assert len(last_page["payload"]) == 25 and len(data(emu, status="all", page=401)["payload"]) == 0
    vip = data(emu, status="all", labels="vip")
    assert 0 < vip["meta"]["all_count"] < 10_000
    assert all("vip" in c["labels"] for c in vip["payload"])
    first = show(emu, built[0])  # open, unassigned, API inbox, last line now
    assert first["status"] == "open" and "assignee" not in first["meta"]
    assert first["meta"]["channel"] == "Channel::Api" and first["last_activity_at"] == emu.clock.now()
    latest = data(emu, status="all")["payload"]
    assert [c["last_activity_at"] for c in latest] == sorted(
        (c["last_activity_at"] for c in latest), reverse=True
    )
    recent = data(emu, status="all", updated_within=86_400)
    assert 0 < len(recent["payload"]) < 10_000


def test_build_account_is_deterministic(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.build_account(30, messages=3, seed=7)
    first = [emu.conversation(c) for c in range(1, 31)]
    emu.reset()
    emu.clock.freeze(T0)
    emu.build_account(30, messages=3, seed=7)
    assert [emu.conversation(c) for c in range(1, 31)] == first


# -- against Chatwoot's OpenAPI file ------------------------------------------------------------------------------


def openapi_validator(schema_name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is not here")
    spec = json.loads(OPENAPI.read_text())
    components = copy.deepcopy(spec["components"])
    # The file's conversation status enum lacks ``snoozed``, which the finder and toggle_status know.
    components["schemas"]["conversation"]["properties"]["status"]["enum"].append("snoozed")
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.doto_flavor("chatwoot")
def test_list_and_show_match_the_openapi_schemas(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    emu.build_account(60, messages=3)
    emu.update_conversation(1, status="snoozed", snoozed_until=emu.clock.now() + 60)
    listing = get(emu, status="all").json()
    openapi_validator("conversation_list").validate(listing)
    one = openapi_validator("conversation_show")
    for conversation in listing["data"]["payload"]:
        one.validate(show(emu, conversation["id"]))
    meta = get(emu, "/meta").json()
    assert set(meta) == {"meta"} and set(meta["meta"]) == {
        "mine_count", "assigned_count", "unassigned_count", "all_count",
    }  # fmt: skip


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_seeds_an_account_and_plays_an_older_server() -> None:
    with serving(
        "--port", "0", "--token", "cli-token", "--flavor", "chatwoot", "--conversations", "60", "--seed", "2",
        "--no-updated-within",
    ) as process:  # fmt: skip
        values = printed_values(process)
        served_port(values)
        assert len(values["conversation_ids"].split(",")) == 60
        conn = json.loads(shlex.split(values["AIRFLOW_CONN_DOTO_DEFAULT"])[0])
        url = f"{values['base_url']}/api/v1/accounts/1/conversations"
        auth = {"api_access_token": conn["password"]}
        body = requests.get(url, headers=auth, params={"status": "all"}, timeout=5).json()["data"]
        assert body["meta"]["all_count"] == 60 and len(body["payload"]) == 25
        statuses = {c["status"] for c in body["payload"]}
        assert len(statuses) > 1
        ignored = requests.get(url, headers=auth, params={"status": "all", "updated_within": 1}, timeout=5)
        assert len(ignored.json()["data"]["payload"]) == 25  # an older server pages as usual
        stop(process)


def test_cli_sets_the_window_failure_delay_and_delivery_receipts() -> None:
    with serving(
        "--port", "0", "--conversations", "40", "--window-failure-delay", "0", "--delivery-receipts", "0,0",
    ) as process:  # fmt: skip
        values = printed_values(process)
        conn = json.loads(shlex.split(values["AIRFLOW_CONN_DOTO_DEFAULT"])[0])
        base = f"{values['base_url']}/api/v1/accounts/1/conversations"
        auth = {"api_access_token": conn["password"]}
        conversations = []
        for page in (1, 2):  # 40 conversations: 25 a page
            params = {"status": "all", "page": page}
            conversations += requests.get(base, headers=auth, params=params, timeout=5).json()["data"][
                "payload"
            ]
        closed = next(
            c for c in conversations if c["meta"]["channel"] == "Channel::Whatsapp" and not c["can_reply"]
        )
        opened = next(
            c for c in conversations if c["meta"]["channel"] == "Channel::WebWidget" and c["can_reply"]
        )
        statuses = {}
        for conversation in (closed, opened):
            url = f"{base}/{conversation['id']}/messages"
            body = {"content": "Any news?", "message_type": "outgoing"}
            created = requests.post(url, headers=auth, json=body, timeout=5).json()
            assert created["status"] == "sent"
            listed = requests.get(url, headers=auth, timeout=5).json()["payload"]
            statuses[conversation["meta"]["channel"]] = next(m for m in listed if m["id"] == created["id"])
        assert statuses["Channel::Whatsapp"]["status"] == "failed"
        assert statuses["Channel::Whatsapp"]["content_attributes"]["external_error"] == WINDOW_FAILURE
        assert statuses["Channel::WebWidget"]["status"] == "read"
        stop(process)


# -- what the channel does after the 200: WhatsApp's window, delivery receipts ---------------------------------

WINDOW_FAILURE = "Template not found or invalid template name"  # CHATWOOT-ACCOUNT.md


def post_reply(emu: DotoEmulator, cid: int, **extra: Any) -> dict[str, Any]:
    body = {"content": "We miss you", "message_type": "outgoing", **extra}
    response = requests.post(emu.messages_url(cid), headers=headers(emu), json=body, timeout=5)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def listed(emu: DotoEmulator, cid: int, message_id: int) -> dict[str, Any]:
    response = requests.get(emu.messages_url(cid), headers=headers(emu), timeout=5)
    assert response.status_code == 200, response.text
    return next(m for m in response.json()["payload"] if m["id"] == message_id)


@both
@pytest.mark.parametrize("channel", ["whatsapp", "twilio_whatsapp"])
def test_free_text_outside_a_whatsapp_window_is_sent_then_failed(
    doto_emulator: DotoEmulator, channel: str
) -> None:
    emu = frozen(doto_emulator)
    assert emu.window_failure_delay == 3
    cid = emu.add_conversation(inbox_id=emu.add_inbox(channel))
    emu.add_message(cid, "hi", created_at=T0 - 25 * HOUR)
    assert show(emu, cid)["can_reply"] is False
    answer = post_reply(emu, cid)
    assert answer["status"] == "sent"  # answered 200, stored as sent
    assert listed(emu, cid, answer["id"])["status"] == "sent"
    emu.clock.advance(2)
    assert listed(emu, cid, answer["id"])["status"] == "sent"
    emu.clock.advance(1)
    failed = listed(emu, cid, answer["id"])
    assert failed["status"] == "failed"
    assert failed["content_attributes"]["external_error"] == WINDOW_FAILURE
    assert emu.message(answer["id"])["status"] == "failed"


@both
def test_window_failure_delay_zero_fails_at_the_next_read(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.window_failure_delay = 0
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))  # no incoming message: closed
    answer = post_reply(emu, cid, content_attributes={"k": "v"})
    assert answer["status"] == "sent"
    failed = listed(emu, cid, answer["id"])
    assert failed["status"] == "failed"
    assert failed["content_attributes"] == {"k": "v", "external_error": WINDOW_FAILURE}
    with pytest.raises(ValueError, match="window_failure_delay"):
        emu.window_failure_delay = -1
    emu.reset()
    assert emu.window_failure_delay == 3


@both
def test_only_public_outgoing_messages_outside_the_window_fail(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    emu.window_failure_delay = 0
    closed = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    note = post_reply(emu, closed, private=True)
    opened = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    emu.add_message(opened, "hi")
    inside = post_reply(emu, opened)
    facebook = emu.add_conversation(inbox_id=emu.add_inbox("facebook"))  # a window, no template rule
    other = post_reply(emu, facebook)
    assert listed(emu, closed, note["id"])["status"] == "sent"
    assert listed(emu, opened, inside["id"])["status"] == "sent"  # receipts are off by default
    assert listed(emu, facebook, other["id"])["status"] == "sent"


@both
def test_delivery_receipts_move_sent_delivered_read(doto_emulator: DotoEmulator) -> None:
    emu = frozen(doto_emulator)
    assert emu.delivery_receipts is None
    emu.delivery_receipts = (1, 5)
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    emu.add_message(cid, "hi")
    api_cid = emu.add_conversation()  # API inbox: the integrator sets statuses, none move here
    answer, api_answer = post_reply(emu, cid), post_reply(emu, api_cid)
    assert (answer["status"], listed(emu, cid, answer["id"])["status"]) == ("sent", "sent")
    emu.clock.advance(1)
    assert listed(emu, cid, answer["id"])["status"] == "delivered"
    emu.clock.advance(4)
    assert listed(emu, cid, answer["id"])["status"] == "read"
    assert show(emu, cid)["messages"][0]["status"] == "read"
    assert listed(emu, api_cid, api_answer["id"])["status"] == "sent"
    with pytest.raises(ValueError, match="delivery_receipts"):
        emu.delivery_receipts = (-1, 0)
    emu.reset()
    assert emu.delivery_receipts is None
