"""Contract tests: CONTRACT.md's endpoints, every emulator knob and every fault, as the hooks see them.

Each test drives the emulator over real HTTP through ``DotoHook`` (requests) and, where the
behaviour is shared, through ``DotoAsyncHook`` (aiohttp) as well: the ``client`` fixture is
parametrized ``sync`` / ``async`` and gives both the same blocking interface. The emulator's raw
HTTP behaviour (and its refusal to bind beyond loopback, ``test_refuses_non_loopback_hosts``) is
tested in ``test_emulator.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ClassVar, Protocol

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api import Message, MessageWatch, RetryPolicy
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConnectionLostError,
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

# Small backoffs keep the module fast; three attempts show "retried" apart from "gave up".
FAST = RetryPolicy(attempts=3, backoff=0.01, max_wait=0.2, total=10)
T0 = 1_750_000_000  # an arbitrary fixed second for seeded timestamps


class Client(Protocol):
    """The hook API both transports share, called synchronously."""

    def list_messages(self, conversation_id: int, **kwargs: Any) -> list[Message]: ...
    def send_message(self, conversation_id: int, content: str, **kwargs: Any) -> Message: ...
    def delete_message(self, conversation_id: int, message_id: int, **kwargs: Any) -> bool: ...
    def poll(self, watch: MessageWatch, conversation_id: int) -> list[Message] | None: ...
    def close(self) -> None: ...


class SyncClient:
    def __init__(self, conn_id: str, **options: Any) -> None:
        self.hook = DotoHook(conn_id, **options)

    def list_messages(self, conversation_id: int, **kwargs: Any) -> list[Message]:
        return self.hook.list_messages(conversation_id, **kwargs)

    def send_message(self, conversation_id: int, content: str, **kwargs: Any) -> Message:
        return self.hook.send_message(conversation_id, content, **kwargs)

    def delete_message(self, conversation_id: int, message_id: int, **kwargs: Any) -> bool:
        return self.hook.delete_message(conversation_id, message_id, **kwargs)

    def poll(self, watch: MessageWatch, conversation_id: int) -> list[Message] | None:
        return self.hook.poll(watch, conversation_id)

    def close(self) -> None:
        if "session" in self.hook.__dict__:
            self.hook.session.close()


class AsyncClient:
    """Runs each DotoAsyncHook call in its own event loop (which closes its shared session)."""

    def __init__(self, conn_id: str, **options: Any) -> None:
        self.hook = DotoAsyncHook(conn_id, **options)

    @staticmethod
    def _run(call: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(call)

    def list_messages(self, conversation_id: int, **kwargs: Any) -> list[Message]:
        return self._run(self.hook.list_messages(conversation_id, **kwargs))

    def send_message(self, conversation_id: int, content: str, **kwargs: Any) -> Message:
        return self._run(self.hook.send_message(conversation_id, content, **kwargs))

    def delete_message(self, conversation_id: int, message_id: int, **kwargs: Any) -> bool:
        return self._run(self.hook.delete_message(conversation_id, message_id, **kwargs))

    def poll(self, watch: MessageWatch, conversation_id: int) -> list[Message] | None:
        return self._run(self.hook.poll(watch, conversation_id))

    def close(self) -> None:
        pass


Connect = Callable[..., Client]


@pytest.fixture(params=["sync", "async"])
def connect(
    request: pytest.FixtureRequest, doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Connect]:
    """Make a client of this test's transport; defaults: ``doto_default`` and the FAST policy.

    The connection names the server's flavor, so the hooks send no probe of their own and the
    request counts below are the operations' alone. Pacing is off: these are the retry policy's
    rows (a paced 429 pauses until the server's window turns: tests/hooks/test_pacing.py).
    """
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTO_DEFAULT",
        doto_emulator.connection_json(flavor=doto_emulator.flavor, max_requests_per_minute=0),
    )
    made: list[Client] = []

    def make(conn_id: str = "doto_default", *, retry_policy: RetryPolicy = FAST, **options: Any) -> Client:
        kind = SyncClient if request.param == "sync" else AsyncClient
        client = kind(conn_id, retry_policy=retry_policy, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(connect: Connect) -> Client:
    return connect()


def sent(emu: DotoEmulator, method: str) -> int:
    """How many requests with this method reached the emulator."""
    return sum(r.method == method for r in emu.requests)


def ids(messages: list[Message]) -> list[int]:
    return [m.id for m in messages]


# -- the endpoint table ------------------------------------------------------------------------------


def test_list_is_strict_on_before_and_after(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    other = doto_emulator.add_conversation()
    doto_emulator.add_message(other, "another conversation", created_at=T0 + 1)
    at = {ts: doto_emulator.add_message(cid, f"at {ts}", created_at=ts)["id"] for ts in (T0, T0 + 2)}
    twins = [doto_emulator.add_message(cid, "twin", created_at=T0 + 1)["id"] for _ in range(2)]

    assert ids(client.list_messages(cid)) == [at[T0], *twins, at[T0 + 2]]  # oldest first
    assert ids(client.list_messages(cid, after=T0)) == [*twins, at[T0 + 2]]
    assert ids(client.list_messages(cid, before=T0 + 2)) == [at[T0], *twins]
    assert ids(client.list_messages(cid, after=T0, before=T0 + 2)) == twins
    assert client.list_messages(cid, after=T0 + 2) == []
    assert client.list_messages(cid, after=T0 + 1, before=T0 + 2) == []
    as_datetime = dt.datetime.fromtimestamp(T0, tz=dt.UTC)
    assert ids(client.list_messages(cid, after=as_datetime)) == [*twins, at[T0 + 2]]
    # The bounds went to the server as given: the emulator, not the hook's own filter, cut the window.
    # (In order, though the hook may also send requests of its own, e.g. to detect the flavor.)
    queries = iter(r.query for r in doto_emulator.requests)
    expected = [{}, {"after": str(T0)}, {"before": str(T0 + 2)}, {"after": str(T0), "before": str(T0 + 2)}]
    assert all(any(query == sent for sent in queries) for query in expected)
    assert all(r.authorized for r in doto_emulator.requests)


def test_list_parses_the_200_message_shape(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    seeded = doto_emulator.add_message(
        cid,
        "Where is my parcel?",
        created_at=T0,
        sender_name="Ada",
        content_type="input_email",
        content_attributes={"submitted_email": "ada@example.com"},
    )
    doto_emulator.add_message(cid, "Conversation was resolved", message_type="activity", created_at=T0 + 1)

    message, activity = client.list_messages(cid)
    assert message == Message(
        id=seeded["id"],
        content="Where is my parcel?",
        message_type="incoming",
        created_at=T0,
        private=False,
        status="sent",
        content_type="input_email",
        content_attributes={"submitted_email": "ada@example.com"},
        sender=api.Sender(id=seeded["sender"]["id"], name="Ada", type="Contact"),
        attachments=(),
    )
    assert message.raw == seeded  # nothing lost: the raw payload is the stored message
    assert (activity.message_type, activity.sender) == ("activity", None)  # sender may be absent


def test_send_with_every_body_field(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    now = doto_emulator.clock.freeze(T0)
    items = {"items": [{"title": "Morning", "value": "am"}, {"title": "Evening", "value": "pm"}]}

    note = client.send_message(
        cid,
        "Pick a delivery slot",
        message_type="outgoing",
        private=True,
        content_type="input_select",
        content_attributes=items,
    )
    assert (note.content, note.message_type, note.private) == ("Pick a delivery slot", "outgoing", True)
    assert (note.content_type, dict(note.content_attributes)) == ("input_select", items)
    assert (note.created_at, note.status, note.sender_type) == (now, "sent", "User")

    reply = client.send_message(cid, "Evening, please", message_type="incoming")
    assert (reply.message_type, reply.private, reply.content_type) == ("incoming", False, "text")
    assert reply.sender_type == "Contact" and reply.id > note.id

    bodies = [r.json for r in doto_emulator.requests if r.method == "POST"]
    assert bodies == [
        {
            "content": "Pick a delivery slot",
            "message_type": "outgoing",
            "private": True,
            "content_type": "input_select",
            "content_attributes": items,
        },
        {"content": "Evening, please", "message_type": "incoming", "private": False, "content_type": "text"},
    ]
    assert [m["id"] for m in doto_emulator.messages(cid)] == [note.id, reply.id]
    assert doto_emulator.messages(cid)[0] == note.raw


def test_delete(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    keep = doto_emulator.add_message(cid, "keep", created_at=T0)["id"]
    drop = doto_emulator.add_message(cid, "drop", created_at=T0 + 1)["id"]

    assert client.delete_message(cid, drop) is True
    assert [(r.method, r.path) for r in doto_emulator.requests] == [
        ("DELETE", f"/api/v1/accounts/1/conversations/{cid}/messages/{drop}")
    ]
    assert ids(client.list_messages(cid)) == [keep]  # default (hard) delete: gone from lists
    with pytest.raises(DotoNotFoundError) as err:
        client.delete_message(cid, drop)
    assert err.value.status == 404
    assert client.delete_message(cid, drop, missing_ok=True) is False
    assert sent(doto_emulator, "DELETE") == 3  # a 404 is an answer, not retried


# -- errors the server itself produces ---------------------------------------------------------------


def test_unknown_conversation_is_not_found(client: Client, doto_emulator: DotoEmulator) -> None:
    with pytest.raises(DotoNotFoundError) as err:
        client.list_messages(404)
    assert (err.value.status, err.value.doto_error) == (404, "Resource could not be found")
    assert sent(doto_emulator, "GET") == 1


def test_incoming_outside_an_api_inbox_is_a_validation_error(
    client: Client, doto_emulator: DotoEmulator
) -> None:
    cid = doto_emulator.add_conversation(api_inbox=False)
    with pytest.raises(DotoValidationError) as err:
        client.send_message(cid, "Hello from the contact", message_type="incoming")
    assert err.value.status == 422
    assert "Api inboxes" in (err.value.doto_error or "")
    assert sent(doto_emulator, "POST") == 1
    assert doto_emulator.messages(cid) == []


@pytest.fixture
def wrong_token(doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``doto_wrong`` connection to the emulator carrying a token it does not accept."""
    conn = json.loads(doto_emulator.connection_json())
    conn["password"] = "not-the-emulator-token"
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_WRONG", json.dumps(conn))
    return "doto_wrong"


def test_wrong_token_is_an_auth_error(
    connect: Connect, doto_emulator: DotoEmulator, wrong_token: str
) -> None:
    cid = doto_emulator.add_conversation()
    with pytest.raises(DotoAuthError) as err:
        connect(wrong_token).list_messages(cid)
    assert (err.value.status, err.value.doto_error) == (401, "Invalid Access Token")
    assert "not-the-emulator-token" not in str(err.value)
    assert [r.authorized for r in doto_emulator.requests] == [False]  # sent once, never retried


def test_test_connection_reports_auth(doto_emulator: DotoEmulator, wrong_token: str) -> None:
    ok, message = DotoHook(wrong_token).test_connection()
    assert not ok
    assert "401" in message and "Invalid Access Token" in message and "API Token" in message
    assert "not-the-emulator-token" not in message

    ok, message = DotoHook().test_connection()
    assert ok, message
    assert doto_emulator.base_url in message
    assert [r.authorized for r in doto_emulator.requests] == [False, True]


# -- knobs -------------------------------------------------------------------------------------------


def seed_seconds(emu: DotoEmulator, cid: int, seconds: list[int], per_second: int) -> list[int]:
    """``per_second`` messages in each of ``seconds``; returns their ids oldest first."""
    return [
        emu.add_message(cid, f"{ts}#{i}", created_at=ts)["id"] for ts in seconds for i in range(per_second)
    ]


@pytest.mark.parametrize("with_after", [False, True], ids=["newest-first-pages", "after-pages"])
def test_page_cap_every_message_exactly_once(
    client: Client, doto_emulator: DotoEmulator, with_after: bool
) -> None:
    doto_emulator.page_cap = 20  # Chatwoot's smallest page
    cid = doto_emulator.add_conversation()
    older = doto_emulator.add_message(cid, "before the window", created_at=T0 - 100)["id"]
    # 15 a second: every page boundary falls inside a second that the next page must re-read.
    expected = seed_seconds(doto_emulator, cid, [T0, T0 + 1, T0 + 2, T0 + 3], per_second=15)
    if not with_after:
        expected = [older, *expected]

    messages = client.list_messages(cid, after=T0 - 1 if with_after else None)
    assert ids(messages) == expected  # each once, oldest first
    assert sent(doto_emulator, "GET") > 3  # it really paged: 61 messages, 20 a page


def test_page_cap_with_more_than_a_page_in_one_second(client: Client, doto_emulator: DotoEmulator) -> None:
    doto_emulator.page_cap = 20
    cid = doto_emulator.add_conversation()
    expected = seed_seconds(doto_emulator, cid, [T0 - 5], per_second=5) + seed_seconds(
        doto_emulator, cid, [T0], per_second=30
    )
    assert ids(client.list_messages(cid)) == expected


def test_int_message_types_are_normalised(client: Client, doto_emulator: DotoEmulator) -> None:
    doto_emulator.int_message_types = True
    cid = doto_emulator.add_conversation()
    kinds = ["incoming", "outgoing", "activity", "template"]
    for i, kind in enumerate(kinds):
        doto_emulator.add_message(cid, kind, message_type=kind, created_at=T0 + i)

    listed = client.list_messages(cid)
    assert [m.message_type for m in listed] == kinds
    assert [m.raw["message_type"] for m in listed] == [0, 1, 2, 3]  # the knob was on
    sent_message = client.send_message(cid, "On it!")
    assert (sent_message.message_type, sent_message.raw["message_type"]) == ("outgoing", 1)
    # The default filter (incoming) still matches integer-typed messages.
    batch = client.poll(MessageWatch(start=T0), cid)
    assert [m.content for m in batch or []] == ["incoming"]


def test_soft_delete_keeps_a_tombstone(client: Client, doto_emulator: DotoEmulator) -> None:
    doto_emulator.soft_delete = True
    cid = doto_emulator.add_conversation()
    keep = doto_emulator.add_message(cid, "keep", created_at=T0)["id"]
    drop = doto_emulator.add_message(cid, "please forget this", created_at=T0 + 1)["id"]
    assert client.delete_message(cid, drop) is True

    kept, tombstone = client.list_messages(cid)
    assert (kept.id, kept.is_deleted) == (keep, False)
    assert (tombstone.id, tombstone.is_deleted) == (drop, True)
    assert tombstone.content != "please forget this"
    assert client.delete_message(cid, drop) is True  # Chatwoot answers 200 again
    # A deleted message is never reported as new.
    batch = client.poll(MessageWatch(start=T0), cid)
    assert ids(batch or []) == [keep]


def test_frozen_clock_puts_many_messages_in_one_second(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    now = doto_emulator.clock.freeze(T0)
    burst = [client.send_message(cid, f"line {i}") for i in range(25)]
    assert {m.created_at for m in burst} == {now}
    assert ids(client.list_messages(cid, after=now - 1)) == ids(burst)
    assert client.list_messages(cid, after=now) == []  # strict: the whole second is excluded

    doto_emulator.clock.advance(1)
    later = client.send_message(cid, "a second later")
    assert later.created_at == now + 1
    assert ids(client.list_messages(cid, after=now)) == [later.id]


def test_late_message_is_still_found_by_a_watch(client: Client, doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    first = doto_emulator.add_message(cid, "first", created_at=T0)["id"]
    late = doto_emulator.add_message(cid, "committed late", created_at=T0, late=1)["id"]
    assert late > first
    assert ids(client.list_messages(cid)) == [first]  # not visible yet

    watch = MessageWatch(start=T0)
    assert ids(client.poll(watch, cid) or []) == [first]
    newer = doto_emulator.add_message(cid, "newer", created_at=T0 + 1)["id"]
    assert ids(client.list_messages(cid)) == [first, late, newer]  # the newer id revealed it
    # A cursor at the newest created_at seen (T0) would miss it; the watch's overlap does not.
    assert ids(client.list_messages(cid, after=T0)) == [newer]
    assert ids(client.poll(watch, cid) or []) == [late, newer]
    assert client.poll(watch, cid) is None  # and nothing is reported twice


# -- faults ------------------------------------------------------------------------------------------

STATUS_ERRORS: dict[int, type[DotoHTTPError]] = {
    401: DotoAuthError,
    404: DotoNotFoundError,
    422: DotoValidationError,
    429: DotoRateLimitError,
    500: DotoServerError,
    502: DotoServerError,
    503: DotoServerError,
}


class Operation:
    """One hook call per HTTP method, with a check of what it left in the emulator."""

    methods: ClassVar[list[str]] = ["GET", "POST", "DELETE"]

    def __init__(self, emu: DotoEmulator, method: str) -> None:
        self.emu, self.method = emu, method
        self.cid = emu.add_conversation()
        self.seeded = emu.add_message(self.cid, "seeded", created_at=T0)["id"]

    def __call__(self, client: Client) -> Any:
        if self.method == "GET":
            return ids(client.list_messages(self.cid))
        if self.method == "POST":
            return client.send_message(self.cid, "Your refund is on its way").content
        return client.delete_message(self.cid, self.seeded)

    @property
    def success(self) -> Any:
        return {"GET": [self.seeded], "POST": "Your refund is on its way", "DELETE": True}[self.method]

    def stored(self) -> list[str]:
        return [m["content"] for m in self.emu.messages(self.cid, include_deleted=False)]

    def stored_after(self, succeeded: bool) -> list[str]:
        """What the conversation should hold if the operation did (or did not) take effect once."""
        if self.method == "POST":
            return ["seeded", "Your refund is on its way"] if succeeded else ["seeded"]
        if self.method == "DELETE":
            return [] if succeeded else ["seeded"]
        return ["seeded"]


def retried(status: int, method: str) -> bool:
    """The retry policy: 429 always (nothing was done); 502/503 only for idempotent requests."""
    return status == 429 or (status in (502, 503) and method != "POST")


@pytest.mark.parametrize("method", Operation.methods)
@pytest.mark.parametrize("status", sorted(STATUS_ERRORS))
def test_one_status_fault(client: Client, doto_emulator: DotoEmulator, status: int, method: str) -> None:
    operation = Operation(doto_emulator, method)
    doto_emulator.inject("status", status=status, method=method)
    if retried(status, method):
        assert operation(client) == operation.success
        assert sent(doto_emulator, method) == 2
        assert operation.stored() == operation.stored_after(succeeded=True)  # exactly once
    else:
        with pytest.raises(STATUS_ERRORS[status]) as err:
            operation(client)
        assert err.value.status == status
        assert sent(doto_emulator, method) == 1
        assert operation.stored() == operation.stored_after(succeeded=False)


@pytest.mark.parametrize(("status", "method"), [(503, "GET"), (502, "DELETE"), (429, "POST")])
def test_retries_give_up_after_the_policy_attempts(
    client: Client, doto_emulator: DotoEmulator, status: int, method: str
) -> None:
    operation = Operation(doto_emulator, method)
    doto_emulator.inject("status", status=status, method=method, times=10)
    with pytest.raises(STATUS_ERRORS[status]):
        operation(client)
    assert sent(doto_emulator, method) == FAST.attempts
    assert operation.stored() == operation.stored_after(succeeded=False)


@pytest.mark.parametrize("retry_after", ["7", None], ids=["Retry-After", "no-Retry-After"])
def test_rate_limit_with_and_without_retry_after(
    connect: Connect, doto_emulator: DotoEmulator, caplog: pytest.LogCaptureFixture, retry_after: str | None
) -> None:
    client = connect(retry_policy=RetryPolicy(attempts=2, backoff=0.01, max_wait=0.3, total=10))
    operation = Operation(doto_emulator, "GET")
    doto_emulator.inject("status", status=429, retry_after=retry_after, times=2)
    with pytest.raises(DotoRateLimitError) as err:
        operation(client)
    assert err.value.retry_after == (None if retry_after is None else 7.0)

    doto_emulator.inject("status", status=429, retry_after=retry_after)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_doto"):
        assert operation(client) == operation.success
    retries = [r for r in caplog.records if r.name.startswith("airflow_provider_doto.hooks")]
    sleeps = [r.args[-1] for r in retries if isinstance(r.args, tuple)]  # "retry 1 of 1 in %.1f s"
    # The server's wait, capped at max_wait; without the header, the policy's own backoff.
    assert sleeps[-1] == (0.3 if retry_after else 0.01)


@pytest.mark.parametrize("times", [1, 2], ids=["once-then-answers", "every-attempt"])
def test_delay_past_the_timeout_on_a_read(connect: Connect, doto_emulator: DotoEmulator, times: int) -> None:
    client = connect(retry_policy=RetryPolicy(attempts=2, backoff=0.01, total=10), timeout=0.15)
    operation = Operation(doto_emulator, "GET")
    doto_emulator.inject("delay", delay=0.6, method="GET", times=times)
    if times == 1:
        assert operation(client) == operation.success  # a read is safe to retry after a timeout
    else:
        with pytest.raises(DotoTimeoutError):
            operation(client)
    assert sent(doto_emulator, "GET") == 2


def test_delay_past_the_timeout_on_a_send(connect: Connect, doto_emulator: DotoEmulator) -> None:
    client = connect(timeout=0.15)
    operation = Operation(doto_emulator, "POST")
    doto_emulator.inject("delay", delay=0.6, method="POST")
    with pytest.raises(DotoTimeoutError):
        operation(client)
    assert sent(doto_emulator, "POST") == 1  # never blindly re-sent
    # ... because the server may still commit it: here it does, once.
    wait_until(lambda: operation.stored() == operation.stored_after(succeeded=True), 5, "the committed state")


@pytest.mark.parametrize("kind", ["drop_before", "drop_after"])
def test_dropped_connection_on_a_send(client: Client, doto_emulator: DotoEmulator, kind: Any) -> None:
    operation = Operation(doto_emulator, "POST")
    doto_emulator.inject(kind, method="POST")
    with pytest.raises(DotoConnectionLostError):
        operation(client)
    assert sent(doto_emulator, "POST") == 1  # no retry: the message may have landed
    assert operation.stored() == operation.stored_after(succeeded=kind == "drop_after")


@pytest.mark.parametrize(
    ("kind", "method"), [("drop_before", "GET"), ("drop_after", "GET"), ("drop_before", "DELETE")]
)
def test_dropped_connection_on_an_idempotent_request_is_retried(
    client: Client, doto_emulator: DotoEmulator, kind: Any, method: str
) -> None:
    operation = Operation(doto_emulator, method)
    doto_emulator.inject(kind, method=method)
    assert operation(client) == operation.success
    assert sent(doto_emulator, method) == 2
    assert operation.stored() == operation.stored_after(succeeded=True)


def test_dropped_answer_to_a_committed_delete(client: Client, doto_emulator: DotoEmulator) -> None:
    """The first DELETE deleted the message but its answer was lost; the retry then finds it gone.

    With ``missing_ok=True`` (DeleteMessageOperator's default) that ends quietly as "already gone".
    """
    operation = Operation(doto_emulator, "DELETE")
    doto_emulator.inject("drop_after", method="DELETE")
    assert client.delete_message(operation.cid, operation.seeded, missing_ok=True) is False
    assert sent(doto_emulator, "DELETE") == 2
    assert operation.stored() == operation.stored_after(succeeded=True)


@pytest.mark.parametrize(
    "body",
    [None, "<html><body><h1>502 Bad Gateway</h1></body></html>", '{"payload": "not a list"}'],
    ids=["truncated-json", "html", "wrong-shape"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_malformed_answer_is_a_response_error(
    client: Client, doto_emulator: DotoEmulator, method: str, body: str | None
) -> None:
    operation = Operation(doto_emulator, method)
    doto_emulator.inject("malformed", method=method, body=body)
    with pytest.raises(DotoResponseError):
        operation(client)
    assert sent(doto_emulator, method) == 1


# -- state is isolated per test ----------------------------------------------------------------------


class TestStateIsIsolated:
    """Two tests that each leave every kind of state behind; whichever runs second (in any order, with
    other tests in between or not) must see none of what the first left."""

    left_behind: ClassVar[dict[str, int]] = {}

    def _check_then_leave_state_behind(self, doto_emulator: DotoEmulator) -> None:
        hook = DotoHook(retry_policy=FAST)
        if self.left_behind:  # the other test ran earlier: none of its state may be visible
            cid = self.left_behind["conversation_id"]
            with pytest.raises(DotoNotFoundError):  # also proves the pending 500s are gone
                hook.list_messages(cid)
            with pytest.raises(KeyError):
                doto_emulator.message(self.left_behind["message_id"])
            assert [r.method for r in doto_emulator.requests] == ["GET"]
            assert (doto_emulator.page_cap, doto_emulator.int_message_types, doto_emulator.soft_delete) == (
                None,
                False,
                False,
            )
            assert not doto_emulator.clock.frozen and doto_emulator.faults == []
            fresh = doto_emulator.add_conversation()
            assert fresh == cid  # ids start over, and the new conversation is empty
            assert hook.list_messages(fresh) == []
            doto_emulator.clear_requests()
        cid = doto_emulator.add_conversation()
        message = hook.send_message(cid, "from a test that leaves state behind")
        doto_emulator.page_cap = 20
        doto_emulator.int_message_types = True
        doto_emulator.soft_delete = True
        doto_emulator.clock.freeze(T0)
        doto_emulator.inject("status", status=500, times=5)
        self.left_behind.update(conversation_id=cid, message_id=message.id)

    def test_leave_state_behind(self, doto_emulator: DotoEmulator) -> None:
        self._check_then_leave_state_behind(doto_emulator)

    def test_see_none_of_it(self, doto_emulator: DotoEmulator) -> None:
        self._check_then_leave_state_behind(doto_emulator)
