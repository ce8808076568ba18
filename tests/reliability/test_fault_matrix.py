"""Fault matrix: every hook method (list / send / delete), sync and async, against every fault.

Read ``CASES`` as a table: one row per fault the emulator injects into the next request, and
for each method what must happen: how many requests reach the server (1 = not retried), which
typed error comes out (None = the call succeeds after retrying), what its message says, and for
a POST how many messages exist afterwards. A POST is never re-sent once it may have reached the
server (timeout, dropped connection, 5xx, even a drop before commit: the client cannot tell);
only 429 (refused before doing anything) and a refused connection are retried.

A 429 on a paced connection (the default) is waited out by the connection's pacer, every request
of the process together, within a time budget (``rate_limit_wait_seconds``), not by the retry
policy: the rows marked ``paced`` show that; the other 429 rows turn pacing off
(``max_requests_per_minute: 0``) and show the retry policy alone.

Every call runs under a hang guard: it must end within its timeouts and waits plus a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.api._delivery import DELIVERY_KEY_ATTRIBUTE
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoHTTPError,
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
from airflow_provider_doto.testing.stack.local_airflow import wait_until

from .reliability_support import (
    FIGURES,
    HANG_SLACK,
    POLICY,
    TIMEOUT,
    assert_no_token,
    bounded,
    error_texts,
)

DELAY = TIMEOUT + 2.0  # server-side delay for the timeout rows: answers long after the client gave up
# The rows that are not about timeouts give the client this long: an answer the server sends at once
# can take more than TIMEOUT to arrive on a loaded 2-core machine, and a timeout there is no fault.
PATIENT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Expect:
    requests: int  # requests of this method and path the emulator recorded (1 = not retried)
    error: type[DotoError] | None = None  # None: the call succeeds
    says: tuple[str, ...] = ()  # besides the method and path, which every message names
    committed: int | None = None  # POST only: messages with this content afterwards
    status: int | None = None  # DotoHTTPError.status
    waited: float = 0.0  # a server-asked wait (Retry-After) that must have been honoured


@dataclass(frozen=True)
class Case:
    name: str
    fault: dict[str, Any]
    GET: Expect
    POST: Expect
    DELETE: Expect
    extra: dict[str, Any] = field(default_factory=dict)  # the connection's extras for this row

    @property
    def paced(self) -> bool:
        return self.extra.get("max_requests_per_minute") != 0


def same(expect: Expect, **post: Any) -> dict[str, Expect]:
    """The same outcome for every method; ``post`` overrides fields for the POST."""
    return {
        "GET": expect,
        "POST": Expect(**{**expect.__dict__, "committed": 0, **post}),
        "DELETE": expect,
    }


def http_error(status: int, cls: type[DotoError], text: str) -> Expect:
    return Expect(1, cls, (f"HTTP {status}", text), status=status)


def only_post_fails(post: Expect) -> dict[str, Expect]:
    """GET and DELETE are retried and succeed; the POST may have reached the server, so it is not re-sent."""
    return {"GET": RETRIED_OK, "POST": post, "DELETE": RETRIED_OK}


RETRIED_OK = Expect(2)
UNPACED = {"max_requests_per_minute": 0}
LOST = ("the connection broke",)
CASES = [
    Case(
        "401",
        {"kind": "status", "status": 401},
        **same(http_error(401, DotoAuthError, "Invalid Access Token")),
    ),
    Case(
        "404",
        {"kind": "status", "status": 404},
        **same(http_error(404, DotoNotFoundError, "Resource could not be found")),
    ),
    Case(
        "422",
        {
            "kind": "status",
            "status": 422,
            "body": json.dumps({"error": "Content is too long (maximum is 150000 characters)"}),
        },
        **same(http_error(422, DotoValidationError, "Content is too long (maximum is 150000 characters)")),
    ),
    Case(
        "429 Retry-After: 1",
        {"kind": "status", "status": 429, "retry_after": 1},
        **same(Expect(2, waited=1.0), committed=1),
        extra=UNPACED,
    ),
    Case(
        "429 without Retry-After",
        {"kind": "status", "status": 429},
        **same(Expect(2), committed=1),
        extra=UNPACED,
    ),
    Case(
        "429 on every attempt",
        {"kind": "status", "status": 429, "times": POLICY.attempts},
        **same(Expect(POLICY.attempts, DotoRateLimitError, ("HTTP 429", "Too Many Requests"), status=429)),
        extra=UNPACED,
    ),
    # Chatwoot's rack-attack: the pacer waits until the server's window can have turned (a 1 s
    # window here), then sends again; no retry of the retry policy is spent.
    Case(
        "429 text/plain, no Retry-After",
        {"kind": "status", "status": 429, "body": "Retry later\n", "content_type": "text/plain"},
        **same(Expect(2), committed=1),
        extra={"rate_limit_window_seconds": 1},
    ),
    # The throttle outlasts the connection's budget: the second 429's wait would end 2 s after the
    # first 429, past the 1.5 s allowed, so the request fails at once with the figures.
    Case(
        "429 on every request, longer than rate_limit_wait_seconds",
        {"kind": "status", "status": 429, "retry_after": 1, "times": 50},
        **same(
            Expect(
                2,
                DotoRateLimitError,
                ("HTTP 429", "rate_limit_wait_seconds (1.5 s)", "max_requests_per_minute"),
                status=429,
            )
        ),
        extra={"rate_limit_wait_seconds": 1.5},
    ),
    Case(
        "500",
        {"kind": "status", "status": 500},
        **same(http_error(500, DotoServerError, "Internal Server Error")),
    ),
    Case(
        "502",
        {"kind": "status", "status": 502},
        **only_post_fails(Expect(1, DotoServerError, ("HTTP 502", "Bad Gateway"), committed=0, status=502)),
    ),
    Case(
        "503",
        {"kind": "status", "status": 503},
        **only_post_fails(
            Expect(1, DotoServerError, ("HTTP 503", "Service Unavailable"), committed=0, status=503)
        ),
    ),
    Case(
        "503 on every attempt",
        {"kind": "status", "status": 503, "times": POLICY.attempts},
        **same(
            Expect(POLICY.attempts, DotoServerError, ("HTTP 503", "Service Unavailable"), status=503),
            requests=1,
        ),
    ),
    Case(
        "answer slower than the timeout",
        {"kind": "delay", "delay": DELAY},
        # The server commits the POST after the client gave up: one POST, one message, an error.
        **only_post_fails(Expect(1, DotoTimeoutError, (f"no answer within {TIMEOUT:g} s",), committed=1)),
    ),
    Case(
        "connection dropped before commit",
        {"kind": "drop_before"},
        # The request was sent: the client cannot know it was not committed, so no blind re-send.
        **only_post_fails(Expect(1, DotoConnectionLostError, LOST, committed=0)),
    ),
    Case(
        "connection dropped after commit",
        {"kind": "drop_after"},
        # DELETE retried and fine: Chatwoot deletes softly, deleting again answers 200.
        **only_post_fails(Expect(1, DotoConnectionLostError, LOST, committed=1)),
    ),
    Case(
        "malformed JSON (truncated body), HTTP 200",
        {"kind": "malformed"},
        **same(Expect(1, DotoResponseError, ("HTTP 200", "not JSON"))),
    ),
    Case(
        "HTML page, HTTP 200",
        {"kind": "malformed", "body": "<!DOCTYPE html><html><body>Sign in</body></html>"},
        # e.g. a login page of a proxy in front of Doto: never taken for a successful delete
        **same(Expect(1, DotoResponseError, ("HTTP 200", "not JSON", "text/html"))),
    ),
    Case(
        "JSON of the wrong shape, HTTP 200",
        {"kind": "malformed", "body": json.dumps({"payload": {"id": "x"}})},
        GET=Expect(1, DotoResponseError, ("'payload' list",)),
        POST=Expect(1, DotoResponseError, ("not a valid message", "'id'"), committed=0),
        DELETE=Expect(1),  # the body of a DELETE's JSON answer is not needed
    ),
]
# TEMPLATE: a POST carrying a template (``template_params``); its row is the POST's, and a message
# committed with it keeps its template. ATTACHMENT: a multipart POST carrying a file (streamed, so a
# retry streams it again); its row is the POST's, and a message committed with it keeps its file.
METHODS = ("GET", "POST", "DELETE", "TEMPLATE", "ATTACHMENT")
CLIENTS = ("sync", "async")
TEMPLATE = {
    "name": "order_update",
    "category": "UTILITY",
    "language": "en_US",
    "processed_params": {"body": {"1": "#1042"}},
}


ATTACHMENT = ("report.csv", b"conversation,messages\n1042,3\n")


def http_method(method: str) -> str:
    return "POST" if method in ("TEMPLATE", "ATTACHMENT") else method


def timeout_for(case: Case) -> float:
    """The client timeout of a row: short only where the row is about the client giving up."""
    return TIMEOUT if case.fault["kind"] == "delay" else PATIENT_TIMEOUT


def make_call(
    client: str, method: str, conversation_id: int, message_id: int, content: str, timeout: float
) -> Callable[[], Any]:
    """The hook call for one cell. The sync hook gets its timeout as an argument, the async hook
    from the connection's ``timeout`` extra (both ways are covered)."""
    if client == "sync":
        hook = DotoHook(timeout=timeout, retry_policy=POLICY)
        return {
            "GET": lambda: hook.list_messages(conversation_id),
            "POST": lambda: hook.send_message(conversation_id, content),
            "DELETE": lambda: hook.delete_message(conversation_id, message_id),
            "TEMPLATE": lambda: hook.send_message(conversation_id, content, template=TEMPLATE),
            "ATTACHMENT": lambda: hook.send_message(conversation_id, content, attachments=[ATTACHMENT]),
        }[method]
    ahook = DotoAsyncHook(retry_policy=POLICY)
    coroutine = {
        "GET": lambda: ahook.list_messages(conversation_id),
        "POST": lambda: ahook.send_message(conversation_id, content),
        "DELETE": lambda: ahook.delete_message(conversation_id, message_id),
        "TEMPLATE": lambda: ahook.send_message(conversation_id, content, template=TEMPLATE),
        "ATTACHMENT": lambda: ahook.send_message(conversation_id, content, attachments=[ATTACHMENT]),
    }[method]
    return lambda: asyncio.run(coroutine())


