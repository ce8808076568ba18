"""DotoAsyncHook against the emulator over real HTTP: behaviour only, whatever the transport.

The async hook must behave like the sync DotoHook (same flows, errors and retry policy): these
tests check what reaches the server and what comes back, never the HTTP client's internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._http import DotoRequest
from airflow_provider_doto.api._retry_policy import is_retryable
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
    DotoValidationError,
)
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

T = TypeVar("T")
FAST = api.RetryPolicy(attempts=4, backoff=0.01, max_wait=0.05)
ONCE = api.RetryPolicy(attempts=1)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def hook(policy: api.RetryPolicy = FAST, **kwargs: Any) -> DotoAsyncHook:
    return DotoAsyncHook(retry_policy=policy, **kwargs)


def requests_to(emu: DotoEmulator, method: str) -> list[Any]:
    return [r for r in emu.requests if r.method == method]


@pytest.fixture
def cid(doto_emulator: DotoEmulator) -> int:
    return doto_emulator.add_conversation()


# ---- connection ------------------------------------------------------------------------------


def test_settings_from_an_env_var_json_connection(doto_emulator: DotoEmulator) -> None:
    settings = run(hook().get_settings())
    assert settings.base_url == doto_emulator.base_url
    assert settings.account_id == doto_emulator.account_id
    assert settings.token == doto_emulator.token
    assert doto_emulator.token not in repr(settings)


def test_settings_from_an_env_var_uri_connection(
    doto_emulator: DotoEmulator, cid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_URI", doto_emulator.connection_uri())
    doto_emulator.add_message(cid, "hi")
    messages = run(DotoAsyncHook("doto_uri").list_messages(cid))
    assert [m.content for m in messages] == ["hi"]


def test_missing_connection_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_DOTO_MISSING", raising=False)
    with pytest.raises(DotoConfigError, match="doto_missing"):
        run(DotoAsyncHook("doto_missing").list_messages(1))


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        ({"conn_type": "doto", "host": "https://x.test", "extra": {"account_id": 1}}, "API Token"),
        ({"conn_type": "doto", "host": "https://x.test", "password": "t"}, "Account ID"),
        (
            {"conn_type": "doto", "host": "http://x.test", "password": "t", "extra": {"account_id": 1}},
            "plain http",
        ),
    ],
)
def test_bad_connection_fails_before_sending(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], match: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_BAD", json.dumps(conn))
    with pytest.raises(DotoConfigError, match=match):
        run(DotoAsyncHook("doto_bad").list_messages(1))


# ---- the API -----------------------------------------------------------------------------------


def test_list_messages_pages_a_capped_server_like_the_sync_hook(
    doto_emulator: DotoEmulator, cid: int
) -> None:
    emu = doto_emulator
    emu.page_cap = 20
    emu.int_message_types = True
    now = int(time.time())
    for i in range(45):
        emu.add_message(cid, f"m{i}", created_at=now - 100 + i // 3)  # three messages per second
    emu.add_message(cid, "agent", message_type="outgoing", created_at=now - 50)

    messages = run(hook().list_messages(cid, after=now - 200))
    assert len(messages) == 46 and len({m.id for m in messages}) == 46
    assert [m.created_at for m in messages] == sorted(m.created_at for m in messages)
    assert {m.message_type for m in messages} == {"incoming", "outgoing"}  # integers normalised
    assert len(requests_to(emu, "GET")) > 2  # it had to page
    assert [m.id for m in DotoHook().list_messages(cid, after=now - 200)] == [m.id for m in messages]


def test_list_messages_window(doto_emulator: DotoEmulator, cid: int) -> None:
    now = int(time.time())
    for offset in (-30, -20, -10):
        doto_emulator.add_message(cid, str(offset), created_at=now + offset)
    messages = run(hook().list_messages(cid, after=now - 30, before=now - 10))
    assert [m.content for m in messages] == ["-20"]  # both bounds are strict


def test_send_message_posts_the_documented_body(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    message = run(
        hook().send_message(
            cid, "internal note", private=True, content_attributes={"airflow_delivery_key": "k"}
        )
    )
    assert message.content == "internal note" and message.private is True
    [post] = requests_to(emu, "POST")
    assert post.json == {
        "content": "internal note",
        "message_type": "outgoing",
        "private": True,
        "content_type": "text",
        "content_attributes": {"airflow_delivery_key": "k"},
    }
    assert post.authorized and post.headers.get("api_access_token") == "***"
    assert emu.token not in json.dumps(post.json) + json.dumps(post.query)
    assert [m["id"] for m in emu.messages(cid)] == [message.id]


def test_send_message_checks_input_before_sending(doto_emulator: DotoEmulator, cid: int) -> None:
    with pytest.raises(DotoConfigError):
        run(hook().send_message(cid, "   "))
    with pytest.raises(DotoConfigError):
        run(hook().send_message(cid, "x", message_type="incoming", private=True))
    assert doto_emulator.requests == []


@pytest.mark.parametrize("soft", [False, True])
def test_delete_message_and_missing_ok(doto_emulator: DotoEmulator, cid: int, soft: bool) -> None:
    emu = doto_emulator
    emu.soft_delete = soft
    mid = emu.add_message(cid, "oops")["id"]
    assert run(hook().delete_message(cid, mid)) is True
    if not soft:
        assert run(hook().delete_message(cid, mid, missing_ok=True)) is False
        with pytest.raises(DotoNotFoundError):
            run(hook().delete_message(cid, mid))


def test_poll_uses_the_shared_cursor(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    start = int(time.time()) - 5
    watch = api.MessageWatch(start=start, filter=api.MessageFilter(content_pattern="refund"))
    emu.add_message(cid, "refund one")
    emu.add_message(cid, "hello")
    assert [m.content for m in run(hook().poll(watch, cid)) or []] == ["refund one"]
    assert run(hook().poll(watch, cid)) is None  # nothing reported twice
    emu.add_message(cid, "refund two")
    assert [m.content for m in run(hook().poll(watch, cid)) or []] == ["refund two"]


# ---- errors and retries ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, DotoAuthError), (403, DotoAuthError), (404, DotoNotFoundError), (422, DotoValidationError)],
)
def test_http_errors_are_typed_and_not_retried(
    doto_emulator: DotoEmulator, cid: int, status: int, error: type[Exception]
) -> None:
    emu = doto_emulator
    emu.inject("status", times=5, status=status)
    with pytest.raises(error) as raised:
        run(hook().list_messages(cid))
    assert f"HTTP {status}" in str(raised.value) and emu.token not in str(raised.value)
    assert len(requests_to(emu, "GET")) == 1


def test_unknown_conversation_is_not_found(doto_emulator: DotoEmulator) -> None:
    with pytest.raises(DotoNotFoundError):
        run(hook().list_messages(987654))


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (502, None), (429, 1), (429, None)])
def test_reads_are_retried_on_transient_status(
    doto_emulator: DotoEmulator,
    cid: int,
    status: int,
    retry_after: int | None,
    pinned_flavor: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emu = doto_emulator
    # A 429 is waited out with the connection's pacer: without Retry-After to the server's window's
    # end, here a 1 s window (the default is Chatwoot's minute).
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(flavor=pinned_flavor, rate_limit_window_seconds=1)
    )
    emu.add_message(cid, "hi")
    emu.inject("status", times=3, status=status, retry_after=retry_after)
    assert [m.content for m in run(hook().list_messages(cid))] == ["hi"]
    assert len(requests_to(emu, "GET")) == 4


def test_retries_are_bounded(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.inject("status", times=10, status=503)
    with pytest.raises(DotoServerError):
        run(hook().list_messages(cid))
    assert len(requests_to(emu, "GET")) == FAST.attempts


def test_rate_limit_carries_retry_after(doto_emulator: DotoEmulator, cid: int) -> None:
    doto_emulator.inject("status", status=429, retry_after=7)
    with pytest.raises(DotoRateLimitError) as raised:
        run(hook(ONCE).list_messages(cid))
    assert raised.value.retry_after == 7


def test_a_send_is_not_resent_after_a_5xx(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.inject("status", times=1, status=503, method="POST")
    with pytest.raises(DotoServerError):
        run(hook().send_message(cid, "maybe committed"))
    assert len(requests_to(emu, "POST")) == 1


def test_a_send_is_not_resent_when_the_answer_is_lost(doto_emulator: DotoEmulator, cid: int) -> None:
    """The server committed the message, then the connection dropped: exactly one message exists."""
    emu = doto_emulator
    emu.inject("drop_after", times=1, method="POST")
    with pytest.raises(DotoConnectionLostError):
        run(hook().send_message(cid, "committed once"))
    assert [m["content"] for m in emu.messages(cid)] == ["committed once"]
    assert len(requests_to(emu, "POST")) == 1


def test_a_send_refused_with_429_is_retried(
    doto_emulator: DotoEmulator, cid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = doto_emulator
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(rate_limit_window_seconds=1))
    emu.inject("status", times=1, status=429, method="POST")
    message = run(hook().send_message(cid, "after the rate limit"))
    assert [m["id"] for m in emu.messages(cid)] == [message.id]


def test_reads_survive_dropped_connections(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.add_message(cid, "hi")
    emu.inject("drop_before", times=2, method="GET")
    assert [m.content for m in run(hook().list_messages(cid))] == ["hi"]


def test_a_slow_answer_is_a_timeout(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.inject("delay", times=5, delay=4.0)  # answers long after a generous timeout
    with pytest.raises(DotoTimeoutError, match="no answer within"):
        run(hook(ONCE, timeout=1.0).list_messages(cid))


def test_a_slow_read_is_retried(doto_emulator: DotoEmulator, cid: int) -> None:
    emu = doto_emulator
    emu.add_message(cid, "hi")
    # A generous timeout (the retry must answer in time on a busy machine); the first answer comes far later.
    emu.inject("delay", times=1, delay=4.0)
    assert [m.content for m in run(hook(timeout=1.5).list_messages(cid))] == ["hi"]


def test_nothing_listening_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # bound (nobody else can take the port) but not listening: refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        conn = {
            "conn_type": "doto",
            "host": f"http://127.0.0.1:{port}",
            "password": "t",
            "extra": {"account_id": 1},
        }
        monkeypatch.setenv("AIRFLOW_CONN_DOTO_CLOSED", json.dumps(conn))
        with pytest.raises(DotoConnectError, match="could not connect"):
            run(DotoAsyncHook("doto_closed", retry_policy=ONCE).list_messages(1))


def test_a_malformed_answer_is_a_response_error(doto_emulator: DotoEmulator, cid: int) -> None:
    doto_emulator.inject("malformed", times=1)
    with pytest.raises(DotoResponseError):
        run(hook().list_messages(cid))


def test_same_answers_as_the_sync_hook(doto_emulator: DotoEmulator, cid: int) -> None:
    """Both hooks drive the same flows: identical results on identical data."""
    emu = doto_emulator
    emu.page_cap = 20
    now = int(time.time())
    for i in range(25):
        emu.add_message(
            cid, f"m{i}", created_at=now - 60 + i, message_type="outgoing" if i % 4 else "incoming"
        )
    sync = DotoHook().list_messages(cid, after=now - 61)
    asynchronous = run(hook().list_messages(cid, after=now - 61))
    assert [m.to_dict() for m in asynchronous] == [m.to_dict() for m in sync]


# ---- no token at DEBUG, TLS failures (mutation-checked, scripts/mutants.py) ------------------


@pytest.mark.doto_flavor("chatwoot")  # auto detection's probe and the id lookups log too
def test_no_token_in_debug_logs(
    doto_emulator: DotoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Every DEBUG record of a whole async session (connection load, the shared session, requests,
    a retried 503, a 404, a wrong token, test_connection) is scanned for the token."""
    caplog.set_level(logging.DEBUG)
    for name in ("airflow_provider_doto", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    token = doto_emulator.token
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "hello")
    wrong = json.dumps({**json.loads(doto_emulator.connection_json()), "password": token + "-wrong"})
    monkeypatch.setenv("AIRFLOW_CONN_WRONG", wrong)

    async def session() -> None:
        h = hook(api.RetryPolicy(attempts=3, backoff=0.01))
        assert (await h.get_settings()).token == token  # connection loaded
        assert [m.content for m in await h.list_messages(cid)] == ["hello"]
        sent = await h.send_message(cid, "reply")
        doto_emulator.inject("status", status=503, method="GET")
        await h.list_messages(cid)  # retried, logged
        await h.delete_message(cid, sent.id)
        with pytest.raises(DotoNotFoundError):
            await h.list_messages(cid + 1000)
        assert (await h.test_connection())[0] is True
        with pytest.raises(DotoAuthError):
            await DotoAsyncHook("wrong").list_messages(cid)

    run(session())
    out, err = capfd.readouterr()
    assert caplog.records, "nothing was logged: the DEBUG capture is not working"
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    for secret in (token, token + "-wrong"):
        for record in caplog.records:
            seen = f"{record.getMessage()} {record.msg!r} {record.args!r} {record.exc_text or ''}"
            assert secret not in seen, f"token in a log record of {record.name}: {record.msg!r}"
        assert secret not in caplog.text
        assert secret not in out
        assert secret not in err


