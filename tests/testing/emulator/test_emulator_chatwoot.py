"""The emulator's flavors over real HTTP: Chatwoot's finder, JSON, limits, tokens, and routes."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.emulator.chatwoot import ruby_to_i
from tests.testing.emulator.test_emulator import delete, headers, printed_values, served_port, serving, stop

REPO = Path(__file__).resolve().parents[3]
chatwoot = pytest.mark.doto_flavor("chatwoot")
SIGN_IN = {"errors": ["You need to sign in or sign up before continuing."]}
BOT_DENIED = {"error": "Access to this endpoint is not authorized for bots"}
RAILS_404 = {"status": 404, "error": "Not Found"}


def get(emu: DotoEmulator, cid: int, **params: Any) -> requests.Response:
    return requests.get(emu.messages_url(cid), headers=headers(emu), params=params, timeout=5)


def listed(emu: DotoEmulator, cid: int, **params: Any) -> list[int]:
    response = get(emu, cid, **params)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["payload"]]


def post(emu: DotoEmulator, cid: int, body: Any, token: str | None = None) -> requests.Response:
    return requests.post(emu.messages_url(cid), headers=headers(emu, token), json=body, timeout=5)


def fill(emu: DotoEmulator, cid: int, count: int, start: int = 1_000) -> list[int]:
    """``count`` messages one second apart; returns their ids, oldest first."""
    return [emu.add_message(cid, f"m{i}", created_at=start + i)["id"] for i in range(count)]


# -- flavors and the Python API ----------------------------------------------------------------------


def test_default_flavor_is_doto(doto_emulator: DotoEmulator, doto_flavor: str) -> None:
    assert doto_flavor == doto_emulator.flavor == "doto"
    assert not doto_emulator.int_message_types and not doto_emulator.soft_delete
    assert doto_emulator.message_rate_limit is None


@chatwoot
def test_marker_selects_chatwoot(doto_emulator: DotoEmulator, doto_flavor: str) -> None:
    assert doto_flavor == doto_emulator.flavor == "chatwoot"
    assert doto_emulator.int_message_types and doto_emulator.soft_delete
    assert doto_emulator.message_rate_limit == (200, 60)
    assert doto_emulator.max_content_length == 150_000


@pytest.mark.parametrize("doto_emulator", ["chatwoot", "doto"], indirect=True)
@pytest.mark.doto_flavor("doto")  # the parameter wins over the marker
def test_indirect_param_selects_flavor(doto_emulator: DotoEmulator, request: pytest.FixtureRequest) -> None:
    assert doto_emulator.flavor == request.node.callspec.params["doto_emulator"]


def test_flavor_setter_reset_and_errors(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "kept")
    doto_emulator.flavor = "chatwoot"  # data kept, knobs to chatwoot defaults
    assert doto_emulator.soft_delete and len(doto_emulator.messages(cid)) == 1
    assert get(doto_emulator, cid).json()["payload"][0]["message_type"] == 0
    doto_emulator.soft_delete = False
    doto_emulator.reset()  # keeps the flavor, restores its defaults
    assert doto_emulator.flavor == "chatwoot" and doto_emulator.soft_delete
    doto_emulator.reset(flavor="doto")
    assert doto_emulator.flavor == "doto" and not doto_emulator.soft_delete
    with pytest.raises(ValueError, match="flavor"):
        doto_emulator.flavor = "zendesk"
    with pytest.raises(ValueError, match="flavor"):
        doto_emulator.reset(flavor="zendesk")
    with pytest.raises(ValueError, match="flavor"):
        DotoEmulator(flavor="zendesk")


def test_first_message_id_and_id_step_survive_reset() -> None:
    emu = DotoEmulator(flavor="chatwoot", first_message_id=2_000_000_000, id_step=3)
    cid = emu.add_conversation()
    assert [emu.add_message(cid, "x")["id"] for _ in range(2)] == [2_000_000_000, 2_000_000_003]
    emu.reset()
    assert emu.flavor == "chatwoot" and emu.first_message_id == 2_000_000_000 and emu.id_step == 3
    assert emu.add_message(emu.add_conversation(), "y")["id"] == 2_000_000_000
    emu.reset(first_message_id=7)
    assert emu.add_message(emu.add_conversation(), "z")["id"] == 7


@chatwoot
def test_interleaved_conversations_have_increasing_non_consecutive_ids(doto_emulator: DotoEmulator) -> None:
    a, b = doto_emulator.add_conversation(), doto_emulator.add_conversation()
    for i in range(3):
        doto_emulator.add_message(a, f"a{i}")
        post(doto_emulator, b, {"content": f"b{i}"})
    ids_a = [m["id"] for m in doto_emulator.messages(a)]
    assert ids_a == sorted(ids_a) and all(y - x == 2 for x, y in itertools.pairwise(ids_a))


# -- Chatwoot's MessageFinder ------------------------------------------------------------------------


@chatwoot
def test_no_params_is_the_latest_20_oldest_first(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 30)
    assert listed(doto_emulator, cid) == ids[-20:]


@chatwoot
def test_after_is_an_id_exclusive_capped_at_100(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 130)
    assert listed(doto_emulator, cid, after=ids[4]) == ids[5:105]
    assert listed(doto_emulator, cid, after=ids[-1]) == []


@chatwoot
def test_before_is_an_id_exclusive_newest_20(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 50)
    assert listed(doto_emulator, cid, before=ids[40]) == ids[20:40]
    assert listed(doto_emulator, cid, before=ids[3]) == ids[:3]


@chatwoot
def test_after_and_before_is_after_inclusive_capped_at_1000(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 1_010)
    assert listed(doto_emulator, cid, after=ids[2], before=ids[6]) == ids[2:6]
    assert listed(doto_emulator, cid, after=ids[0], before=ids[-1] + 1) == ids[:1000]


@chatwoot
def test_before_timestamp_is_seconds_strict_newest_20(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 40, start=5_000)
    assert listed(doto_emulator, cid, before_timestamp=5_030) == ids[10:30]
    assert listed(doto_emulator, cid, before_timestamp=5_003) == ids[:3]
    # before/after win over before_timestamp.
    assert listed(doto_emulator, cid, after=ids[35], before_timestamp=5_003) == ids[36:]


@chatwoot
def test_order_is_by_created_at_not_id(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    late = doto_emulator.add_message(cid, "stamped later", created_at=300)["id"]
    early = doto_emulator.add_message(cid, "stamped earlier", created_at=100)["id"]
    assert late < early
    assert listed(doto_emulator, cid) == [early, late]
    assert listed(doto_emulator, cid, after=0) == [early, late]
    assert listed(doto_emulator, cid, after=late) == [early]


@chatwoot
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"after": "abc"}, slice(0, 5)),  # junk reads as 0: every id > 0
        ({"after": "3abc"}, slice(3, 5)),  # leading digits
        ({"before": "junk"}, slice(0, 0)),  # id < 0: nothing
        ({"after": "", "before": "4"}, slice(0, 3)),  # a blank param is absent
        ({"after": "  "}, slice(0, 5)),  # blank too: the latest branch
        ({"after": "2", "before": "x"}, slice(0, 0)),  # 2 <= id < 0
        ({"before_timestamp": "zzz"}, slice(0, 0)),
    ],
)
def test_params_read_like_ruby_to_i(
    doto_emulator: DotoEmulator, params: dict[str, str], expected: slice
) -> None:
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 5)
    assert ids == [1, 2, 3, 4, 5]
    assert listed(doto_emulator, cid, **params) == ids[expected]


def test_ruby_to_i() -> None:
    assert [ruby_to_i(v) for v in ("12abc", " 7", "-3x", "1_000", "abc", "", None, "+5")] == [
        12, 7, -3, 1000, 0, 0, 0, 5,
    ]  # fmt: skip


@chatwoot
def test_filter_internal_messages(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    public = doto_emulator.add_message(cid, "hello")["id"]
    doto_emulator.add_message(cid, "note", message_type="outgoing", private=True)
    doto_emulator.add_message(cid, "Conversation was resolved", message_type="activity")
    reply = doto_emulator.add_message(cid, "reply", message_type="outgoing")["id"]
    assert len(listed(doto_emulator, cid)) == 4
    assert listed(doto_emulator, cid, filter_internal_messages="true") == [public, reply]
    assert listed(doto_emulator, cid, after=0, filter_internal_messages="1") == [public, reply]
    assert len(listed(doto_emulator, cid, filter_internal_messages="")) == 4


@chatwoot
def test_late_lower_id_shows_up_after_a_higher_one(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    first = doto_emulator.add_message(cid, "first", created_at=100)["id"]
    hidden = doto_emulator.add_message(cid, "hidden", created_at=101, visible=False)["id"]
    lagging = doto_emulator.add_message(cid, "lagging", created_at=101, late=1)["id"]
    assert listed(doto_emulator, cid, after=first) == []
    newer = doto_emulator.add_message(cid, "newer", created_at=102)["id"]
    assert hidden < lagging < newer
    # The poller that moved its cursor to ``newer`` would never see ``lagging`` with after=newer.
    assert listed(doto_emulator, cid, after=first) == [lagging, newer]
    for params in ({}, {"before": newer + 1}, {"after": 0, "before": newer + 1}, {"before_timestamp": 999}):
        assert hidden not in listed(doto_emulator, cid, **params)
    doto_emulator.reveal(hidden)
    assert listed(doto_emulator, cid, after=first) == [hidden, lagging, newer]


# -- JSON shape ---------------------------------------------------------------------------------------


@chatwoot
def test_json_shape_integers_and_lower_case_senders(doto_emulator: DotoEmulator) -> None:
    doto_emulator.add_bot_token("bot-token")
    cid = doto_emulator.add_conversation()
    for kind in ("incoming", "outgoing", "activity", "template"):
        doto_emulator.add_message(cid, kind, message_type=kind, created_at=100)
    created = post(doto_emulator, cid, {"content": "by agent", "message_type": "outgoing"}).json()
    by_bot = post(doto_emulator, cid, {"content": "by bot"}, token="bot-token").json()
    body = get(doto_emulator, cid).json()
    assert set(body) == {"meta", "payload"}
    assert body["meta"]["labels"] == [] and body["meta"]["contact"]["type"] == "contact"
    assert "assignee" not in body["meta"]
    payload = body["payload"]
    assert [m["message_type"] for m in payload] == [0, 1, 2, 3, 1, 1]
    assert [m.get("sender", {}).get("type") for m in payload] == [
        "contact", "user", None, "user", "user", "agent_bot",
    ]  # fmt: skip
    for message in payload:
        assert {
            "id", "content", "inbox_id", "conversation_id", "message_type", "content_type", "status",
            "content_attributes", "created_at", "private", "source_id",
        } <= set(message)  # fmt: skip
        assert "attachments" not in message and "account_id" not in message
        assert isinstance(message["created_at"], int) and message["conversation_id"] == cid
    assert created["message_type"] == 1 and created["sender"]["type"] == "user"
    assert by_bot["sender"]["type"] == "agent_bot" and by_bot["message_type"] == 1  # outgoing by default
    deleted = delete(doto_emulator, f"{doto_emulator.messages_url(cid)}/{created['id']}").json()
    assert deleted["message_type"] == 1
    assert doto_emulator.messages(cid)[0]["message_type"] == "incoming"  # inspection stays strings


def test_doto_flavor_keeps_strings_and_capitalised_senders(doto_emulator: DotoEmulator) -> None:
    doto_emulator.add_bot_token("bot-token")
    cid = doto_emulator.add_conversation()
    created = post(doto_emulator, cid, {"content": "x", "message_type": "outgoing"}, token="bot-token").json()
    assert created["message_type"] == "outgoing" and created["sender"]["type"] == "AgentBot"
    assert created["account_id"] == 1 and created["attachments"] == []
    assert post(doto_emulator, cid, {"content": "no type"}).status_code == 422  # Doto requires it


# -- delete, limits ---------------------------------------------------------------------------------------


@chatwoot
def test_soft_delete_twice(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    message = doto_emulator.add_message(
        cid, "secret", content_type="input_select", content_attributes={"x": 1}
    )
    url = f"{doto_emulator.messages_url(cid)}/{message['id']}"
    for _ in range(2):
        response = delete(doto_emulator, url)
        assert response.status_code == 200
        assert response.json()["id"] == message["id"]
        assert response.json()["content"] == "This message was deleted"
    [listed_message] = get(doto_emulator, cid).json()["payload"]
    assert listed_message["content"] == "This message was deleted"
    assert listed_message["content_type"] == "text"
    assert listed_message["content_attributes"] == {"deleted": True}
    assert "attachments" not in listed_message


@chatwoot
def test_flood_guard(doto_emulator: DotoEmulator) -> None:
    doto_emulator.clock.freeze(10_000)
    cid = doto_emulator.add_conversation()
    doto_emulator.set_message_rate_limit(3, window=60)
    doto_emulator.add_message(cid, "old", created_at=10_000 - 60)  # outside the window
    for i in range(3):
        assert post(doto_emulator, cid, {"content": f"m{i}"}).status_code == 200
    refused = post(doto_emulator, cid, {"content": "one too many"})
    assert (refused.status_code, refused.json()) == (422, {"error": "Too many messages"})
    other = doto_emulator.add_conversation()
    assert post(doto_emulator, other, {"content": "per conversation"}).status_code == 200
    doto_emulator.clock.advance(61)  # the window has passed
    assert post(doto_emulator, cid, {"content": "again"}).status_code == 200
    doto_emulator.set_message_rate_limit(None)
    doto_emulator.clock.advance(-61)
    assert post(doto_emulator, cid, {"content": "unlimited"}).status_code == 200
    with pytest.raises(ValueError):
        doto_emulator.set_message_rate_limit(0)
    doto_emulator.reset()
    assert doto_emulator.message_rate_limit == (200, 60)


@chatwoot
def test_flood_guard_default_is_200_per_minute(doto_emulator: DotoEmulator) -> None:
    doto_emulator.clock.freeze(10_000)
    cid = doto_emulator.add_conversation()
    for i in range(200):
        doto_emulator.add_message(cid, f"m{i}")
    assert post(doto_emulator, cid, {"content": "201st"}).status_code == 422


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_content_over_150k_is_422(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    ok = post(doto_emulator, cid, {"content": "x" * 150_000, "message_type": "outgoing"})
    assert ok.status_code == 200
    too_long = post(doto_emulator, cid, {"content": "x" * 150_001, "message_type": "outgoing"})
    assert too_long.status_code == 422
    assert too_long.json() == {"error": "Content is too long (maximum is 150000 characters)"}


# -- tokens -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_bot_token_may_only_create(doto_emulator: DotoEmulator) -> None:
    bot = doto_emulator.add_bot_token("bot-token")
    cid = doto_emulator.add_conversation()
    message = doto_emulator.add_message(cid, "hi")
    denied = [
        requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator, bot), timeout=5),
        requests.delete(
            f"{doto_emulator.messages_url(cid)}/{message['id']}",
            headers=headers(doto_emulator, bot),
            timeout=5,
        ),
        requests.get(doto_emulator.profile_url(), headers=headers(doto_emulator, bot), timeout=5),
        requests.get(doto_emulator.conversations_url(), headers=headers(doto_emulator, bot), timeout=5),
        # Refused before the record lookup: an unknown conversation is still 401 for a bot.
        requests.get(doto_emulator.messages_url(99), headers=headers(doto_emulator, bot), timeout=5),
    ]
    assert [(r.status_code, r.json()) for r in denied] == [(401, BOT_DENIED)] * len(denied)
    created = post(doto_emulator, cid, {"content": "from bot", "message_type": "outgoing"}, token=bot)
    assert created.status_code == 200
    assert len(doto_emulator.messages(cid, include_deleted=False)) == 2
    doto_emulator.reset()
    assert (
        post(doto_emulator, doto_emulator.add_conversation(), {"content": "x"}, token=bot).status_code == 401
    )


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
@pytest.mark.parametrize("path", ["/api/v1/profile", "/api/v1/accounts/1/conversations/1/messages"])
def test_token_errors(doto_emulator: DotoEmulator, path: str) -> None:
    doto_emulator.add_conversation()
    url = doto_emulator.base_url + path
    missing = requests.get(url, timeout=5)
    assert (missing.status_code, missing.json()) == (401, SIGN_IN)
    wrong = requests.get(url, headers={"api_access_token": "nope"}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Invalid Access Token"})


# -- profile and conversations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_profile_lists_the_accounts(doto_emulator: DotoEmulator) -> None:
    doto_emulator.add_account(7)
    response = requests.get(doto_emulator.profile_url(), headers=headers(doto_emulator), timeout=5)
    assert response.status_code == 200
    profile = response.json()
    assert {"id", "name", "email", "accounts"} <= set(profile)
    assert [(a["id"], a["role"]) for a in profile["accounts"]] == [(1, "administrator"), (7, "administrator")]
    assert all(isinstance(a["name"], str) for a in profile["accounts"])


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_conversation_list(doto_emulator: DotoEmulator) -> None:
    first = doto_emulator.add_conversation()
    second = doto_emulator.add_conversation(conversation_id=42, api_inbox=False)
    doto_emulator.add_message(first, "hello")
    doto_emulator.add_account(2)
    doto_emulator.add_conversation(account_id=2)
    response = requests.get(doto_emulator.conversations_url(), headers=headers(doto_emulator), timeout=5)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["meta"]["all_count"] == 2
    assert sorted(c["id"] for c in data["payload"]) == [first, second]
    for conversation in data["payload"]:
        assert conversation["account_id"] == 1 and conversation["status"] == "open"
        assert isinstance(conversation["inbox_id"], int)
    unknown = requests.get(doto_emulator.conversations_url(99), headers=headers(doto_emulator), timeout=5)
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Resource could not be found"})


def test_conversation_list_pages_by_25(doto_emulator: DotoEmulator) -> None:
    for _ in range(30):
        doto_emulator.add_conversation()
    url = doto_emulator.conversations_url()
    pages = [
        requests.get(url, headers=headers(doto_emulator), params=p, timeout=5).json()["data"]
        for p in ({}, {"page": 2})
    ]
    assert [len(p["payload"]) for p in pages] == [25, 5]
    assert pages[1]["meta"]["all_count"] == 30


# -- routing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
@pytest.mark.parametrize("token", [None, "wrong", "right"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/foo/api/v1/accounts/1/conversations/1/messages"),
        ("POST", "/foo/api/v1/accounts/1/conversations/1/messages"),
        ("GET", "/api/v1/nothing/here"),
        ("PUT", "/api/v1/accounts/1/conversations/1/messages"),
        ("GET", "/api/v1/accounts/1/conversations/1/messages/1"),
    ],
)
def test_unknown_route_is_rails_404(
    doto_emulator: DotoEmulator, method: str, path: str, token: str | None
) -> None:
    doto_emulator.add_conversation()
    sent = {} if token is None else {"api_access_token": doto_emulator.token if token == "right" else token}
    as_json = requests.request(method, doto_emulator.base_url + path, headers=sent, timeout=5)
    assert (as_json.status_code, as_json.json()) == (404, RAILS_404)
    assert as_json.headers["content-type"].startswith("application/json")
    for accept in ("application/json", "*/*", "text/html, application/json;q=0.9"):
        response = requests.request(
            method, doto_emulator.base_url + path, headers={**sent, "Accept": accept}, timeout=5
        )
        assert (response.status_code, response.json()) == (404, RAILS_404)
    html = requests.request(
        method, doto_emulator.base_url + path, headers={**sent, "Accept": "text/html"}, timeout=5
    )
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/html")
    assert "<html" in html.text and "Resource could not be found" not in html.text


def test_no_accept_header_is_json(doto_emulator: DotoEmulator) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", doto_emulator.port, timeout=5)
    connection.request("GET", "/nope", headers={})  # http.client sends no Accept header
    response = connection.getresponse()
    assert response.status == 404 and json.loads(response.read()) == RAILS_404
    connection.close()


@pytest.mark.parametrize("doto_emulator", ["doto", "chatwoot"], indirect=True)
def test_unknown_records_stay_chatwoot_404(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    for url in (doto_emulator.messages_url(cid, account_id=9), doto_emulator.messages_url(99)):
        response = requests.get(url, headers=headers(doto_emulator), timeout=5)
        assert (response.status_code, response.json()) == (404, {"error": "Resource could not be found"})


# -- large-server id regime --------------------------------------------------------------------------------------


@chatwoot
def test_ids_above_unix_timestamps(doto_emulator: DotoEmulator) -> None:
    doto_emulator.reset(first_message_id=2_000_000_000)
    cid = doto_emulator.add_conversation()
    ids = fill(doto_emulator, cid, 5, start=1_750_000_000)
    assert ids[0] == 2_000_000_000
    assert listed(doto_emulator, cid, after=ids[1]) == ids[2:]
    # Read as ids, a timestamp cursor below every id returns everything after it.
    assert listed(doto_emulator, cid, after=1_750_000_003) == ids
    assert listed(doto_emulator, cid, before_timestamp=1_750_000_002) == ids[:2]


# -- the command line --------------------------------------------------------------------------------------------


def test_cli_chatwoot_with_three_conversations() -> None:
    with serving(
        "--port", "0", "--token", "cli-token", "--flavor", "chatwoot", "--conversations", "3",
        "--seed", "4", "--first-message-id", "2000000000",
    ) as process:  # fmt: skip
        values = printed_values(process)
        assert values["flavor"] == "chatwoot"
        served_port(values)
        conversation_ids = [int(c) for c in values["conversation_ids"].split(",")]
        assert len(conversation_ids) == 3 and values["conversation_id"] == str(conversation_ids[0])
        conn = json.loads(shlex.split(values["AIRFLOW_CONN_DOTO_DEFAULT"])[0])
        assert conn["password"] == "cli-token"
        seen: list[int] = []
        for cid in conversation_ids:
            url = f"{values['base_url']}/api/v1/accounts/1/conversations/{cid}/messages"
            payload = requests.get(url, headers={"api_access_token": "cli-token"}, timeout=5).json()[
                "payload"
            ]
            ids = [m["id"] for m in payload]
            assert len(ids) == 4 and ids == sorted(ids) and ids[0] >= 2_000_000_000
            assert all(b - a == 3 for a, b in itertools.pairwise(ids))  # interleaved
            assert [m["message_type"] for m in payload[:2]] == [0, 1]
            seen += ids
        assert len(set(seen)) == 12
        stop(process)


# -- the pytest plugin, from a child pytest run ------------------------------------------------------------------


def test_plugin_marker_param_and_registration(tmp_path: Path) -> None:
    (tmp_path / "test_child.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_default(doto_emulator):
                assert doto_emulator.flavor == "doto"

            @pytest.mark.doto_flavor("chatwoot")
            def test_marker(doto_emulator, doto_flavor):
                assert doto_flavor == "chatwoot"

            @pytest.mark.parametrize("doto_emulator", ["chatwoot"], indirect=True)
            def test_param(doto_emulator):
                assert doto_emulator.flavor == "chatwoot"

            @pytest.mark.doto_flavor("zendesk")
            def test_bad(doto_emulator):
                pass
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert "3 passed" in result.stdout and "1 error" in result.stdout, result.stdout + result.stderr
    assert "unknown flavor 'zendesk'" in result.stdout
