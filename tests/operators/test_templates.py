"""Message templates on SendMessageOperator, BatchSendMessagesOperator and DotoNotifier.

Construction checks the static parts (DAG parse); real DAGs from ``tests/dags`` run with
``dag.test()`` against the emulator over HTTP, both flavors.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from dagrun import load_dag, task_instances, xcom

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.notifications.doto import DotoNotifier
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator

pytestmark = pytest.mark.integration

TEMPLATE: dict[str, Any] = {
    "name": "follow_up",
    "category": "UTILITY",
    "language": "en_US",
    "processed_params": {"body": {"1": "Maria"}},
}
FILE = "test_dags/doto_test_send_templates.py"


def posts(emu: Any) -> list[Any]:
    return [r for r in emu.requests if r.method == "POST"]


def whatsapp(emu: Any, *, open_window: bool, inbox: int | None = None) -> int:
    if inbox is None:
        inbox = emu.add_inbox("whatsapp")
        emu.add_template(inbox, "follow_up", "en_US")
    cid = emu.add_conversation(inbox_id=inbox)
    if open_window:
        emu.add_message(cid, "Where is my order?")
    return cid


def templated(emu: Any, cid: int) -> dict[str, Any] | None:
    """The template_params the conversation's last message was sent with, if any."""
    attributes = emu.messages(cid)[-1].get("additional_attributes") or {}
    return attributes.get("template_params")


# ---- construction-time validation -----------------------------------------------------------