def retry_lines(caplog: pytest.LogCaptureFixture, method: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("airflow_provider_doto.hooks")
        and f"Doto {method} " in r.getMessage()
        and "; retry " in r.getMessage()
    ]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(
    case: Case,
    method: str,
    client: str,
    emu: DotoEmulator,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expect: Expect = getattr(case, http_method(method))
    template, attachment = method == "TEMPLATE", method == "ATTACHMENT"
    sent_as = method
    method = http_method(method)  # what the server sees
    timeout = timeout_for(case)
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(timeout=timeout, **case.extra))
    emu.soft_delete = True  # Chatwoot's behaviour
    cid = emu.add_conversation()
    seeded = emu.add_message(cid, "seeded", created_at=emu.clock.now() - 5)
    content = f"fault matrix {case.name} {client}"
    path = emu.messages_url(cid).split(str(emu.port), 1)[1]
    if method == "DELETE":
        path += f"/{seeded['id']}"
    call = make_call(client, sent_as, cid, seeded["id"], content, timeout)
    if method == "GET":
        # The connection is left at auto: let it find the server's flavor first (once per process),
        # so the fault meets the listing itself.
        DotoHook().list_messages(cid)
    warmed_up = len(emu.requests)
    slept = record_sleeps(monkeypatch) if expect.waited else []
    faults.inject(method=method, **case.fault)

    limit = POLICY.attempts * timeout + expect.waited + HANG_SLACK
    result, error, _ = bounded(call, limit, f"{client} {method} under fault {case.name!r}")

    recorded = [r for r in emu.requests[warmed_up:] if r.method == method and r.path == path]
    assert len(recorded) == expect.requests, (
        f"expected {expect.requests} {method} request(s), server saw {len(recorded)}"
    )
    if attachment:  # every try, the retries too, sent the whole form again
        assert all(
            r.headers.get("content-type", "").startswith("multipart/form-data") and ATTACHMENT[1] in r.body
            for r in recorded
        )
    # aiohttp itself re-sends an idempotent request once when the server drops the connection
    # (RFC 9112 9.3.1.1), below the provider's retry policy: that retry is not in the provider's log.
    transport_retry = client == "async" and method != "POST" and case.fault["kind"].startswith("drop")
    if case.paced and case.fault.get("status") == 429:
        # The pacer waited the 429s out: no retry of the policy spent, the pause logged instead.
        assert retry_lines(caplog, method) == []
        assert any("the server throttled" in r.getMessage() for r in caplog.records)
    else:
        assert len(retry_lines(caplog, method)) == expect.requests - 1 - transport_retry
    if expect.error is None:
        assert error is None, f"expected success after retrying, got {error!r}"
        if method == "GET":
            assert [m.id for m in result] == [seeded["id"]]
        elif method == "DELETE":
            assert result is True
            if case.fault["kind"] != "malformed":  # (a spoiled answer was not served by the store)
                assert emu.message(seeded["id"])["content_attributes"].get("deleted") is True
        else:
            assert result.content == content
    else:
        assert type(error) is expect.error, f"expected {expect.error.__name__}, got {error!r}"
        text = str(error)
        for part in (method, path, *expect.says):
            assert part in text, f"{part!r} missing from the error message {text!r}"
        if not (case.name.startswith("JSON of the wrong shape") and method == "POST"):
            # (parse_message's error names the request in its text only, not in .method/.path)
            assert (error.method, error.path) == (method, path)
        if expect.status is not None:
            assert isinstance(error, DotoHTTPError) and error.status == expect.status
        assert_no_token(*error_texts(error), where=f"{type(error).__name__} texts")
    if expect.waited:
        assert any(f"in {expect.waited:.1f} s" in line for line in retry_lines(caplog, method))
        # The server's Retry-After was waited out (a real sleep of that length), not ignored.
        assert any(abs(s - expect.waited) < 0.05 for s in slept), slept
    # (A request still sleeping in a delay fault is dropped by the emulator's reset after the test.)
    if expect.committed is not None:
        if expect.committed:
            wait_until(
                lambda: any(m["content"] == content for m in emu.messages(cid)),
                DELAY + 30,
                "the committed message to be stored",
            )
        stored = [m for m in emu.messages(cid) if m["content"] == content]
        assert len(stored) == expect.committed, (
            f"{len(stored)} message(s) stored, expected {expect.committed}"
        )
        for message in stored:
            assert ("additional_attributes" in message) is template
            if template:
                assert message["additional_attributes"]["template_params"] == TEMPLATE
            if attachment:
                (stored_file,) = message["attachments"]
                assert stored_file["file_size"] == len(ATTACHMENT[1])
    FIGURES.add("fault_matrix", cases=1)


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every non-zero sleep (sync and async) while still sleeping for real: the retry's wait
    is checked by what was asked for, not by a wall-clock measurement."""
    slept: list[float] = []
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    async def async_sleep(seconds: float, *args: Any, **kwargs: Any) -> Any:
        if seconds:
            slept.append(seconds)
        return await real_async_sleep(seconds, *args, **kwargs)

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    return slept


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that refuses connections: bound (so nobody else can take it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("method", METHODS)
def test_connection_refused_is_retried_even_for_post(
    method: str,
    client: str,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens: the request certainly never reached Doto, so every method is retried
    (POST included) up to the policy's attempts, then DotoConnectError names method and path."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTO_DEFAULT",
        json.dumps(
            {
                "conn_type": "doto",
                "host": f"http://127.0.0.1:{closed_port}",
                "password": "x",
                "extra": {"account_id": 7, "timeout": TIMEOUT},
            }
        ),
    )
    caplog.set_level(logging.DEBUG)
    call = make_call(client, method, 3, 4, "never delivered", TIMEOUT)
    _, error, _ = bounded(call, POLICY.attempts * TIMEOUT + HANG_SLACK, f"{client} {method} to a closed port")
    assert type(error) is DotoConnectError
    method = http_method(method)
    assert method in str(error) and "/api/v1/accounts/7/conversations/3/messages" in str(error)
    assert len(retry_lines(caplog, method)) == POLICY.attempts - 1
    FIGURES.add("fault_matrix", cases=1)


# A try whose POST hit a fault, then the task's retry (the same delivery key, looking back): with a
# fallback template the first try sent the free text (window open) or the template (closed); either
# way exactly one message exists afterwards, the retry's answer is it, and it is what the window chose.
ONCE_FAULTS = {
    "connection dropped after commit": {"kind": "drop_after"},
    "connection dropped before commit": {"kind": "drop_before"},
    "502": {"kind": "status", "status": 502},
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("open_window", [True, False], ids=["free-text", "fallback-template"])
@pytest.mark.parametrize("fault", list(ONCE_FAULTS))
def test_a_retried_send_with_a_fallback_template_neither_duplicates_nor_loses(
    fault: str,
    open_window: bool,
    client: str,
    emu: DotoEmulator,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(timeout=PATIENT_TIMEOUT))
    inbox = emu.add_inbox("whatsapp")
    emu.add_template(inbox, "order_update", "en_US")
    cid = emu.add_conversation(inbox_id=inbox)
    if open_window:
        emu.add_message(cid, "where is my order?")
    since = emu.clock.now() - 5
    content = f"fault matrix template {fault} {client}"

    def send_once() -> Any:
        kwargs: dict[str, Any] = {"key": "fm-key", "look_back_since": since, "fallback_template": TEMPLATE}
        if client == "sync":
            return DotoHook(timeout=PATIENT_TIMEOUT, retry_policy=POLICY).send_message_once(
                cid, content, **kwargs
            )
        return asyncio.run(DotoAsyncHook(retry_policy=POLICY).send_message_once(cid, content, **kwargs))

    limit = POLICY.attempts * PATIENT_TIMEOUT + HANG_SLACK
    faults.inject(method="POST", **ONCE_FAULTS[fault])
    _, error, _ = bounded(send_once, limit, f"{client} send_once under {fault!r}")
    assert isinstance(error, DotoError), f"the first try should fail, got {error!r}"
    retried, error, _ = bounded(send_once, limit, f"{client} send_once retry after {fault!r}")
    assert error is None, f"the retry should succeed, got {error!r}"
    assert retried is not None
    message, already_delivered = retried

    stored = [m for m in emu.messages(cid) if m["content"] == content]
    assert len(stored) == 1, f"{len(stored)} message(s) stored, expected exactly 1"
    assert message.id == stored[0]["id"]
    assert already_delivered is (fault == "connection dropped after commit")
    sent_template = (stored[0].get("additional_attributes") or {}).get("template_params")
    assert sent_template == (None if open_window else TEMPLATE)
    assert len([r for r in emu.requests if r.method == "POST"]) == (1 if already_delivered else 2)
    FIGURES.add("fault_matrix", cases=1)


# The same for a message with an attachment (multipart): the delivery key rides in the form's
# content_attributes, so the retry's look-back finds what the first try committed.
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("fault", list(ONCE_FAULTS))
def test_a_retried_send_with_attachments_neither_duplicates_nor_loses(
    fault: str,
    client: str,
    emu: DotoEmulator,
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(timeout=PATIENT_TIMEOUT))
    cid = emu.add_conversation()
    report = tmp_path / "report.csv"
    report.write_bytes(b"day,orders\n2026-12-05,42\n" * 10_000)
    since = emu.clock.now() - 5
    content = f"fault matrix multipart {fault}"

    def send_once() -> Any:
        kwargs: dict[str, Any] = {"key": "fm-upload", "look_back_since": since, "attachments": [str(report)]}
        if client == "sync":
            return DotoHook(timeout=PATIENT_TIMEOUT, retry_policy=POLICY).send_message_once(
                cid, content, **kwargs
            )
        return asyncio.run(DotoAsyncHook(retry_policy=POLICY).send_message_once(cid, content, **kwargs))

    limit = POLICY.attempts * PATIENT_TIMEOUT + HANG_SLACK
    faults.inject(method="POST", **ONCE_FAULTS[fault])
    _, error, _ = bounded(send_once, limit, f"send_once with a file under {fault!r}")
    assert isinstance(error, DotoError), f"the first try should fail, got {error!r}"
    retried, error, _ = bounded(send_once, limit, f"send_once with a file, retry after {fault!r}")
    assert error is None, f"the retry should succeed, got {error!r}"
    assert retried is not None
    message, already_delivered = retried

    stored = [m for m in emu.messages(cid) if m["content"] == content]
    assert len(stored) == 1, f"{len(stored)} message(s) stored, expected exactly 1"
    assert message.id == stored[0]["id"]
    assert stored[0]["content_attributes"][DELIVERY_KEY_ATTRIBUTE] == "fm-upload"
    assert [a["file_size"] for a in stored[0]["attachments"]] == [report.stat().st_size]
    assert already_delivered is (fault == "connection dropped after commit")
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) == (1 if already_delivered else 2)
    assert all(r.headers["content-type"].startswith("multipart/form-data") for r in posts)
    FIGURES.add("fault_matrix", cases=1)
