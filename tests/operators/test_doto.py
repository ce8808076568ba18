"""SendMessageOperator, DeleteMessageOperator and ListMessagesOperator.

Validation is checked at construction (and through a real DagBag parse); behaviour runs real DAGs
from ``tests/dags`` with ``dag.test()`` against the emulator over HTTP.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.operators.doto import (
    DeleteMessageOperator,
    ListMessagesOperator,
    SendMessageOperator,
)

pytestmark = pytest.mark.integration


def _posts(emulator: Any) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST"]


def _json_safe(value: Any) -> bool:
    return json.loads(json.dumps(value)) == value


# ---- construction-time validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"message_type": "template"}, "message_type must be one of"),
        ({"message_type": "bogus"}, "message_type must be one of"),
        ({"content": ""}, "content must be a non-empty string"),
        ({"content": "   \n"}, "content must be a non-empty string"),
        ({"content": None}, "content must be a non-empty string"),
        ({"private": True, "message_type": "incoming"}, "private=True is only for outgoing"),
        ({"private": "yes"}, "private must be True or False"),
        ({"conversation_id": "abc"}, "conversation_id must be a positive integer"),
        ({"conversation_id": 0}, "conversation_id must be a positive integer"),
        ({"conversation_id": -3}, "conversation_id must be a positive integer"),
        ({"conversation_id": 1.5}, "conversation_id must be a positive integer"),
        ({"conversation_id": True}, "conversation_id must be a positive integer"),
        ({"content_type": ""}, "content_type must be a non-empty string"),
        ({"content_attributes": ["a"]}, "content_attributes must be a dict"),
    ],
)
def test_send_message_rejects_static_mistakes(kwargs: dict[str, Any], match: str) -> None:
    arguments = {"task_id": "send", "conversation_id": 7, "content": "hi", **kwargs}
    with pytest.raises(DotoConfigError, match=match):
        SendMessageOperator(**arguments)


def test_send_message_accepts_templates_and_template_files() -> None:
    """Templated values are checked after rendering, not at parse."""
    op = SendMessageOperator(
        task_id="send",
        conversation_id="{{ params.conversation_id }}",
        content="templates/reply.md.j2",
        content_attributes={"a": "{{ run_id }}"},
    )
    assert op.content == "templates/reply.md.j2"
    SendMessageOperator(task_id="send2", conversation_id="12", content="{{ params.text }}")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"message_id": "x"}, "message_id must be a positive integer"),
        ({"message_id": 0}, "message_id must be a positive integer"),
        ({"conversation_id": "1 2"}, "conversation_id must be a positive integer"),
        ({"missing_ok": "no"}, "missing_ok must be True or False"),
    ],
)
def test_delete_message_rejects_static_mistakes(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        DeleteMessageOperator(**{"task_id": "delete", "conversation_id": 7, "message_id": 3, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"after": "yesterday"}, "after must be a Unix timestamp"),
        ({"before": float("nan")}, "before must be a finite Unix timestamp"),
        ({"conversation_id": None}, "conversation_id must be a positive integer"),
    ],
)
def test_list_messages_rejects_static_mistakes(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        ListMessagesOperator(**{"task_id": "list", "conversation_id": 7, **kwargs})


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            'SendMessageOperator(task_id="t", conversation_id=1, content="hi", message_type="activity")',
            "message_type",
        ),
        ('SendMessageOperator(task_id="t", conversation_id=1, content="")', "content must be"),
        ('SendMessageOperator(task_id="t", conversation_id="x1", content="hi")', "conversation_id"),
        ('DeleteMessageOperator(task_id="t", conversation_id=1, message_id="last")', "message_id"),
    ],
)
def test_mistakes_are_import_errors_at_dag_parse(tmp_path: Path, call: str, match: str) -> None:
    """A real DagBag parse reports the DotoConfigError as the file's import error."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

    (tmp_path / "bad_doto_dag.py").write_text(
        textwrap.dedent(
            f"""
            import pendulum
            from airflow.sdk import DAG
            from airflow_provider_doto.operators.doto import DeleteMessageOperator, SendMessageOperator

            with DAG("bad_doto_dag", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
                {call}
            """
        )
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "DotoConfigError" in error
    assert match in error


# ---- SendMessageOperator in real DAG runs ------------------------------------------------------


def test_send_renders_content_from_template_file(airflow_db: Path, doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    dag = load_dag("test_dags/doto_test_send_template.py")

    dr = dag.test(run_conf={"conversation_id": cid, "name": "Ana", "order": "#77"})

    assert dr.state == "success"
    (message,) = doto_emulator.messages(cid)
    assert message["content"] == f"Hello Ana, your order #77 has shipped.\n(run {dr.run_id})"
    assert message["private"] is True and message["message_type"] == "outgoing"
    attributes = message["content_attributes"]
    assert attributes["order"] == "#77" and attributes["campaign"] == "shipping"
    assert attributes[api.DELIVERY_KEY_ATTRIBUTE] == api.delivery_key(
        "doto_test_send_template", "send_from_file", dr.run_id, -1, cid
    )
    value = xcom(dr, "send_from_file")
    assert _json_safe(value)
    assert value["id"] == message["id"] and value["content"] == message["content"]
    assert value["sender"]["type"] == {"doto": "User", "chatwoot": "user"}[doto_emulator.flavor]


def test_send_fails_on_content_that_renders_empty(airflow_db: Path, doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    dag = load_dag("test_dags/doto_test_send.py")

    dr = dag.test(run_conf={"conversation_id": cid, "text": "  "})

    assert dr.state == "failed"
    assert task_instances(dr)[("send", -1)].try_number == 2  # retried, failed both times
    assert doto_emulator.messages(cid) == [] and _posts(doto_emulator) == []


def test_retry_after_commit_then_dropped_connection_does_not_post_twice(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """The server commits the POST, then drops the connection: try 1 fails, try 2 finds the message."""
    cid = doto_emulator.add_conversation()
    doto_emulator.inject("drop_after", method="POST")
    dag = load_dag("test_dags/doto_test_send.py")

    dr = dag.test(run_conf={"conversation_id": cid, "text": "Your refund is on its way."})

    assert dr.state == "success"
    ti = task_instances(dr)[("send", -1)]
    assert ti.state == "success" and ti.try_number == 2
    messages = doto_emulator.messages(cid)
    assert [m["content"] for m in messages] == ["Your refund is on its way."]
    assert len(_posts(doto_emulator)) == 1
    assert xcom(dr, "send")["id"] == messages[0]["id"]


def test_retry_matches_by_content_when_the_server_drops_content_attributes(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """Without the echoed delivery key, the retry falls back to identical content, type and privacy."""
    cid = doto_emulator.add_conversation()
    doto_emulator.drop_content_attributes = True
    doto_emulator.add_message(cid, "Your refund is on its way.", message_type="outgoing", created_at=1)
    doto_emulator.inject("drop_after", method="POST")
    dag = load_dag("test_dags/doto_test_send.py")

    dr = dag.test(run_conf={"conversation_id": cid, "text": "Your refund is on its way."})

    assert dr.state == "success"
    assert task_instances(dr)[("send", -1)].try_number == 2
    messages = doto_emulator.messages(cid)
    # The old message (before this run) stays; the run's own message exists once, without a key.
    assert [m["content"] for m in messages] == ["Your refund is on its way."] * 2
    assert messages[1]["content_attributes"] == {}
    assert len(_posts(doto_emulator)) == 1
    assert xcom(dr, "send")["id"] == messages[1]["id"]


def test_retry_after_connection_dropped_before_commit_posts_once(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """The first POST never reached the store: the retry must post (once)."""
    cid = doto_emulator.add_conversation()
    doto_emulator.inject("drop_before", method="POST")
    dag = load_dag("test_dags/doto_test_send.py")

    dr = dag.test(run_conf={"conversation_id": cid, "text": "Hello again"})

    assert dr.state == "success"
    assert task_instances(dr)[("send", -1)].try_number == 2
    assert [m["content"] for m in doto_emulator.messages(cid)] == ["Hello again"]
    assert len(_posts(doto_emulator)) == 2


def test_two_runs_sending_the_same_text_both_post(airflow_db: Path, doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    dag = load_dag("test_dags/doto_test_send.py")

    first = dag.test(run_conf={"conversation_id": cid, "text": "Reminder: your appointment is tomorrow."})
    second = dag.test(run_conf={"conversation_id": cid, "text": "Reminder: your appointment is tomorrow."})

    assert first.state == second.state == "success"
    assert first.run_id != second.run_id
    messages = doto_emulator.messages(cid)
    assert [m["content"] for m in messages] == ["Reminder: your appointment is tomorrow."] * 2
    keys = {m["content_attributes"][api.DELIVERY_KEY_ATTRIBUTE] for m in messages}
    assert len(keys) == 2


# ---- DeleteMessageOperator -------------------------------------------------------------------


def test_delete_missing_ok_succeeds_on_404_and_strict_fails(
    airflow_db: Path, doto_emulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cid = doto_emulator.add_conversation()
    dag = load_dag("test_dags/doto_test_delete.py")

    dr = dag.test(run_conf={"conversation_id": cid, "message_id": 404, "strict_message_id": 405})

    tis = task_instances(dr)
    assert tis[("delete_missing_ok", -1)].state == "success"
    assert xcom(dr, "delete_missing_ok") is False
    task_log = capsys.readouterr().out  # dag.test() prints the task logs
    assert f"Message 404 of conversation {cid} was already gone" in task_log
    assert "DotoNotFoundError" in task_log
    assert tis[("delete_strict", -1)].state == "failed"
    assert dr.state == "failed"


def test_delete_removes_existing_messages(airflow_db: Path, doto_emulator: Any) -> None:
    cid = doto_emulator.add_conversation()
    keep = doto_emulator.add_message(cid, "keep me")["id"]
    first = doto_emulator.add_message(cid, "typo", message_type="outgoing")["id"]
    second = doto_emulator.add_message(cid, "oops", message_type="outgoing")["id"]
    dag = load_dag("test_dags/doto_test_delete.py")

    dr = dag.test(run_conf={"conversation_id": cid, "message_id": first, "strict_message_id": second})

    assert dr.state == "success"
    assert xcom(dr, "delete_missing_ok") is True and xcom(dr, "delete_strict") is True
    remaining = [m["id"] for m in doto_emulator.messages(cid, include_deleted=False)]
    assert remaining == [keep]


# ---- ListMessagesOperator --------------------------------------------------------------------


def _seed_window(emulator: Any) -> tuple[int, int, int, list[int]]:
    """Messages at and around a window ``after < created_at < before``; returns the ones inside."""
    cid = emulator.add_conversation()
    base = int(time.time()) - 3600
    emulator.add_message(cid, "too early", created_at=base)  # == after: outside (strict)
    inside = [
        emulator.add_message(cid, "first", created_at=base + 1)["id"],
        emulator.add_message(cid, "reply", message_type="outgoing", created_at=base + 5)["id"],
        emulator.add_message(cid, "note", message_type="outgoing", private=True, created_at=base + 5)["id"],
        emulator.add_message(cid, "last", created_at=base + 9)["id"],
    ]
    emulator.add_message(cid, "too late", created_at=base + 10)  # == before: outside
    gone = emulator.add_message(cid, "deleted", created_at=base + 3)["id"]
    emulator.soft_delete = True
    from airflow_provider_doto.hooks.doto import DotoHook

    DotoHook().delete_message(cid, gone)
    return cid, base, base + 10, inside


def test_list_messages_to_xcom_and_jsonl_file(airflow_db: Path, doto_emulator: Any, tmp_path: Path) -> None:
    cid, after, before, inside = _seed_window(doto_emulator)
    out = tmp_path / "exports" / "conversation.jsonl"
    dag = load_dag("test_dags/doto_test_list.py")

    dr = dag.test(
        run_conf={"conversation_id": cid, "after": after, "before": before, "output_path": str(out)}
    )

    assert dr.state == "success"
    rows = xcom(dr, "list_to_xcom")
    assert _json_safe(rows)
    assert [r["id"] for r in rows] == inside  # oldest first, deleted one left out
    assert [r["content"] for r in rows] == ["first", "reply", "note", "last"]
    lines = out.read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert xcom(dr, "list_to_file") == {"path": str(out), "count": 4}


def test_list_messages_to_object_storage_url(airflow_db: Path, doto_emulator: Any, tmp_path: Path) -> None:
    cid, after, before, inside = _seed_window(doto_emulator)
    url = f"file://{tmp_path}/lake/doto/messages.jsonl"
    dag = load_dag("test_dags/doto_test_list.py")

    dr = dag.test(run_conf={"conversation_id": cid, "after": after, "before": before, "output_path": url})

    assert dr.state == "success"
    written = tmp_path / "lake" / "doto" / "messages.jsonl"
    assert [json.loads(line)["id"] for line in written.read_text().splitlines()] == inside
    result = xcom(dr, "list_to_file")
    assert result["count"] == 4 and result["path"].endswith("/lake/doto/messages.jsonl")


# ---- the reply window: known before sending ---------------------------------------------------


def _whatsapp(emu: Any, *, open_window: bool) -> int:
    cid = emu.add_conversation(inbox_id=emu.add_inbox("whatsapp"))
    if open_window:
        emu.add_message(cid, "Where is my order?")  # the customer wrote just now: the window is open
    return cid


def test_a_closed_whatsapp_window_fails_the_task_and_sends_nothing(
    airflow_db: Path, doto_emulator: Any
) -> None:
    cid = _whatsapp(doto_emulator, open_window=False)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_window")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "failed"
    tis = task_instances(dr)
    assert tis[("send", -1)].state == "failed"
    assert tis[("note", -1)].state == "success"  # a private note never waits for the window
    posts = _posts(doto_emulator)
    assert len(posts) == 1 and posts[0].json["private"] is True  # the note only
    assert [m["private"] for m in doto_emulator.messages(cid)] == [True]
    gets = [
        r.path
        for r in doto_emulator.requests
        if r.method == "GET" and r.path.endswith(f"/conversations/{cid}")
    ]
    assert len(gets) == 1  # one read of the conversation, for the public message only


def test_an_open_window_sends(airflow_db: Path, doto_emulator: Any) -> None:
    cid = _whatsapp(doto_emulator, open_window=True)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_window")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"
    assert xcom(dr, "send")["status"] == "sent"
    assert len(_posts(doto_emulator)) == 2


def test_the_window_error_is_typed_and_names_the_channel(doto_emulator: Any) -> None:
    from airflow_provider_doto.exceptions import DotoReplyWindowError
    from airflow_provider_doto.hooks.doto import DotoHook

    cid = _whatsapp(doto_emulator, open_window=False)
    with pytest.raises(
        DotoReplyWindowError, match=rf"conversation {cid} .*Channel::Whatsapp.*24 hours"
    ) as caught:
        DotoHook().send_message(cid, "hello?", check_reply_window=True)
    assert (caught.value.conversation_id, caught.value.channel) == (cid, "Channel::Whatsapp")
    assert _posts(doto_emulator) == []
    DotoHook().send_message(cid, "hello?")  # the hook checks only when asked
    assert len(_posts(doto_emulator)) == 1


def test_unchecked_free_text_outside_the_window_is_sent_and_then_failed_by_the_server(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """What check_reply_window=False leaves to the server: a 200 with status sent, failed later."""
    doto_emulator.window_failure_delay = 0
    cid = _whatsapp(doto_emulator, open_window=False)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_unchecked")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"  # without wait_for the task reports the create only
    sent = xcom(dr, "send")
    assert sent["status"] == "sent"
    stored = doto_emulator.message(sent["id"])
    assert stored["status"] == "failed"
    assert stored["content_attributes"]["external_error"] == "Template not found or invalid template name"


# ---- delivery status: wait_for ------------------------------------------------------------------


def test_wait_for_reports_the_window_failure_as_failed_never_as_sent(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """Free text outside a WhatsApp window, not checked first: the 200 says sent, the read-back failed."""
    doto_emulator.window_failure_delay = 0
    cid = _whatsapp(doto_emulator, open_window=False)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_wait_delivered")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "failed"
    assert task_instances(dr)[("send", -1)].state == "failed"
    from sqlalchemy.exc import NoResultFound

    with pytest.raises(NoResultFound):
        xcom(dr, "send")  # nothing reported as sent
    (stored,) = doto_emulator.messages(cid)  # created once, never re-sent
    assert stored["status"] == "failed"


@pytest.mark.parametrize(("wait_for", "receipts"), [("delivered", (0, 3600)), ("read", (0, 0))])
def test_wait_for_returns_the_message_with_the_status_reached(
    airflow_db: Path, doto_emulator: Any, wait_for: str, receipts: tuple[int, int]
) -> None:
    doto_emulator.delivery_receipts = receipts
    cid = _whatsapp(doto_emulator, open_window=True)
    dag = load_dag("test_dags/doto_test_send_window.py", f"doto_test_send_wait_{wait_for}")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"
    value = xcom(dr, "send")
    assert value["status"] == wait_for and "external_error" not in value
    assert len(_posts(doto_emulator)) == 1


def test_read_satisfies_a_wait_for_delivered(doto_emulator: Any) -> None:
    from airflow_provider_doto.hooks.doto import DotoHook

    doto_emulator.delivery_receipts = (0, 0)
    cid = _whatsapp(doto_emulator, open_window=True)
    message = DotoHook().send_message(cid, "Your parcel is on its way.", wait_for="delivered")
    assert message.status == "read"


def test_wait_for_times_out_naming_the_last_status(doto_emulator: Any) -> None:
    from airflow_provider_doto.exceptions import DotoDeliveryError
    from airflow_provider_doto.hooks.doto import DotoHook

    cid = _whatsapp(doto_emulator, open_window=True)  # receipts off: the message stays sent
    with pytest.raises(
        DotoDeliveryError, match=r"timed out after 0 s waiting for status 'read'; its last status was 'sent'"
    ):
        DotoHook().send_message(cid, "Anyone there?", wait_for="read", delivery_timeout=0)
    assert len(_posts(doto_emulator)) == 1


def test_a_retry_waits_on_the_message_it_finds_and_never_sends_another(doto_emulator: Any) -> None:
    from airflow_provider_doto.exceptions import DotoDeliveryError
    from airflow_provider_doto.hooks.doto import DotoHook

    doto_emulator.delivery_receipts = (3600, 7200)  # the receipt comes an hour after the send
    cid = _whatsapp(doto_emulator, open_window=True)
    hook = DotoHook()
    since = doto_emulator.clock.now()
    with pytest.raises(DotoDeliveryError, match="timed out"):
        hook.send_message_once(cid, "Hi", key="k", wait_for="delivered", delivery_timeout=0)
    doto_emulator.clock.advance(3600)
    doto_emulator.clear_requests()
    message, already = hook.send_message_once(
        cid, "Hi", key="k", look_back_since=since, wait_for="delivered", delivery_timeout=0
    )
    assert already is True and _posts(doto_emulator) == []
    assert message.status == "delivered"
    assert len(doto_emulator.messages(cid)) == 2  # the customer's and ours, once


def test_bad_wait_for_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(DotoConfigError, match="wait_for must be None or one of sent, delivered, read"):
        SendMessageOperator(task_id="s", conversation_id=7, content="hi", wait_for="delivred")
    with pytest.raises(DotoConfigError, match="delivery_timeout"):
        SendMessageOperator(
            task_id="s", conversation_id=7, content="hi", wait_for="read", delivery_timeout=-1
        )


# ---- delivery status: deferrable wait_for --------------------------------------------------------


@pytest.fixture
def trigger_events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event a DeliveryTrigger fired in this process (dag.test runs the triggerer's part inline);
    its first read comes half a second after the deferral instead of ten."""
    from airflow_provider_doto.triggers.delivery import DeliveryTrigger

    fired: list[dict[str, Any]] = []
    run = DeliveryTrigger.run

    async def recorded(self: DeliveryTrigger) -> Any:
        async for event in run(self):
            fired.append(event.payload)
            yield event

    monkeypatch.setattr(DeliveryTrigger, "run", recorded)
    monkeypatch.setattr(SendMessageOperator, "defer_first_read_after", 0.5)
    return fired


def test_deferred_wait_resumes_with_the_message_and_its_final_status(
    airflow_db: Path, doto_emulator: Any, trigger_events: list[dict[str, Any]]
) -> None:
    doto_emulator.delivery_receipts = (2, 3600)  # still sent when the worker reads it back
    cid = _whatsapp(doto_emulator, open_window=True)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_wait_deferred")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"
    value = xcom(dr, "send")
    assert (value["status"], value["content"]) == ("delivered", "Your parcel is on its way.")
    assert [e["status"] for e in trigger_events] == ["success"]  # it waited in the trigger
    assert trigger_events[0]["message"]["id"] == value["id"]
    assert len(_posts(doto_emulator)) == 1


def test_deferred_wait_fails_the_task_with_the_channels_failure(
    airflow_db: Path, doto_emulator: Any, trigger_events: list[dict[str, Any]]
) -> None:
    doto_emulator.window_failure_delay = 2  # failed two seconds after the 200, as WhatsApp does
    cid = _whatsapp(doto_emulator, open_window=False)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_wait_deferred")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "failed"
    [event] = trigger_events
    assert event["error_type"] == "DotoDeliveryError"
    assert event["error_fields"]["external_error"] == "Template not found or invalid template name"
    from sqlalchemy.exc import NoResultFound

    with pytest.raises(NoResultFound):
        xcom(dr, "send")  # nothing reported as sent
    (stored,) = doto_emulator.messages(cid)
    assert stored["status"] == "failed"


def test_a_status_reached_before_deferring_needs_no_trigger(
    airflow_db: Path, doto_emulator: Any, trigger_events: list[dict[str, Any]]
) -> None:
    doto_emulator.delivery_receipts = (0, 0)
    cid = _whatsapp(doto_emulator, open_window=True)
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_wait_deferred")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"
    assert xcom(dr, "send")["status"] == "read"
    assert trigger_events == []  # read back once in the worker: never deferred


def test_a_retry_of_a_deferred_wait_waits_again_and_never_sends_twice(
    airflow_db: Path, doto_emulator: Any, trigger_events: list[dict[str, Any]]
) -> None:
    """An API inbox: no receipts, the message stays sent; each try defers and times out in the trigger."""
    cid = doto_emulator.add_conversation()
    dag = load_dag("test_dags/doto_test_send_window.py", "doto_test_send_wait_deferred_retried")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "failed"
    assert task_instances(dr)[("send", -1)].try_number == 2
    assert [e["error_type"] for e in trigger_events] == ["DotoDeliveryError"] * 2
    assert all("timed out after 1 s" in e["error"] for e in trigger_events)
    assert trigger_events[0]["error_fields"]["message_id"] == trigger_events[1]["error_fields"]["message_id"]
    assert len(_posts(doto_emulator)) == 1  # the retry found the message sent, and waited on it again
