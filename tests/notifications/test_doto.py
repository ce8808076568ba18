"""DotoNotifier: task callbacks in a real DAG run, the async path Airflow uses for Deadline Alerts,
and construction-time checks. All posts go over real HTTP to the emulator."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_module, task_instances

from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.notifications.doto import DotoNotifier, send_doto_notification
from airflow_provider_doto.testing.emulator import DotoEmulator

REPO = Path(__file__).resolve().parents[2]


def posts(emu: DotoEmulator) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


@pytest.mark.integration
def test_task_callbacks_post_one_note_per_outcome(airflow_db: Path, doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    module = load_module(REPO / "tests/dags/notifier_callbacks.py", "notifier_callbacks")

    dag_run = module.dag.test(run_conf={"cid": cid})
    assert dag_run.state == "failed"  # "breaks" failed after its retry; "works" succeeded
    messages = emu.messages(cid)

    failure_notes = [m for m in messages if "breaks" in (m["content"] or "")]
    assert len(failure_notes) == 1  # one note for the task's final failure, none for its retry
    note = failure_notes[0]
    assert note["private"] is True and note["message_type"] == "outgoing"
    assert note["content"] == f"Airflow task breaks failed in run {dag_run.run_id} (try 2)."

    success_posts = [m for m in messages if "works" in (m["content"] or "")]
    assert len(success_posts) == 1
    assert success_posts[0]["private"] is False
    assert success_posts[0]["content"] == f"Your export works is ready (run {dag_run.run_id})."
    assert len(messages) == 2

    # A post that fails (no such conversation: 404) is logged; the task's outcome stands.
    states = {task_id: ti.state for (task_id, _), ti in task_instances(dag_run).items()}
    assert states == {"breaks": "failed", "works": "success", "unnoticed": "success"}
    assert len(posts(emu)) == 3 and any("/conversations/987654/" in r.path for r in posts(emu))


def test_awaiting_the_notifier_posts_through_the_async_hook(doto_emulator: DotoEmulator) -> None:
    """``await Notifier(..., context=...)``: how Airflow runs an async notifier (Deadline Alerts)."""
    emu = doto_emulator
    cid = emu.add_conversation()
    notifier = DotoNotifier(
        conversation_id=str(cid),
        content="Deadline missed: {{ dag_run.dag_id }} / {{ dag_run.run_id }}",
        context={"dag_run": {"dag_id": "nightly_export", "run_id": "scheduled__2026-01-01"}},  # type: ignore[arg-type]
    )

    async def notify() -> None:
        await notifier

    asyncio.run(notify())
    [message] = emu.messages(cid)
    assert message["content"] == "Deadline missed: nightly_export / scheduled__2026-01-01"
    assert message["private"] is True and message["message_type"] == "outgoing"


def test_async_notify_via_airflows_callback_trigger(doto_emulator: DotoEmulator) -> None:
    """The triggerer's CallbackTrigger imports the notifier by path and awaits it with the context."""
    try:
        from airflow.triggers.callback import CallbackTrigger
    except ImportError:  # Airflow 3.1: the same trigger, for deadline callbacks only
        from airflow.triggers.deadline import DeadlineCallbackTrigger as CallbackTrigger

    emu = doto_emulator
    cid = emu.add_conversation()
    trigger = CallbackTrigger(
        callback_path="airflow_provider_doto.notifications.doto.DotoNotifier",
        callback_kwargs={
            "conversation_id": cid,
            "content": "Run {{ dag_run.run_id }} of {{ dag_run.dag_id }} missed its deadline.",
            "context": {"dag_run": {"dag_id": "nightly_export", "run_id": "r42"}},
        },
    )

    async def run() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    payloads = asyncio.run(run())
    assert [p["state"] for p in payloads] == ["running", "success"]
    [message] = emu.messages(cid)
    assert message["content"] == "Run r42 of nightly_export missed its deadline."
    assert message["private"] is True


def test_async_notify_reports_doto_errors(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.inject("status", status=401)
    notifier = DotoNotifier(conversation_id=cid, content="hello")
    from airflow_provider_doto.exceptions import DotoAuthError

    with pytest.raises(DotoAuthError):
        asyncio.run(notifier.async_notify({}))  # type: ignore[arg-type]
    assert emu.messages(cid) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conversation_id": 1, "content": ""},
        {"conversation_id": 1, "content": "   "},
        {"conversation_id": 1, "content": None},
        {"conversation_id": "abc", "content": "hi"},
        {"conversation_id": 0, "content": "hi"},
        {"conversation_id": -3, "content": "hi"},
        {"conversation_id": True, "content": "hi"},
        {"conversation_id": 1, "content": "hi", "private": "yes"},
        {"conversation_id": 1, "content": "hi", "private": False, "wait_for": "recieved"},
        {"conversation_id": 1, "content": "hi", "private": False, "wait_for": "read", "delivery_timeout": -1},
        {
            "conversation_id": 1,
            "content": "hi",
            "wait_for": "delivered",
        },  # a private note: nothing to wait for
    ],
)
def test_bad_static_input_fails_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(DotoConfigError):
        DotoNotifier(**kwargs)


