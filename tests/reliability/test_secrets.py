"""Secrets: the API token never leaks, never travels in clear, never follows a redirect.

Every reliability test runs against an emulator whose token is ``TOKEN`` and checks (conftest,
``no_token_in_output``) that no log record and no console output carries it; the fault matrix
checks every error it raises (str, repr, args, traceback, chained exceptions). Here: a whole DAG
run with every operator, both sensor modes and the notifier (its XComs, rendered template fields
and task logs), the reprs and serialised forms of hooks, operators and the trigger, plain-http
refusal before any name lookup, and redirects to another host.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.exceptions import (
    DotoAttachmentError,
    DotoConfigError,
    DotoConnectError,
    DotoHTTPError,
)
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.notifications.doto import DotoNotifier
from airflow_provider_doto.operators.doto import SendMessageOperator
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.triggers.doto import NewMessageTrigger

from .reliability_support import (
    POLICY,
    TOKEN,
    assert_no_token,
    bounded,
    load_dag,
    recording_server,
    redirecting_server,
)


def run_rows(model: Any, dag_run: Any) -> list[Any]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(
                select(model).where(model.dag_id == dag_run.dag_id, model.run_id == dag_run.run_id)
            )
        )


@pytest.mark.integration
def test_a_whole_dag_run_leaks_nothing(
    reliability_dags: Path, emu: DotoEmulator, faults: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel

    cid = emu.add_conversation()
    emu.add_message(cid, "Is my order on its way?", message_type="incoming")
    faults.inject("status", method="GET", status=503)  # a retried read: a warning in the task log
    dag = load_dag(reliability_dags, "reliability_secrets_flow")
    run = dag.test(run_conf={"cid": cid})
    out = capfd.readouterr()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states.pop("send_to_missing") == "failed"
    assert set(states.values()) == {"success"}, states
    assert "DotoNotFoundError" in out.out + out.err  # the failing task's error did reach the log
    assert_no_token(out.out, out.err, where="dag.test() task logs")

    xcoms = run_rows(XComModel, run)
    assert {x.task_id for x in xcoms} >= {"send", "wait", "wait_deferred", "list", "delete"}
    assert_no_token(*[json.dumps(XComModel.deserialize_value(x), default=str) for x in xcoms], where="XCom")
    rendered = run_rows(RenderedTaskInstanceFields, run)
    assert rendered
    assert_no_token(*[json.dumps(r.rendered_fields, default=str) for r in rendered], where="rendered fields")
    assert emu.requests and all(r.headers.get("api_access_token") == "***" for r in emu.requests)
    assert all(r.authorized for r in emu.requests)  # (the token was sent, and only in its header)


def test_reprs_and_serialised_forms_leak_nothing(emu: DotoEmulator) -> None:
    cid = emu.add_conversation()
    hook = DotoHook()
    hook.list_messages(cid)  # settings and session now built
    async_hook = DotoAsyncHook()
    asyncio.run(async_hook.list_messages(cid))
    trigger = NewMessageTrigger(cid, start=0, poll_interval=1)
    objects = [
        hook,
        hook.settings,
        hook.session,
        async_hook,
        asyncio.run(async_hook.get_settings()),
        SendMessageOperator(task_id="send", conversation_id=cid, content="hi"),
        NewMessageSensor(task_id="wait", conversation_id=cid),
        DotoNotifier(conversation_id=cid),
        trigger,
    ]
    assert TOKEN in hook.session.headers.values()  # the token is really there, just never shown
    assert_no_token(*[repr(o) for o in objects], *[str(o) for o in objects], where="reprs")
    assert_no_token(json.dumps(trigger.serialize()), where="serialised trigger kwargs")


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Name lookups of anything but loopback are recorded and fail (no traffic leaves the machine)."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
            return real(host, *args, **kwargs)
        looked_up.append(name)
        raise socket.gaierror(socket.EAI_NONAME, "name lookups are blocked in this test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


def call(client: str, conn_id: str = "doto_default") -> Any:
    if client == "sync":
        return lambda: DotoHook(conn_id, timeout=2, retry_policy=POLICY).list_messages(1)
    return lambda: asyncio.run(DotoAsyncHook(conn_id, timeout=2, retry_policy=POLICY).list_messages(1))


def plain_http_connection(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    """``doto_default`` on plain http to a remote host (which ``no_dns`` keeps from being reached)."""
    conn = {
        "conn_type": "doto",
        "host": "http://doto.example.com",
        "password": TOKEN,
        "extra": {"account_id": 7, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", json.dumps(conn))


@pytest.mark.parametrize("client", ["sync", "async"])
def test_plain_http_to_a_remote_host_is_refused_before_any_lookup(
    client: str, no_dns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_http_connection(monkeypatch)
    _, error, _ = bounded(call(client), 10, "plain http call")
    assert isinstance(error, DotoConfigError) and "plain http" in str(error)
    assert no_dns == []
    assert_no_token(str(error), repr(error))


@pytest.mark.parametrize("client", ["sync", "async"])
def test_plain_http_goes_ahead_when_explicitly_allowed(
    client: str, no_dns: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proves the refusal above is the check, not some other failure: allowed, it does look the host up."""
    plain_http_connection(monkeypatch, allow_insecure_http=True)
    _, error, _ = bounded(call(client), 20, "allowed plain http call")
    assert isinstance(error, DotoConnectError), repr(error)
    assert "doto.example.com" in no_dns


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_redirect_is_not_followed_with_the_token(
    client: str, method: str, status: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        recording_server("127.0.0.2") as (elsewhere, received),
        redirecting_server(elsewhere, status) as (doto, asked),
    ):
        conn = {
            "conn_type": "doto",
            "host": doto,
            "password": TOKEN,
            "extra": {"account_id": 7, "timeout": 2},
        }
        monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", json.dumps(conn))
        if client == "sync":
            hook: Any = DotoHook()
            fn = {
                "GET": lambda: hook.list_messages(5),
                "POST": lambda: hook.send_message(5, "hi"),
                "DELETE": lambda: hook.delete_message(5, 6),
            }[method]
        else:
            ahook = DotoAsyncHook()
            coroutine = {
                "GET": lambda: ahook.list_messages(5),
                "POST": lambda: ahook.send_message(5, "hi"),
                "DELETE": lambda: ahook.delete_message(5, 6),
            }[method]
            fn = lambda: asyncio.run(coroutine())  # noqa: E731
        _, error, _ = bounded(fn, 10, f"{client} {method} answered {status}")
    assert [r.method for r in asked] == [method]  # the configured server was asked once
    assert received == [], f"the request followed the redirect to another host: {received}"
    assert isinstance(error, DotoHTTPError) and error.status == status, repr(error)
    assert f"HTTP {status}" in str(error) and method in str(error)
    assert_no_token(str(error), repr(error))


