"""DotoAsyncHook.send_messages against the emulator over real HTTP (both server flavors).

One message to each of many conversations: results in input order, requests in flight bounded as
asked (measured at the server), rate limits waited out, one conversation's failure kept to its own
result, and a retried batch with delivery keys sending only what was not delivered.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoBatchError, DotoConfigError
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

T = TypeVar("T")
FAST = api.RetryPolicy(attempts=4, backoff=0.01, max_wait=0.05)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


def posts(emu: DotoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def keys_for(run_id: str):
    return lambda cid: api.delivery_key("dag", "nudge", run_id, -1, cid)


def test_sends_one_message_to_each_conversation_in_order(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(7)]
    items = [api.BatchItem(cid, f"Hi #{cid}") for cid in reversed(cids)]

    results = run(DotoAsyncHook(retry_policy=FAST).send_messages(items, max_in_flight=3))

    assert [r.conversation_id for r in results] == [i.conversation_id for i in items]
    for result in results:
        (stored,) = emu.messages(result.conversation_id)
        assert result == api.BatchResult(
            result.conversation_id, "sent", message_id=stored["id"], message_status=stored["status"]
        )
        assert stored["content"] == f"Hi #{result.conversation_id}" and stored["message_type"] == "outgoing"
        assert api.DELIVERY_KEY_ATTRIBUTE not in (stored["content_attributes"] or {})  # no keys asked
    assert len(posts(emu)) == len(cids)


def test_an_empty_batch_sends_nothing(doto_emulator: DotoEmulator) -> None:
    assert run(DotoAsyncHook().send_messages([])) == []
    assert doto_emulator.requests == []


@pytest.mark.parametrize("max_in_flight", [1, 4])
def test_requests_in_flight_are_bounded(doto_emulator: DotoEmulator, max_in_flight: int) -> None:
    """Every POST is held at the server a while, so the hook's requests pile up to its bound there."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(3 * max_in_flight)]
    emu.inject("delay", times=len(cids), method="POST", delay=0.3)
    # The emulator is the session's: a request an earlier test left held there must finish first.
    deadline = time.monotonic() + 60
    while emu.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emu.in_flight == 0, "an earlier test's request is still held at the emulator"
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, emu.in_flight)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        results = run(
            DotoAsyncHook(retry_policy=FAST).send_messages(
                [api.BatchItem(cid, "Still there?") for cid in cids], max_in_flight=max_in_flight
            )
        )
    finally:
        done.set()
        watcher.join()

    assert [r.status for r in results] == ["sent"] * len(cids)
    assert peak == max_in_flight  # reached (the POSTs were held), never exceeded
    assert all(len(emu.messages(cid)) == 1 for cid in cids)