SEND = {"task_id": "s", "conversation_id": 7, "content": "Hi"}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: SendMessageOperator(**SEND, template=t), r"template\.category must be one of"),
        (lambda t: SendMessageOperator(**SEND, fallback_template=t), r"fallback_template\.category"),
        (
            lambda t: BatchSendMessagesOperator(task_id="b", conversation_ids=[7], content="x", template=t),
            "category",
        ),
        (lambda t: DotoNotifier(conversation_id=7, private=False, fallback_template=t), "category"),
    ],
)
def test_a_static_mistake_fails_when_the_task_is_built(make: Any, match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        make({**TEMPLATE, "category": "PROMO"})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"template": TEMPLATE, "fallback_template": TEMPLATE}, "not both"),
        ({"template": TEMPLATE, "private": True}, "public outgoing"),
        ({"fallback_template": "follow_up"}, r"fallback_template is not a template's dict"),
        ({"fallback_template": [TEMPLATE]}, r"fallback_template must be a dict, got list"),
        ({"template": {**TEMPLATE, "nmae": "{{ params.x }}"}}, r"unknown key\(s\) 'nmae'"),
    ],
)
def test_where_and_what_a_template_may_be(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(DotoConfigError, match=match):
        SendMessageOperator(**SEND, **kwargs)


def test_templated_parts_wait_for_rendering() -> None:
    leaf = copy.deepcopy(TEMPLATE)
    leaf["category"] = "{{ params.category }}"
    leaf["processed_params"]["body"]["1"] = "{{ params.name }}"
    SendMessageOperator(**SEND, fallback_template=leaf)
    SendMessageOperator(**SEND, template="{{ params.template }}")
    BatchSendMessagesOperator(task_id="b", conversation_ids=[7], content="x", fallback_template=leaf)
    DotoNotifier(conversation_id=7, private=False, template="{{ params.template }}")
    with pytest.raises(DotoConfigError, match="public outgoing"):
        DotoNotifier(conversation_id=7, template=TEMPLATE)  # the notifier's default is a private note


# ---- real DAG runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("open_window", [True, False], ids=["open", "closed"])
def test_the_fallback_is_sent_only_when_the_window_is_closed(
    airflow_db: Path, doto_emulator: Any, open_window: bool
) -> None:
    cid = whatsapp(doto_emulator, open_window=open_window)
    dag = load_dag(FILE, "doto_test_send_fallback")

    dr = dag.test(run_conf={"conversation_id": cid, "name": "Ana"})

    assert dr.state == "success"
    (post,) = posts(doto_emulator)
    sent = xcom(dr, "send")
    assert sent["content"] == "Hi Ana, any news on your order?"
    if open_window:
        assert templated(doto_emulator, cid) is None and "template_params" not in post.json
    else:
        expected = {**TEMPLATE, "processed_params": {"body": {"1": "Ana"}}}  # rendered from the params
        assert post.json["template_params"] == expected == templated(doto_emulator, cid)


def test_a_retry_after_a_committed_template_send_does_not_post_twice(
    airflow_db: Path, doto_emulator: Any
) -> None:
    """The server stores the template message, then drops the connection: try 2 finds it."""
    cid = whatsapp(doto_emulator, open_window=False)
    doto_emulator.inject("drop_after", method="POST")
    dag = load_dag(FILE, "doto_test_send_fallback")

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == "success"
    assert task_instances(dr)[("send", -1)].try_number == 2
    (stored,) = [m for m in doto_emulator.messages(cid) if m["message_type"] == "outgoing"]
    assert stored["additional_attributes"]["template_params"]["name"] == "follow_up"
    assert len(posts(doto_emulator)) == 1
    assert xcom(dr, "send")["id"] == stored["id"]


def test_a_template_that_renders_wrong_fails_before_anything_is_sent(
    airflow_db: Path, doto_emulator: Any
) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    dag = load_dag(FILE, "doto_test_send_fallback")

    dr = dag.test(run_conf={"conversation_id": cid, "category": "PROMO"})

    assert dr.state == "failed"
    assert posts(doto_emulator) == []
    reads = [r for r in doto_emulator.requests if r.path.endswith(f"/conversations/{cid}")]
    assert reads == []  # refused before the window was read


@pytest.mark.parametrize(("name", "state"), [("follow_up", "success"), ("follow_up_v2", "failed")])
def test_a_template_waits_for_delivery_and_an_unknown_one_fails_the_task(
    airflow_db: Path, doto_emulator: Any, name: str, state: str
) -> None:
    doto_emulator.delivery_receipts = (0, 0)
    doto_emulator.window_failure_delay = 0
    inbox = doto_emulator.add_inbox("whatsapp")
    doto_emulator.add_template(inbox, name if state == "success" else "follow_up", "en_US")
    cid = whatsapp(doto_emulator, open_window=False, inbox=inbox)
    dag = load_dag(FILE, "doto_test_send_with_template")
    if state == "failed":
        dag.task_dict["send"].template = {**dag.task_dict["send"].template, "name": name}

    dr = dag.test(run_conf={"conversation_id": cid})

    assert dr.state == state
    (stored,) = [m for m in doto_emulator.messages(cid) if m["message_type"] == "outgoing"]
    assert stored["additional_attributes"]["template_params"]["name"] == name
    if state == "success":
        assert xcom(dr, "send")["status"] in ("delivered", "read")
    else:
        assert stored["status"] == "failed"
        assert "(#132001)" in stored["content_attributes"]["external_error"]


def test_the_batch_sends_free_text_or_the_fallback_per_conversation(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    inbox = emu.add_inbox("whatsapp")
    emu.add_template(inbox, "follow_up", "en_US")
    opened = whatsapp(emu, open_window=True, inbox=inbox)
    closed = whatsapp(emu, open_window=False, inbox=inbox)
    web = emu.add_conversation(inbox_id=2)
    dag = load_dag(FILE, "doto_test_batch_fallback")

    dr = dag.test(run_conf={"cids": [opened, closed, web], "name": "Kim"})

    assert dr.state == "success"
    output = xcom(dr, "nudge")
    assert (output["sent"], output["failed"]) == (3, 0)
    assert templated(emu, opened) is None and templated(emu, web) is None
    closed_template = templated(emu, closed)
    assert closed_template is not None and closed_template["processed_params"]["body"] == {"1": "Kim"}
    assert len(posts(emu)) == 3


def test_the_batch_sends_its_template_to_every_conversation_without_reading_a_window(
    airflow_db: Path, doto_emulator: Any
) -> None:
    emu = doto_emulator
    emu.delivery_receipts = (0, 0)
    emu.window_failure_delay = 0
    inbox = emu.add_inbox("whatsapp")
    emu.add_template(inbox, "follow_up", "en_US")
    cids = [whatsapp(emu, open_window=False, inbox=inbox), whatsapp(emu, open_window=True, inbox=inbox)]
    dag = load_dag(FILE, "doto_test_batch_template")

    dr = dag.test(run_conf={"cids": cids, "name": "Kim"})

    assert dr.state == "success"
    output = xcom(dr, "notify")
    assert (output["sent"], output["failed"]) == (2, 0)
    for cid in cids:
        sent = templated(emu, cid)
        assert sent is not None and sent["processed_params"]["body"] == {"1": "Kim"}
        assert emu.messages(cid)[-1]["status"] in ("delivered", "read")
    assert len(posts(emu)) == 2
    # A template goes whatever the window: no conversation is read for it.
    conversation_reads = [
        r for r in emu.requests if r.method == "GET" and r.path.rstrip("/").split("/")[-2] == "conversations"
    ]
    assert conversation_reads == []


def test_the_notifier_sends_its_template_whatever_the_window(doto_emulator: Any) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    notifier = DotoNotifier(
        conversation_id=cid, content="Your order has shipped.", private=False, template=TEMPLATE
    )
    notifier.notify({})
    assert templated(doto_emulator, cid) == TEMPLATE
    assert doto_emulator.messages(cid)[-1]["content"] == "Your order has shipped."


def test_the_notifier_sends_its_fallback_when_the_window_is_closed(doto_emulator: Any) -> None:
    cid = whatsapp(doto_emulator, open_window=False)
    notifier = DotoNotifier(
        conversation_id=cid, content="The report is late.", private=False, fallback_template=TEMPLATE
    )
    notifier.notify({})
    assert templated(doto_emulator, cid) == TEMPLATE
    assert api.DELIVERY_KEY_ATTRIBUTE not in doto_emulator.messages(cid)[-1]["content_attributes"]