def test_the_redirect_check_can_fail() -> None:
    """The premise: a client that follows redirects (requests' default) carries the custom token
    header to the other host, and the recording server sees it. So the test above can fail."""
    import requests

    with (
        recording_server("127.0.0.2") as (elsewhere, received),
        redirecting_server(elsewhere, 302) as (doto, _),
    ):
        requests.get(
            doto + "/api/v1/accounts/7/conversations/5/messages",
            headers={"api_access_token": TOKEN},
            timeout=5,
        )
    assert [r.headers.get("api_access_token") for r in received] == [TOKEN]


@pytest.mark.parametrize("client", ["sync", "async"])
def test_an_attachment_download_keeps_the_token_on_its_origin(
    client: str, emu: DotoEmulator, tmp_path: Path
) -> None:
    """A data_url on the API's host redirects (302) to the storage listener, the same host on
    another port: another origin. The hook's first hop carries the token, the storage hop does not;
    a failing download's error carries it nowhere either."""
    import io

    cid = emu.add_conversation()
    emu.add_message(cid, "the weekly CSV", attachments=[("weekly.csv", b"day,count\n" * 50_000)])
    (message,) = DotoHook().list_messages(cid)
    (attachment,) = message.attachments
    emu.clear_requests()
    emu.clear_storage_requests()
    out = io.BytesIO()
    if client == "sync":
        DotoHook().download_attachment(attachment, out)
    else:
        asyncio.run(DotoAsyncHook().download_attachment(attachment, out))
    assert out.getvalue() == b"day,count\n" * 50_000
    assert [r.authorized for r in emu.requests] == [True]  # the redirect hop, on the Base URL's origin
    (stored,) = emu.storage_requests
    assert "api_access_token" not in stored.headers and "***" not in stored.headers.values()
    assert not stored.authorized

    emu.inject("status", status=403, path_contains="/rails/active_storage/")
    with pytest.raises(DotoAttachmentError) as info:
        if client == "sync":
            DotoHook().download_attachment(attachment, io.BytesIO())
        else:
            asyncio.run(DotoAsyncHook().download_attachment(attachment, io.BytesIO()))
    assert info.value.status == 403
    assert_no_token(str(info.value), repr(info.value))