def test_templated_input_is_checked_when_rendered_not_at_construction() -> None:
    notifier = DotoNotifier(conversation_id="{{ dag_run.conf['cid'] }}", content="{{ ti.task_id }}")
    assert notifier.private is True  # a note for the team unless asked otherwise
    assert set(notifier.template_fields) == {
        "conversation_id",
        "content",
        "template",
        "fallback_template",
        "attachments",
    }
    assert send_doto_notification is DotoNotifier


# ---- delivery status: wait_for ------------------------------------------------------------------

WHY = "Template not found or invalid template name"


def whatsapp(emu: DotoEmulator, *, open_window: bool) -> int:
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    if open_window:
        emu.add_message(cid, "Where is my export?")
    return cid


def read_backs(emu: DotoEmulator, cid: int) -> list[Any]:
    path = f"/api/v1/accounts/1/conversations/{cid}/messages"
    return [r for r in emu.requests if r.method == "GET" and r.path == path and "before" in r.query]


@pytest.mark.integration
def test_a_callback_waits_until_its_message_is_delivered(
    airflow_db: Path, doto_emulator: DotoEmulator
) -> None:
    emu = doto_emulator
    emu.delivery_receipts = (2, 3600)  # delivered 1 to 2 s after the send (whole seconds)
    cid = whatsapp(emu, open_window=True)
    module = load_module(REPO / "tests/dags/notifier_delivery.py", "notifier_delivery")

    dag_run = module.dag.test(run_conf={"cid": cid})

    assert dag_run.state == "success"
    [_, message] = emu.messages(cid)
    assert message["content"] == "Your export works is ready." and message["status"] == "delivered"
    assert len(read_backs(emu, cid)) >= 2  # read back (sent, then delivered): the notifier waited
    assert len(posts(emu)) == 1


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_message_the_channel_failed_raises_from_the_notifier(doto_emulator: DotoEmulator, way: str) -> None:
    from airflow_provider_doto.exceptions import DotoDeliveryError

    emu = doto_emulator
    emu.window_failure_delay = 0
    cid = whatsapp(emu, open_window=False)
    notifier = DotoNotifier(conversation_id=cid, content="Export ready", private=False, wait_for="sent")
    with pytest.raises(DotoDeliveryError, match=WHY):
        if way == "sync":
            notifier.notify({})  # type: ignore[arg-type]
        else:
            asyncio.run(notifier.async_notify({}))  # type: ignore[arg-type]
    assert [m["status"] for m in emu.messages(cid)] == ["failed"]
    assert len(posts(emu)) == 1


# ---- attachments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["sync", "async"])
def test_the_notifier_sends_its_files_rendered_with_the_context(
    doto_emulator: DotoEmulator, tmp_path: Path, way: str
) -> None:
    """As Airflow calls a notifier: ``notifier(context)`` (DotoHook) or ``await notifier`` (DotoAsyncHook),
    the templated path rendered with the callback's context first."""
    emu = doto_emulator
    cid = emu.add_conversation()
    (tmp_path / "orders_2026-12-05.csv").write_bytes(b"day,orders\n1,2\n")
    context: Any = {"ds": "2026-12-05", "params": {"dir": str(tmp_path)}}
    notifier = DotoNotifier(
        conversation_id=cid,
        content="Export for {{ ds }} attached.",
        private=False,
        attachments=["{{ params.dir }}/orders_{{ ds }}.csv", ("notes.txt", b"see you")],
        context=context if way == "async" else None,
    )

    if way == "sync":
        notifier(context)
    else:

        async def notify() -> None:
            await notifier

        asyncio.run(notify())

    (stored,) = emu.messages(cid)
    assert stored["content"] == "Export for 2026-12-05 attached."
    assert [(a["extension"], a["file_size"]) for a in stored["attachments"]] == [("csv", 15), ("txt", 7)]
    (post,) = posts(emu)
    assert post.headers["content-type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_refused_file_raises_from_the_notifier_and_posts_nothing(
    doto_emulator: DotoEmulator, tmp_path: Path, way: str
) -> None:
    from airflow_provider_doto.exceptions import DotoUploadError

    emu = doto_emulator
    cid = emu.add_conversation()
    (tmp_path / "report.csv").write_bytes(b"a,b\n")
    (tmp_path / "run.exe").write_bytes(b"MZ")
    notifier = DotoNotifier(
        conversation_id=cid,
        content="files",
        attachments=[str(tmp_path / "report.csv"), str(tmp_path / "run.exe")],
    )
    emu.clear_requests()
    with pytest.raises(DotoUploadError, match=r"attachment 'run\.exe' is application/"):
        if way == "sync":
            notifier.notify({})  # type: ignore[arg-type]
        else:
            asyncio.run(notifier.async_notify({}))  # type: ignore[arg-type]
    assert emu.requests == []
    assert emu.messages(cid) == []


def test_attachments_with_a_template_fail_at_construction() -> None:
    template = {"name": "t", "category": "UTILITY", "language": "en_US", "processed_params": {}}
    with pytest.raises(DotoConfigError, match="a template message cannot carry attachments"):
        DotoNotifier(conversation_id=1, content="x", private=False, template=template, attachments=["/r.csv"])
