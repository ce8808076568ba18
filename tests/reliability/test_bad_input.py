"""Bad input: every wrong argument or connection fails with a DotoConfigError naming it, and nothing is sent.

Static values fail when the operator/sensor/notifier is built, i.e. at DAG parse. Values that
only exist after templating, and connection problems, fail when the task runs, before any request:
the emulator must record zero requests in every row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.notifications.doto import DotoNotifier
from airflow_provider_doto.operators.doto import (
    DeleteMessageOperator,
    ListMessagesOperator,
    SendMessageOperator,
)
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .reliability_support import assert_no_token, load_dag


def send(**kw: Any) -> Callable[[], Any]:
    return lambda: SendMessageOperator(**{"task_id": "send", "conversation_id": 1, "content": "hi", **kw})


def delete(**kw: Any) -> Callable[[], Any]:
    return lambda: DeleteMessageOperator(**{"task_id": "delete", "conversation_id": 1, "message_id": 2, **kw})


def listing(**kw: Any) -> Callable[[], Any]:
    return lambda: ListMessagesOperator(**{"task_id": "list", "conversation_id": 1, **kw})


def sensor(**kw: Any) -> Callable[[], Any]:
    return lambda: NewMessageSensor(**{"task_id": "wait", "conversation_id": 1, **kw})


def notifier(**kw: Any) -> Callable[[], Any]:
    return lambda: DotoNotifier(**{"conversation_id": 1, **kw})


def trigger(**kw: Any) -> Callable[[], Any]:
    return lambda: NewMessageTrigger(**{"conversation_id": 1, "start": 1_790_000_000, **kw})


BAD_IDS = ["abc", -1, 0, True, 1.5, None, "", " 12a"]
# (what is built, the word the error must contain)
STATIC: list[tuple[str, Callable[[], Any], str]] = [
    *[(f"send conversation_id={v!r}", send(conversation_id=v), "conversation_id") for v in BAD_IDS],
    ("send content=''", send(content=""), "content"),
    ("send content='   '", send(content="   "), "content"),
    ("send content=None", send(content=None), "content"),
    ("send content=42", send(content=42), "content"),
    ("send message_type='sms'", send(message_type="sms"), "message_type"),
    ("send message_type='activity'", send(message_type="activity"), "message_type"),
    ("send message_type=None", send(message_type=None), "message_type"),
    ("send private='yes'", send(private="yes"), "private"),
    ("send private=1", send(private=1), "private"),
    ("send private + incoming", send(private=True, message_type="incoming"), "private"),
    ("send content_type=''", send(content_type=""), "content_type"),
    ("send content_type=5", send(content_type=5), "content_type"),
    ("send content_attributes=list", send(content_attributes=["a"]), "content_attributes"),
    ("send content_attributes=str", send(content_attributes="a=1"), "content_attributes"),
    *[(f"delete conversation_id={v!r}", delete(conversation_id=v), "conversation_id") for v in BAD_IDS],
    *[(f"delete message_id={v!r}", delete(message_id=v), "message_id") for v in BAD_IDS],
    ("delete missing_ok='yes'", delete(missing_ok="yes"), "missing_ok"),
    ("delete missing_ok=None", delete(missing_ok=None), "missing_ok"),
    *[(f"list conversation_id={v!r}", listing(conversation_id=v), "conversation_id") for v in BAD_IDS],
    ("list after='yesterday'", listing(after="yesterday"), "after"),
    ("list after=True", listing(after=True), "after"),
    ("list before=nan", listing(before=float("nan")), "before"),
    ("list before=inf", listing(before=float("inf")), "before"),
    ("list before=[1]", listing(before=[1]), "before"),
    ("list after='2024-13-45'", listing(after="2024-13-45"), "after"),
    ("list include_deleted='no'", listing(include_deleted="no"), "include_deleted"),
    # None is not bad for the sensor and the trigger: it watches every conversation of the account.
    *[
        (f"sensor conversation_id={v!r}", sensor(conversation_id=v), "conversation_id")
        for v in BAD_IDS
        if v is not None
    ],
    (
        "sensor conversation_query={'sort_by': 'unread'}",
        sensor(conversation_id=None, conversation_query={"sort_by": "unread"}),
        "sort_by",
    ),
    (
        "sensor conversation_query={'inbox': 3}",
        sensor(conversation_id=None, conversation_query={"inbox": 3}),
        "inbox",
    ),
    ("sensor conversation_query + conversation_id", sensor(conversation_query={"inbox_id": 3}), "not both"),
    ("sensor start='soon'", sensor(start="soon"), "start"),
    ("sensor start=True", sensor(start=True), "start"),
    ("sensor start=-inf", sensor(start=float("-inf")), "start"),
    ("sensor message_types='incoming'", sensor(message_types="incoming"), "message_types"),
    ("sensor message_types=['sms']", sensor(message_types=["sms"]), "message_types"),
    ("sensor message_types=[]", sensor(message_types=[]), "message_types"),
    ("sensor include_private='yes'", sensor(include_private="yes"), "include_private"),
    ("sensor sender_types=5", sensor(sender_types=5), "sender_types"),
    ("sensor sender_types=[1]", sensor(sender_types=[1]), "sender_types"),
    ("sensor sender_types=[]", sensor(sender_types=[]), "sender_types"),
    ("sensor message_types=5", sensor(message_types=5), "message_types"),
    ("sensor content_pattern='('", sensor(content_pattern="("), "content_pattern"),
    ("sensor content_pattern=5", sensor(content_pattern=5), "content_pattern"),
    ("sensor min_messages=0", sensor(min_messages=0), "min_messages"),
    ("sensor min_messages=-1", sensor(min_messages=-1), "min_messages"),
    ("sensor min_messages='2'", sensor(min_messages="2"), "min_messages"),
    ("sensor min_messages=True", sensor(min_messages=True), "min_messages"),
    ("sensor overlap=-1", sensor(overlap=-1), "overlap"),
    *[(f"notifier conversation_id={v!r}", notifier(conversation_id=v), "conversation_id") for v in BAD_IDS],
    ("notifier content=''", notifier(content=""), "content"),
    ("notifier content=None", notifier(content=None), "content"),
    ("notifier private='no'", notifier(private="no"), "private"),
    ("trigger conversation_id='x'", trigger(conversation_id="x"), "conversation_id"),
    (
        "trigger conversation_query={'q': 'refund'}",
        trigger(conversation_id=None, conversation_query={"q": "refund"}),
        "q",
    ),
    ("trigger poll_interval=0", trigger(poll_interval=0), "poll_interval"),
    ("trigger poll_interval='fast'", trigger(poll_interval="fast"), "poll_interval"),
    ("trigger min_messages=0", trigger(min_messages=0), "min_messages"),
    ("trigger min_messages=0 (watcher)", trigger(min_messages=0, start=None), "min_messages"),
]


@pytest.mark.parametrize(("what", "build", "names"), STATIC, ids=[row[0] for row in STATIC])
def test_static_value_fails_at_parse(
    what: str, build: Callable[[], Any], names: str, emu: DotoEmulator
) -> None:
    with pytest.raises(DotoConfigError) as raised:
        build()
    assert names in str(raised.value), f"{what}: the error does not name {names!r}: {raised.value}"
    assert emu.requests == []


def test_sender_types_string_means_one_type() -> None:
    """A bare string is one sender type (never split into characters, which would match nothing)."""
    task = NewMessageSensor(task_id="wait", conversation_id=1, sender_types="Contact")
    assert task._filter().sender_types == ("Contact",)


# ---- connections: fail at first use, before any request -------------------------------------


def connections(emu: DotoEmulator) -> list[tuple[str, dict[str, Any] | None, str]]:
    """(name, connection JSON or None for "no such connection", word the error must contain).
    Every connection points at the emulator, so a request slipping through would be recorded."""
    good = json.loads(emu.connection_json())
    return [
        ("unknown connection id", None, "doto_missing"),
        ("no token", {**good, "password": ""}, "API Token"),
        ("token with a trailing newline", {**good, "password": good["password"] + "\n"}, "API Token"),
        ("token with a pasted space", {**good, "password": " " + good["password"]}, "API Token"),
        ("no account", {**good, "extra": {}}, "Account ID"),
        ("account not a number", {**good, "extra": {"account_id": "acme"}}, "Account ID"),
        ("base URL not a URL", {**good, "host": "not a url"}, "Base URL"),
        ("base URL with a tab inside", {**good, "host": emu.base_url + "/a\tb"}, "Base URL"),
        ("base URL of another scheme", {**good, "host": "ftp://127.0.0.1:21"}, "Base URL"),
        ("timeout not positive", {**good, "extra": {"account_id": 7, "timeout": -1}}, "timeout"),
        ("timeout not a number", {**good, "extra": {"account_id": 7, "timeout": "soon"}}, "timeout"),
        ("plain http to a remote host", {**good, "host": "http://doto.example.com"}, "plain http"),
    ]


CONNECTION_IDS = [
    "unknown connection id",
    "no token",
    "token with a trailing newline",
    "token with a pasted space",
    "no account",
    "account not a number",
    "base URL not a URL",
    "base URL with a tab inside",
    "base URL of another scheme",
    "timeout not positive",
    "timeout not a number",
    "plain http to a remote host",
]


@pytest.mark.parametrize("row", CONNECTION_IDS)
@pytest.mark.parametrize("client", ["sync hook", "async hook", "operator"])
def test_bad_connection_fails_before_sending(
    row: str, client: str, emu: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, conn, word = next(c for c in connections(emu) if c[0] == row)
    conn_id = "doto_missing" if conn is None else "doto_bad"
    if conn is not None:
        monkeypatch.setenv("AIRFLOW_CONN_DOTO_BAD", json.dumps(conn))
    with pytest.raises(DotoConfigError) as raised:
        if client == "sync hook":
            DotoHook(conn_id).send_message(1, "hello")
        elif client == "async hook":
            asyncio.run(DotoAsyncHook(conn_id).send_message(1, "hello"))
        else:
            SendMessageOperator(
                task_id="send", conversation_id=1, content="hello", doto_conn_id=conn_id
            ).hook.send_message(1, "hello")
    assert word in str(raised.value) and conn_id in str(raised.value), str(raised.value)
    assert_no_token(str(raised.value), repr(raised.value))
    assert emu.requests == []


@pytest.mark.integration
def test_bad_templated_values_fail_when_the_task_runs(
    reliability_dags: Path, emu: DotoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """Values known only after rendering are checked at run time, still before any request: a
    real DAG run whose every task renders one bad value; all fail, the server sees nothing."""
    dag = load_dag(reliability_dags, "reliability_bad_templates")
    run = dag.test()
    out = capfd.readouterr()
    assert_no_token(out.out, out.err, where="dag.test() output")
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states and all(state == "failed" for state in states.values()), states
    assert emu.requests == []
    for task_id, words in {
        "send_bad_conversation": "conversation_id must be a positive integer",
        "send_empty_content": "content must be a non-empty string",
        "delete_bad_message": "message_id must be a positive integer",
        "list_bad_after": "after must be a Unix timestamp",
        "wait_bad_pattern": "content_pattern",
    }.items():
        assert task_id in states
        assert words in out.out + out.err, f"{task_id}: {words!r} not in the task log"