def test_rate_limits_are_waited_out_then_sent(
    doto_emulator: DotoEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """429 with Retry-After and Chatwoot's 422 "Too many messages" refuse a POST before creating
    anything: the item waits the server's wait (not the short backoff) and is sent once. The 429
    is waited out by the connection's pacer (every request pauses), the flood guard's 422 by the
    retry policy (it is about one conversation)."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(4)]
    emu.inject("status", method="POST", status=429, retry_after=1, path_contains=f"/conversations/{cids[0]}/")
    emu.inject(
        "status",
        times=2,
        method="POST",
        status=422,
        body='{"error": "Too many messages"}',
        path_contains=f"/conversations/{cids[1]}/",
    )
    policy = api.RetryPolicy(attempts=4, backoff=0.01, max_wait=1.0)
    caplog.set_level(logging.WARNING, logger="airflow_provider_doto.hooks")

    results = run(
        DotoAsyncHook(retry_policy=policy).send_messages([api.BatchItem(c, "Hello again") for c in cids])
    )

    assert [r.status for r in results] == ["sent"] * 4
    assert emu.faults == []
    assert len(posts(emu)) == 4 + 3  # each refusal retried, nothing created twice
    assert [len(emu.messages(c)) for c in cids] == [1, 1, 1, 1]
    waits = [r.getMessage() for r in caplog.records if "; retry" in r.getMessage()]
    assert len(waits) == 2
    # The flood guard's own wait capped at max_wait; the backoff would be 0.01 s.
    assert all(w.endswith("in 1.0 s") and "DotoRateLimitError" in w for w in waits), waits
    (pause,) = [r.getMessage() for r in caplog.records if "the server throttled" in r.getMessage()]
    assert f"/conversations/{cids[0]}/" in pause and "Retry-After 1" in pause


def test_one_conversations_failure_is_its_own_result(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    first, second = emu.add_conversation(), emu.add_conversation()
    missing = 987654
    emu.inject("status", method="POST", status=500, path_contains=f"/conversations/{second}/")
    items = [api.BatchItem(first, "a"), api.BatchItem(missing, "b"), api.BatchItem(second, "c")]

    results = run(DotoAsyncHook(retry_policy=FAST).send_messages(items))

    assert [r.status for r in results] == ["sent", "failed", "failed"]
    assert results[0].message_id == emu.messages(first)[0]["id"]
    assert results[1].message_id is None and results[1].error is not None
    assert results[1].error.startswith("DotoNotFoundError: Doto POST ") and "HTTP 404" in results[1].error
    assert results[2].error is not None and results[2].error.startswith("DotoServerError:")
    assert emu.messages(second) == []  # a 5xx POST is never re-sent
    assert all(emu.token not in (r.error or "") for r in results)
    assert api.batch_counts(results) == {"total": 3, "sent": 1, "already_delivered": 0, "failed": 2}


def test_a_retried_batch_sends_only_what_was_not_delivered(doto_emulator: DotoEmulator) -> None:
    """Try 1 commits every message but loses two answers; try 2 (same keys, looking back) finds
    them all and posts nothing."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(5)]
    items = [api.BatchItem(c, f"Your ticket {c} is still open.") for c in cids]
    for cid in cids[1:3]:
        emu.inject("drop_after", method="POST", path_contains=f"/conversations/{cid}/")
    keys = keys_for("run-1")
    since = int(time.time()) - 5

    first = run(DotoAsyncHook(retry_policy=FAST).send_messages(items, delivery_keys=keys, max_in_flight=2))
    assert [r.status for r in first] == ["sent", "failed", "failed", "sent", "sent"]
    assert all(r.error and r.error.startswith("DotoConnectionLostError") for r in first[1:3])
    for cid in cids:
        (stored,) = emu.messages(cid)
        assert stored["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] == keys(cid)
    emu.clear_requests()

    again = run(
        DotoAsyncHook(retry_policy=FAST).send_messages(
            items, delivery_keys=keys, look_back_since=since, max_in_flight=2
        )
    )

    assert [r.status for r in again] == ["already_delivered"] * 5
    assert [r.message_id for r in again] == [emu.messages(c)[0]["id"] for c in cids]
    assert posts(emu) == [] and all(len(emu.messages(c)) == 1 for c in cids)


def test_other_keys_do_not_count_as_delivered(doto_emulator: DotoEmulator) -> None:
    """A new DAG run (new keys) sends again, even the same text."""
    emu = doto_emulator
    cids = [emu.add_conversation() for _ in range(2)]
    items = [api.BatchItem(c, "Weekly check-in") for c in cids]
    since = int(time.time()) - 5
    run(DotoAsyncHook(retry_policy=FAST).send_messages(items, delivery_keys=keys_for("run-1")))

    second = run(
        DotoAsyncHook(retry_policy=FAST).send_messages(
            items, delivery_keys=keys_for("run-2"), look_back_since=since
        )
    )

    assert [r.status for r in second] == ["sent", "sent"]
    assert [len(emu.messages(c)) for c in cids] == [2, 2]


@pytest.mark.parametrize(
    ("items", "kwargs", "expected"),
    [
        ([api.BatchItem(1, "a")], {"max_in_flight": 0}, "max_in_flight must be a positive integer"),
        ([api.BatchItem(1, "a")], {"max_in_flight": True}, "max_in_flight must be a positive integer"),
        ([{"conversation_id": 1, "content": "a"}], {}, r"items\[0\] must be an api.BatchItem"),
        ([api.BatchItem(1, "a"), api.BatchItem(1, "b")], {}, r"conversation 1 is already"),
        ([api.BatchItem(1, "a"), api.BatchItem(2, "")], {}, r"\[1\]: content must be a non-empty string"),
        ([api.BatchItem(1, "a")], {"private": "yes"}, "private must be True or False"),
        ([api.BatchItem(1, "a")], {"look_back_since": "yesterday"}, "look_back_since must be"),
    ],
)
def test_bad_input_fails_before_anything_is_sent(
    doto_emulator: DotoEmulator, items: list[Any], kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(DotoConfigError, match=expected):
        run(DotoAsyncHook().send_messages(items, **kwargs))
    assert doto_emulator.requests == []


# ---- delivery status: wait_for ------------------------------------------------------------------


def test_wait_for_reads_each_message_back_once_a_poll_until_it_moves(doto_emulator: DotoEmulator) -> None:
    """Read-back cost: one request per conversation per poll (by id on Chatwoot, by its second on Doto)."""
    emu = doto_emulator
    emu.delivery_receipts = (2, 3600)  # delivered 1 to 2 s after the send (whole seconds)
    whatsapp = emu.add_inbox("whatsapp")
    cids = [emu.add_conversation(inbox_id=whatsapp) for _ in range(4)]
    for cid in cids:
        emu.add_message(cid, "Where is my order?")
    items = [api.BatchItem(cid, f"Shipped #{cid}") for cid in cids]

    results = run(
        DotoAsyncHook(retry_policy=FAST).send_messages(
            items, wait_for="delivered", delivery_timeout=10, poll_interval=0.25, max_in_flight=2
        )
    )

    assert [(r.status, r.message_status) for r in results] == [("sent", "delivered")] * 4
    assert [r.message.status for r in results if r.message is not None] == ["delivered"] * 4
    for cid in cids:
        path = f"/api/v1/accounts/1/conversations/{cid}/messages"
        reads = [r for r in emu.requests if r.method == "GET" and r.path == path and "before" in r.query]
        assert 2 <= len(reads) <= 12  # 1 to 2 s of polls every 0.25 s: one read per conversation a poll
        assert len([r for r in posts(emu) if r.path == path]) == 1


def test_wait_for_times_out_a_message_that_never_moves_as_its_own_failure(
    doto_emulator: DotoEmulator,
) -> None:
    emu = doto_emulator
    emu.delivery_receipts = (0, 0)
    stays_sent = emu.add_conversation()  # an API inbox: no receipts, the integrator sets the status
    whatsapp = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    emu.add_message(whatsapp, "Where is my order?")
    items = [api.BatchItem(stays_sent, "Hi"), api.BatchItem(whatsapp, "Hi")]

    results = run(
        DotoAsyncHook(retry_policy=FAST).send_messages(
            items, wait_for="delivered", delivery_timeout=0.5, poll_interval=0.1
        )
    )

    timed_out, read = results
    (stored,) = emu.messages(stays_sent)
    assert (timed_out.status, timed_out.message_id, timed_out.message_status) == (
        "failed",
        stored["id"],
        "sent",
    )
    assert (
        timed_out.error is not None
        and "timed out after 0.5 s waiting for status 'delivered'" in timed_out.error
    )
    assert (read.status, read.message_status) == ("sent", "read")
    with pytest.raises(DotoBatchError, match=f"conversation {stays_sent}"):
        api.check_batch(results, 0.0)


# ---- attachments: the same files with every message -------------------------------------------


def test_attachments_go_with_every_message_each_upload_read_from_its_source(
    doto_emulator: DotoEmulator, tmp_path: Any
) -> None:
    emu = doto_emulator
    report = tmp_path / "report.csv"
    report.write_bytes(b"day,orders\n1,2\n")
    cids = [emu.add_conversation() for _ in range(5)]
    items = [api.BatchItem(cid, f"Report for #{cid}") for cid in cids]

    results = run(
        DotoAsyncHook(retry_policy=FAST).send_messages(
            items,
            max_in_flight=2,
            delivery_keys=keys_for("run-files"),
            attachments=[str(report), ("notes.txt", b"see you")],
        )
    )

    assert [r.status for r in results] == ["sent"] * len(cids)
    for cid, result in zip(cids, results, strict=True):
        (stored,) = emu.messages(cid)
        assert [(a["extension"], a["file_size"]) for a in stored["attachments"]] == [("csv", 15), ("txt", 7)]
        assert stored["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] == keys_for("run-files")(cid)
        assert result.message is not None and len(result.message.attachments) == 2
    assert len(posts(emu)) == len(cids)


@pytest.mark.parametrize(
    ("attachments", "reason", "named"),
    [
        ([("ok.txt", b"x"), ("big.csv", b"x" * (1024 * 1024 + 1))], "too large", "big.csv"),
        ([("ok.txt", b"x"), ("run.exe", b"MZ")], "type not allowed", "run.exe"),
        ([("f.txt", b"x")] * 16, "too many", None),
    ],
)
def test_a_refused_file_stops_the_whole_batch_before_any_request(
    doto_emulator: DotoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    attachments: list[Any],
    reason: str,
    named: str | None,
) -> None:
    from airflow_provider_doto.exceptions import DotoUploadError

    emu = doto_emulator
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_UPLOAD", emu.connection_uri(max_upload_mb=1))
    items = [api.BatchItem(emu.add_conversation(), "files") for _ in range(3)]
    emu.clear_requests()

    with pytest.raises(DotoUploadError) as err:
        run(DotoAsyncHook("doto_upload").send_messages(items, attachments=attachments))

    assert (err.value.reason, err.value.filename) == (reason, named)
    assert emu.requests == []  # not one request, to any conversation


def test_attachments_with_a_template_fail_before_any_request(doto_emulator: DotoEmulator) -> None:
    template = {"name": "t", "category": "UTILITY", "language": "en_US", "processed_params": {}}
    items = [api.BatchItem(doto_emulator.add_conversation(), "files")]
    doto_emulator.clear_requests()
    with pytest.raises(DotoConfigError, match="a template message cannot carry attachments"):
        run(DotoAsyncHook().send_messages(items, template=template, attachments=[("a.txt", b"x")]))
    assert doto_emulator.requests == []


def test_listed_conversations_decide_the_window_without_a_read_each(doto_emulator: DotoEmulator) -> None:
    """The conversations a listing gave (``conversations=``) say each window: no GET per conversation;
    a closed one fails alone with DotoReplyWindowError, nothing sent to it."""
    emu = doto_emulator
    inbox = emu.add_inbox("whatsapp")
    opened, closed = emu.add_conversation(inbox_id=inbox), emu.add_conversation(inbox_id=inbox)
    emu.add_message(opened, "Where is my order?")
    hook = DotoAsyncHook(retry_policy=FAST)

    async def listed() -> dict[int, api.Conversation]:
        return {c.id: c async for c in hook.aiter_conversations(inbox_id=inbox)}

    conversations = run(listed())
    assert {cid: c.can_reply for cid, c in conversations.items()} == {opened: True, closed: False}
    emu.clear_requests()
    items = [api.BatchItem(opened, "Hi"), api.BatchItem(closed, "Hi")]

    results = run(hook.send_messages(items, check_reply_window=True, conversations=conversations))

    assert [r.status for r in results] == ["sent", "failed"]
    assert "DotoReplyWindowError" in (results[1].error or "")
    assert [(r.method, r.path.split("?")[0].rsplit("/", 1)[-1]) for r in emu.requests] == [
        ("POST", "messages")
    ]
    assert [m["content"] for m in emu.messages(opened) if m["message_type"] == "outgoing"] == ["Hi"]
    assert emu.messages(closed) == []