@pytest.mark.doto_flavor("doto")
@pytest.mark.parametrize("method", ["list", "send"])
def test_tls_handshake_failure_is_a_connect_error_never_sent(
    doto_emulator: DotoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    """https spoken to a plain-http server: DotoConnectError (never sent), naming the likely cause,
    chaining aiohttp's SSL error, and retried even for a POST (nothing reached the application)."""
    import aiohttp

    caplog.set_level(logging.INFO, logger="airflow_provider_doto")
    cid = doto_emulator.add_conversation()
    base = doto_emulator.base_url.replace("http://", "https://", 1)
    conn = {**json.loads(doto_emulator.connection_json(flavor="doto")), "host": base}
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_TLS", json.dumps(conn))
    h = DotoAsyncHook("doto_tls", retry_policy=api.RetryPolicy(attempts=2, backoff=0.01))
    call = h.list_messages(cid) if method == "list" else h.send_message(cid, "hi")
    with pytest.raises(DotoConnectError) as info:
        run(call)
    err = info.value
    assert not isinstance(err, DotoConnectionLostError)
    assert "TLS handshake failed" in str(err)
    assert "likely because the server is not speaking https (it answered in plain http)" in str(err)
    assert isinstance(err.__cause__, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError)
    request = DotoRequest("POST" if method == "send" else "GET", err.path or "")
    assert err.method == request.method
    assert is_retryable(request, err)  # a POST too: it never reached Doto
    assert "retry 1 of" in caplog.text  # and the hook did retry it
    assert doto_emulator.messages(cid) == []
    assert doto_emulator.token not in str(err)
