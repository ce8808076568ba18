"""The Doto emulator over real HTTP, driven with plain requests and httpx."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator, Fault
from airflow_provider_doto.testing.emulator.clock import Clock
from airflow_provider_doto.testing.stack.local_airflow import wait_until

REPO = Path(__file__).resolve().parents[3]


def headers(emu: DotoEmulator, token: str | None = None) -> dict[str, str]:
    return {"api_access_token": token or emu.token}


def conversation(emu: DotoEmulator, *contents: str, **kwargs: Any) -> int:
    cid = emu.add_conversation()
    for content in contents:
        emu.add_message(cid, content, **kwargs)
    return cid


def list_payload(emu: DotoEmulator, cid: int, **params: Any) -> list[dict[str, Any]]:
    response = requests.get(emu.messages_url(cid), headers=headers(emu), params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["payload"]


def post(emu: DotoEmulator, cid: int, body: Any, timeout: float = 5) -> requests.Response:
    return requests.post(emu.messages_url(cid), headers=headers(emu), json=body, timeout=timeout)


def delete(emu: DotoEmulator, url: str) -> requests.Response:
    return requests.delete(url, headers=headers(emu), timeout=5)


# -- endpoints ---------------------------------------------------------------------------------------


def test_list_returns_all_messages_oldest_first(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "second", created_at=200)
    doto_emulator.add_message(cid, "first", created_at=100, message_type="outgoing")
    response = requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator), timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["meta"], dict)
    assert [m["content"] for m in body["payload"]] == ["first", "second"]
    first = body["payload"][0]
    assert set(first) >= {
        "id", "content", "message_type", "status", "private", "created_at", "content_type",
        "content_attributes", "sender", "attachments", "conversation_id", "account_id",
    }  # fmt: skip
    assert first["sender"]["type"] == "User"
    assert body["payload"][1]["sender"]["type"] == "Contact"


def test_post_creates_message(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    now = doto_emulator.clock.freeze(1_712_001_000)
    response = post(doto_emulator, cid, {"content": "Thanks for reaching out!", "message_type": "outgoing"})
    assert response.status_code == 200
    message = response.json()
    assert message["content"] == "Thanks for reaching out!"
    assert message["message_type"] == "outgoing"
    assert message["status"] == "sent"
    assert message["private"] is False
    assert message["content_type"] == "text"
    assert message["content_attributes"] == {}
    assert message["attachments"] == []
    assert message["created_at"] == now
    assert message["sender"]["type"] == "User"
    assert (message["conversation_id"], message["account_id"]) == (cid, 1)
    assert doto_emulator.messages(cid) == [message]


def test_post_incoming_private_and_options(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    incoming = post(doto_emulator, cid, {"content": "Hello?", "message_type": "incoming"}).json()
    assert incoming["sender"]["type"] == "Contact"
    note = post(
        doto_emulator,
        cid,
        {
            "content": "Pick one",
            "message_type": "outgoing",
            "private": True,
            "content_type": "input_select",
            "content_attributes": {"items": [{"title": "A", "value": "a"}]},
        },
    ).json()
    assert note["private"] is True
    assert note["content_type"] == "input_select"
    assert note["content_attributes"] == {"items": [{"title": "A", "value": "a"}]}
    assert note["id"] > incoming["id"]


def test_ids_are_global_and_ascending(doto_emulator: DotoEmulator) -> None:
    first, second = doto_emulator.add_conversation(), doto_emulator.add_conversation()
    a = post(doto_emulator, first, {"content": "a", "message_type": "outgoing"}).json()["id"]
    b = doto_emulator.add_message(second, "b")["id"]
    c = post(doto_emulator, first, {"content": "c", "message_type": "outgoing"}).json()["id"]
    assert a < b < c


def test_delete_hard_by_default(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "keep", "drop")
    drop_id = doto_emulator.messages(cid)[1]["id"]
    url = f"{doto_emulator.messages_url(cid)}/{drop_id}"
    response = delete(doto_emulator, url)
    assert response.status_code == 200
    assert response.json()["id"] == drop_id
    assert [m["content"] for m in list_payload(doto_emulator, cid)] == ["keep"]
    assert delete(doto_emulator, url).status_code == 404
    assert len(doto_emulator.messages(cid)) == 2
    assert len(doto_emulator.messages(cid, include_deleted=False)) == 1


def test_after_and_before_are_strict(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    for ts in (100, 101, 101, 102):
        doto_emulator.add_message(cid, f"at {ts}", created_at=ts)
    assert [m["created_at"] for m in list_payload(doto_emulator, cid, after=100)] == [101, 101, 102]
    assert [m["created_at"] for m in list_payload(doto_emulator, cid, before=102)] == [100, 101, 101]
    assert [m["created_at"] for m in list_payload(doto_emulator, cid, after=100, before=102)] == [101, 101]
    assert list_payload(doto_emulator, cid, after=102) == []


def test_extra_accounts_are_separate(doto_emulator: DotoEmulator) -> None:
    doto_emulator.add_account(2)
    other = doto_emulator.add_conversation(conversation_id=7, account_id=2)
    doto_emulator.add_message(other, "elsewhere", account_id=2)
    url2 = doto_emulator.messages_url(other, account_id=2)
    response = requests.get(url2, headers=headers(doto_emulator), timeout=5)
    assert [m["content"] for m in response.json()["payload"]] == ["elsewhere"]
    url1 = doto_emulator.messages_url(other, account_id=1)
    assert requests.get(url1, headers=headers(doto_emulator), timeout=5).status_code == 404


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_bad_token_is_401(doto_emulator: DotoEmulator, method: str, token: str | None) -> None:
    cid = conversation(doto_emulator, "hello")
    url = doto_emulator.messages_url(cid) + ("/1" if method == "DELETE" else "")
    sent = {} if token is None else {"api_access_token": token}
    body = {"content": "x", "message_type": "outgoing"} if method == "POST" else None
    response = requests.request(method, url, headers=sent, json=body, timeout=5)
    assert response.status_code == 401
    if token is None:  # Devise's sign-in layer answers before Chatwoot's token check
        assert response.json() == {"errors": ["You need to sign in or sign up before continuing."]}
    else:
        assert response.json() == {"error": "Invalid Access Token"}
    assert len(doto_emulator.messages(cid, include_deleted=False)) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/accounts/99/conversations/1/messages"),
        ("GET", "/api/v1/accounts/1/conversations/99/messages"),
        ("GET", "/api/v1/accounts/1/conversations/abc/messages"),
        ("POST", "/api/v1/accounts/1/conversations/99/messages"),
        ("DELETE", "/api/v1/accounts/1/conversations/1/messages/999"),
        ("DELETE", "/api/v1/accounts/1/conversations/99/messages/1"),
    ],
)
def test_unknown_resources_are_404(doto_emulator: DotoEmulator, method: str, path: str) -> None:
    conversation(doto_emulator, "hello")
    body = {"content": "x", "message_type": "outgoing"} if method == "POST" else None
    response = requests.request(
        method, doto_emulator.base_url + path, headers=headers(doto_emulator), json=body, timeout=5
    )
    assert response.status_code == 404
    assert response.json() == {"error": "Resource could not be found"}


def test_delete_checks_the_message_belongs_to_the_conversation(doto_emulator: DotoEmulator) -> None:
    first = conversation(doto_emulator, "mine")
    second = doto_emulator.add_conversation()
    message_id = doto_emulator.messages(first)[0]["id"]
    url = f"{doto_emulator.messages_url(second)}/{message_id}"
    assert delete(doto_emulator, url).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"message_type": "outgoing"},
        {"content": "", "message_type": "outgoing"},
        {"content": "   ", "message_type": "outgoing"},
        {"content": 5, "message_type": "outgoing"},
        {"content": "x"},
        {"content": "x", "message_type": "activity"},
        {"content": "x", "message_type": 1},
        {"content": "x", "message_type": "outgoing", "private": "yes"},
        {"content": "x", "message_type": "outgoing", "content_type": "hologram"},
        {"content": "x", "message_type": "outgoing", "content_attributes": ["a"]},
        ["not", "an", "object"],
    ],
)
def test_invalid_post_is_422(doto_emulator: DotoEmulator, body: Any) -> None:
    cid = doto_emulator.add_conversation()
    response = post(doto_emulator, cid, body)
    assert response.status_code == 422
    assert isinstance(response.json()["error"], str)
    assert doto_emulator.messages(cid) == []


def test_non_json_post_is_422(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    response = requests.post(
        doto_emulator.messages_url(cid),
        headers={**headers(doto_emulator), "Content-Type": "application/json"},
        data=b"{not json",
        timeout=5,
    )
    assert response.status_code == 422


def test_bad_timestamp_query_is_422(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    response = requests.get(
        doto_emulator.messages_url(cid), headers=headers(doto_emulator), params={"after": "yesterday"}
    )
    assert response.status_code == 422


def test_incoming_rejected_outside_api_inbox(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation(api_inbox=False)
    response = post(doto_emulator, cid, {"content": "hi", "message_type": "incoming"})
    assert response.status_code == 422
    assert "Api inboxes" in response.json()["error"]
    assert post(doto_emulator, cid, {"content": "hi", "message_type": "outgoing"}).status_code == 200


# -- knobs -------------------------------------------------------------------------------------------


def test_page_cap_pages_forward_from_after(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    for ts in range(100, 110):
        doto_emulator.add_message(cid, str(ts), created_at=ts)
    doto_emulator.page_cap = 3
    assert [m["created_at"] for m in list_payload(doto_emulator, cid, after=101)] == [102, 103, 104]


def test_page_cap_without_after_returns_newest(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    for ts in range(100, 110):
        doto_emulator.add_message(cid, str(ts), created_at=ts)
    doto_emulator.page_cap = 3
    assert [m["created_at"] for m in list_payload(doto_emulator, cid)] == [107, 108, 109]
    assert [m["created_at"] for m in list_payload(doto_emulator, cid, before=105)] == [102, 103, 104]
    with pytest.raises(ValueError):
        doto_emulator.page_cap = 0


def test_int_message_types(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    for kind in ("incoming", "outgoing", "activity", "template"):
        doto_emulator.add_message(cid, kind, message_type=kind)
    doto_emulator.int_message_types = True
    assert [m["message_type"] for m in list_payload(doto_emulator, cid)] == [0, 1, 2, 3]
    created = post(doto_emulator, cid, {"content": "x", "message_type": "outgoing"}).json()
    assert created["message_type"] == 1
    deleted = delete(doto_emulator, f"{doto_emulator.messages_url(cid)}/{created['id']}").json()
    assert deleted["message_type"] == 1
    assert doto_emulator.messages(cid)[0]["message_type"] == "incoming"  # inspection stays strings


def test_activity_messages_have_no_sender(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "Conversation was resolved", message_type="activity")
    assert "sender" not in list_payload(doto_emulator, cid)[0]


def test_soft_delete_keeps_a_tombstone(doto_emulator: DotoEmulator) -> None:
    doto_emulator.soft_delete = True
    cid = conversation(doto_emulator, "secret", content_attributes={"x": 1})
    message_id = doto_emulator.messages(cid)[0]["id"]
    url = f"{doto_emulator.messages_url(cid)}/{message_id}"
    first = delete(doto_emulator, url)
    assert first.status_code == 200
    [listed] = list_payload(doto_emulator, cid)
    assert listed["id"] == message_id
    assert listed["content"] == "This message was deleted"
    assert listed["content_attributes"]["deleted"] is True
    again = delete(doto_emulator, url)
    assert again.status_code == 200  # Chatwoot answers 200 to a repeat delete of a soft-deleted message
    assert doto_emulator.messages(cid, include_deleted=False) == []


def test_frozen_clock_puts_many_messages_in_one_second(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    start = doto_emulator.clock.freeze(1_712_001_000)
    created = [
        post(doto_emulator, cid, {"content": f"m{i}", "message_type": "outgoing"}).json() for i in range(5)
    ]
    assert {m["created_at"] for m in created} == {start}
    assert [m["id"] for m in list_payload(doto_emulator, cid)] == [m["id"] for m in created]
    # The trap the contract warns about: a cursor at the newest created_at misses same-second messages.
    cursor = created[-1]["created_at"]
    doto_emulator.add_message(cid, "same second, seen later")
    assert list_payload(doto_emulator, cid, after=cursor) == []
    assert doto_emulator.clock.advance(1) == start + 1
    doto_emulator.add_message(cid, "next second")
    assert [m["content"] for m in list_payload(doto_emulator, cid, after=cursor)] == ["next second"]


def test_clock_set_and_unfreeze_never_go_backwards() -> None:
    clock = Clock()
    assert abs(clock.now() - time.time()) <= 1
    clock.freeze(5_000_000_000)
    clock.unfreeze()
    assert clock.now() >= 5_000_000_000
    clock.set(100)
    assert 100 <= clock.now() <= 101
    clock.freeze()
    clock.set(200)
    assert clock.now() == 200 and clock.frozen
    clock.reset()
    assert not clock.frozen and abs(clock.now() - time.time()) <= 1


def test_invisible_message_shows_after_reveal(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "on time", created_at=100)
    hidden = doto_emulator.add_message(cid, "stuck", created_at=101, visible=False)
    doto_emulator.add_message(cid, "newer", created_at=102)
    assert [m["content"] for m in list_payload(doto_emulator, cid)] == ["on time", "newer"]
    doto_emulator.reveal(hidden["id"])
    assert [m["content"] for m in list_payload(doto_emulator, cid)] == ["on time", "stuck", "newer"]


def test_late_message_commits_after_newer_ones(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.clock.freeze(1_000)
    late = doto_emulator.add_message(cid, "late", late=2)
    doto_emulator.clock.advance(1)
    doto_emulator.add_message(cid, "newer 1")
    assert [m["content"] for m in list_payload(doto_emulator, cid)] == ["newer 1"]
    post(doto_emulator, cid, {"content": "newer 2", "message_type": "outgoing"})
    payload = list_payload(doto_emulator, cid)
    assert [m["content"] for m in payload] == ["late", "newer 1", "newer 2"]
    assert payload[0]["id"] == late["id"] and payload[0]["created_at"] == 1_000


# -- faults ------------------------------------------------------------------------------------------


def test_status_fault_with_retry_after(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    fault = doto_emulator.inject("status", times=2, method="GET", status=429, retry_after=7)
    assert doto_emulator.faults == [fault]
    for _ in range(2):
        response = requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator), timeout=5)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        assert "error" in response.json()
    assert fault.remaining == 0 and doto_emulator.faults == []
    assert len(list_payload(doto_emulator, cid)) == 1


def test_status_fault_http_date_and_no_retry_after(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    doto_emulator.inject("status", status=429, retry_after=date)
    doto_emulator.inject("status", status=429)
    doto_emulator.inject("status", status=503)
    url = doto_emulator.messages_url(cid)
    assert httpx.get(url, headers=headers(doto_emulator)).headers["retry-after"] == date
    assert "retry-after" not in httpx.get(url, headers=headers(doto_emulator)).headers
    assert httpx.get(url, headers=headers(doto_emulator)).status_code == 503
    assert httpx.get(url, headers=headers(doto_emulator)).status_code == 200


def test_faults_match_method_and_path(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.inject("status", method="POST", status=500)
    doto_emulator.inject("status", path_contains="/conversations/999/", status=502)
    assert requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator)).status_code == 200
    assert post(doto_emulator, cid, {"content": "x", "message_type": "outgoing"}).status_code == 500
    assert doto_emulator.messages(cid) == []
    assert [f.status for f in doto_emulator.faults] == [502]
    doto_emulator.clear_faults()
    assert doto_emulator.faults == []


def test_fault_arguments_are_checked(doto_emulator: DotoEmulator) -> None:
    with pytest.raises(ValueError):
        doto_emulator.inject("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        doto_emulator.inject("delay")
    with pytest.raises(ValueError):
        doto_emulator.inject("status", times=0)
    assert isinstance(doto_emulator.inject("status"), Fault)
    assert doto_emulator.faults[0].status == 500


def test_delay_fault_times_out_the_client_but_still_commits(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    # A generous client timeout, and a server far slower than it (robust on a busy machine).
    doto_emulator.inject("delay", method="POST", delay=3.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(doto_emulator, cid, {"content": "slow", "message_type": "outgoing"}, timeout=1.0)
    assert doto_emulator.messages(cid) == []
    wait_until(lambda: len(doto_emulator.messages(cid)) == 1, 30, "the message to be stored")

    doto_emulator.inject("delay", method="GET", delay=3.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator), timeout=1.0)


def test_reset_discards_requests_still_delayed(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.inject("delay", method="POST", delay=3.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(doto_emulator, cid, {"content": "from the last test", "message_type": "outgoing"}, timeout=1.0)
    doto_emulator.reset()
    fresh = doto_emulator.add_conversation()
    assert fresh == cid
    # Nothing arrives later: wait until the server has finished the delayed request, then look.
    assert doto_emulator.in_flight >= 1  # still sleeping in its delay (an earlier test's may be too)
    wait_until(lambda: doto_emulator.in_flight == 0, 30, "no request in flight")
    assert doto_emulator.messages(fresh) == []


def test_delay_fault_then_normal_answer(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    fault = doto_emulator.inject("delay", delay=0.3)
    payload = list_payload(doto_emulator, cid)
    assert fault.hits == 1 and doto_emulator.faults == []  # the answer went through the delay
    assert len(payload) == 1


def test_drop_before_stores_nothing(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    body = {"content": "lost", "message_type": "outgoing"}
    doto_emulator.inject("drop_before", method="POST", times=2)
    with pytest.raises(requests.ConnectionError):
        post(doto_emulator, cid, body)
    with pytest.raises(httpx.TransportError):
        httpx.post(doto_emulator.messages_url(cid), headers=headers(doto_emulator), json=body)
    assert doto_emulator.messages(cid) == []
    assert [r.method for r in doto_emulator.requests] == ["POST", "POST"]


def test_drop_after_stores_but_gives_no_response(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    doto_emulator.inject("drop_after", method="POST", times=2)
    with pytest.raises(requests.ConnectionError):
        post(doto_emulator, cid, {"content": "via requests", "message_type": "outgoing"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            doto_emulator.messages_url(cid),
            headers=headers(doto_emulator),
            json={"content": "via httpx", "message_type": "outgoing"},
        )
    assert [m["content"] for m in doto_emulator.messages(cid)] == ["via requests", "via httpx"]


def test_drop_on_a_kept_alive_connection(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    with requests.Session() as session:
        session.headers.update(headers(doto_emulator))
        url = doto_emulator.messages_url(cid)
        assert session.get(url, timeout=5).status_code == 200
        doto_emulator.inject("drop_before")
        with pytest.raises(requests.ConnectionError):
            session.get(url, timeout=5)
        assert session.get(url, timeout=5).status_code == 200  # the server keeps serving


def test_malformed_fault(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    doto_emulator.inject("malformed")
    response = requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator), timeout=5)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    doto_emulator.inject("malformed", body=html)
    response = requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator), timeout=5)
    assert response.text == html
    assert response.headers["Content-Type"].startswith("text/html")


# -- inspection, reset, safety -----------------------------------------------------------------------


def test_requests_are_recorded_with_the_token_masked(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    list_payload(doto_emulator, cid, after=5)
    post(doto_emulator, cid, {"content": "x", "message_type": "outgoing"})
    requests.get(doto_emulator.messages_url(cid), headers={"api_access_token": "nope"}, timeout=5)
    get, sent, denied = doto_emulator.requests
    assert (get.method, get.query, get.json) == ("GET", {"after": "5"}, None)
    assert get.path == f"/api/v1/accounts/1/conversations/{cid}/messages"
    assert get.headers["api_access_token"] == "***" and get.authorized
    assert sent.json == {"content": "x", "message_type": "outgoing"}
    assert doto_emulator.token not in json.dumps([r.headers for r in doto_emulator.requests])
    assert not denied.authorized
    doto_emulator.clear_requests()
    assert doto_emulator.requests == []


def test_reset_restores_defaults(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    doto_emulator.page_cap = 1
    doto_emulator.int_message_types = doto_emulator.soft_delete = True
    doto_emulator.clock.freeze(1)
    doto_emulator.inject("status", times=5)
    doto_emulator.add_account(5)
    doto_emulator.reset()
    assert doto_emulator.page_cap is None
    assert not doto_emulator.int_message_types and not doto_emulator.soft_delete
    assert not doto_emulator.clock.frozen and doto_emulator.faults == [] and doto_emulator.requests == []
    assert requests.get(doto_emulator.messages_url(cid), headers=headers(doto_emulator)).status_code == 404
    with pytest.raises(ValueError):
        doto_emulator.add_conversation(account_id=5)
    assert doto_emulator.add_conversation() == 1
    assert doto_emulator.add_message(1, "fresh")["id"] == 1


def test_fixture_sets_the_airflow_connection(doto_emulator: DotoEmulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_DOTO_DEFAULT"])
    assert conn == {
        "conn_type": "doto",
        "host": doto_emulator.base_url,
        "password": doto_emulator.token,
        "extra": {"account_id": 1},
    }
    assert doto_emulator.base_url == f"http://127.0.0.1:{doto_emulator.port}"


def test_connection_uri_parses_to_the_same_connection(doto_emulator: DotoEmulator) -> None:
    from airflow.models.connection import Connection

    from_uri = Connection(conn_id="doto_uri", uri=doto_emulator.connection_uri())
    from_json = Connection.from_json(doto_emulator.connection_json(), conn_id="doto_json")
    for conn in (from_uri, from_json):
        assert conn.conn_type == "doto"
        assert conn.host == doto_emulator.base_url
        assert conn.password == doto_emulator.token
        # Airflow < 3.1.8 keeps URI query values as strings; the hook reads either (to_id).
        assert {k: str(v) for k, v in conn.extra_dejson.items()} == {"account_id": "1"}


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com"])
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match=host.replace(".", r"\.")):
        DotoEmulator(host=host)
    DotoEmulator(host=host, allow_non_loopback=True)  # explicit opt-in; not started


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_accepts_loopback_hosts(host: str) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        emulator = DotoEmulator(token="T", host=host).start()
    except OSError as exc:
        pytest.skip(f"cannot bind {host}: {exc}")
    with emulator:
        cid = emulator.add_conversation()
        response = requests.get(emulator.messages_url(cid), headers={"api_access_token": "T"}, timeout=5)
        assert response.status_code == 200


def test_stop_closes_the_port() -> None:
    with DotoEmulator(token="T") as emulator:
        url = emulator.messages_url(1)
        assert requests.get(url, timeout=5).status_code == 401
    assert not emulator.running
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    emulator.stop()  # idempotent


def test_serve_tls_serves_the_same_state_over_https_until_stop(tmp_path: Path) -> None:
    from airflow_provider_doto.testing.emulator.tls import self_signed_certificate

    certfile, keyfile = self_signed_certificate(tmp_path)
    with DotoEmulator(token="T") as emulator:
        with pytest.raises(RuntimeError):
            DotoEmulator().serve_tls(certfile, keyfile)  # not started
        tls_url = emulator.serve_tls(certfile, keyfile)
        assert tls_url.startswith("https://127.0.0.1:") and tls_url != emulator.base_url
        cid = conversation(emulator, "hello")
        url = emulator.messages_url(cid).replace(emulator.base_url, tls_url)
        sent = requests.post(
            url, json={"content": "hi", "message_type": "outgoing"}, headers={"api_access_token": "T"},
            verify=str(certfile), timeout=5,
        )  # fmt: skip
        assert sent.status_code == 200, sent.text
        assert [m["content"] for m in emulator.messages(cid)] == ["hello", "hi"]
        assert requests.get(url, verify=str(certfile), timeout=5).status_code == 401  # same token
    with pytest.raises(requests.ConnectionError):
        requests.get(url, verify=str(certfile), timeout=5)


def test_a_thousand_simultaneous_connections(doto_emulator: DotoEmulator) -> None:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2500:
        pytest.skip("needs ~2000 file descriptors (client and server share this process)")
    # Raw asyncio streams, since httpx's pool is the bottleneck at this size, not the server.
    cid = conversation(doto_emulator, "hello")
    path = doto_emulator.messages_url(cid).removeprefix(doto_emulator.base_url)
    request = f"GET {path} HTTP/1.1\r\nHost: emulator\r\napi_access_token: {doto_emulator.token}\r\n\r\n"

    async def poll(count: int) -> list[bytes]:
        streams = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", doto_emulator.port) for _ in range(count))
        )

        async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
            writer.write(request.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
            return head.split(b"\r\n", 1)[0]

        return await asyncio.gather(*(get(r, w) for r, w in streams))

    assert set(asyncio.run(poll(1000))) == {b"HTTP/1.1 200 OK"}


def test_httpx_async_client_in_parallel(doto_emulator: DotoEmulator) -> None:
    cid = conversation(doto_emulator, "hello")
    url = doto_emulator.messages_url(cid)

    async def poll_all(count: int) -> list[int]:
        async with httpx.AsyncClient(timeout=30, headers=headers(doto_emulator)) as client:
            responses = await asyncio.gather(*(client.get(url) for _ in range(count)))
        return [r.status_code for r in responses]

    assert asyncio.run(poll_all(100)) == [200] * 100


def test_state_is_thread_safe(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()

    def writer(n: int) -> None:
        with requests.Session() as session:
            for i in range(25):
                session.post(
                    doto_emulator.messages_url(cid),
                    headers=headers(doto_emulator),
                    json={"content": f"{n}-{i}", "message_type": "outgoing"},
                    timeout=10,
                )
                doto_emulator.add_message(cid, f"seed {n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [m["id"] for m in doto_emulator.messages(cid)]
    assert len(ids) == len(set(ids)) == 8 * 25 * 2


# -- command line ------------------------------------------------------------------------------------


def served_port(values: dict[str, str]) -> int:
    """The port the CLI bound itself (``--port 0``), read from the base_url it printed."""
    base_url = values["base_url"]
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", base_url), base_url
    return int(base_url.rsplit(":", 1)[1])


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> list[str]:
    lines: list[str] = []
    done = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(marker):
                done.set()
                return

    threading.Thread(target=pump, daemon=True).start()
    assert done.wait(timeout), f"no {marker!r} line; got {lines}"
    return lines


def run_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_doto.testing.emulator", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


@contextlib.contextmanager
def serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    """The CLI serving with ``args``; killed on the way out if the test did not stop it."""
    process = run_cli(*args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def printed_values(process: subprocess.Popen[str]) -> dict[str, str]:
    """The ``name=value`` lines the CLI prints, up to its connection line."""
    lines = read_until(process, "AIRFLOW_CONN_DOTO_DEFAULT=")
    return dict(line.split("=", 1) for line in lines if "=" in line)


def stop(process: subprocess.Popen[str], stop_signal: signal.Signals = signal.SIGTERM) -> None:
    """Stop the CLI with ``stop_signal``: it must exit cleanly."""
    process.send_signal(stop_signal)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_serves_seeded_conversation(stop_signal: signal.Signals) -> None:
    with serving("--port", "0", "--token", "cli-token", "--account", "3", "--seed", "6") as process:
        values = printed_values(process)
        served_port(values)
        conn = json.loads(shlex.split(values["AIRFLOW_CONN_DOTO_DEFAULT"])[0])
        assert conn["host"] == values["base_url"] and conn["password"] == "cli-token"
        assert conn["extra"] == {"account_id": 3}
        url = f"{values['base_url']}/api/v1/accounts/3/conversations/{values['conversation_id']}/messages"
        response = requests.get(url, headers={"api_access_token": "cli-token"}, timeout=5)
        payload = response.json()["payload"]
        assert len(payload) == 6
        assert [m["message_type"] for m in payload[:2]] == ["incoming", "outgoing"]
        stop(process, stop_signal)


def test_cli_refuses_non_loopback_host() -> None:
    process = run_cli("--host", "0.0.0.0", "--port", "0")
    _, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "0.0.0.0" in err and "allow-non-loopback" in err.replace("_", "-")
