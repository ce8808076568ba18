"""``SendMessageOperator(deferrable=True, wait_for="delivered")`` in a real deployment: the worker sends,
the task defers, ``DeliveryTrigger`` is rebuilt from ``serialize()`` in the triggerer process and
polls, and the integrator sets the status through the API (``PATCH .../messages/:id``, API inbox).

``dag.test()`` runs triggers inline; here the wait is in another process, reading its connection
from the metadata DB, and the task resumes in a new worker process from the trigger's event.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import wait_until

from .test_deployment import assert_run_succeeded, wait_deferred_in_triggerer

pytestmark = pytest.mark.deployment

DAG_ID = "deployment_delivery_wait"
TASK_ID = "send"
DELIVERY_TRIGGER = "airflow_provider_doto.triggers.delivery.DeliveryTrigger"
WHY = "Carrier rejected the message: number unreachable (code 4711)"


def emulator(stack: AirflowStack) -> DotoEmulator:
    assert stack.emulator is not None
    return stack.emulator


def path(emu: DotoEmulator, cid: int) -> str:
    return emu.messages_url(cid).split(emu.base_url, 1)[1]


def posts(emu: DotoEmulator, cid: int) -> int:
    return sum(1 for r in emu.requests if r.method == "POST" and r.path == path(emu, cid))


def read_backs(emu: DotoEmulator, cid: int) -> int:
    """GETs that read one message back (the worker's once before deferring, then the trigger's)."""
    return sum(
        1 for r in emu.requests if r.method == "GET" and r.path == path(emu, cid) and "before" in r.query
    )


def send_and_defer(stack: AirflowStack) -> tuple[int, str, dict[str, Any]]:
    """A run sending into a new API-inbox conversation, seen deferred and its trigger read in the
    triggerer at least once (the message still ``sent``): (conversation, run id, the message)."""
    emu = emulator(stack)
    stack.wait_for_dag(DAG_ID)
    cid = emu.add_conversation()  # the API inbox: the integrator sets statuses there
    run_id = stack.trigger_dag(DAG_ID, {"conversation_id": cid})
    wait_deferred_in_triggerer(stack, DAG_ID, run_id, TASK_ID, classpath=DELIVERY_TRIGGER)
    [message] = [m for m in emu.messages(cid) if m["message_type"] == "outgoing"]
    assert message["status"] == "sent"
    # The worker read it back once before deferring; the trigger's first read comes
    # defer_first_read_after (10 s) later. PATCH only after that, so the trigger reads "sent" first.
    worker_reads = read_backs(emu, cid)
    wait_until(lambda: read_backs(emu, cid) > worker_reads, 60, "the trigger's first read", interval=0.2)
    ti = stack.task_instance(DAG_ID, run_id, TASK_ID)
    assert ti["state"] == "deferred", ti["state"]
    return cid, run_id, message


def patch_status(stack: AirflowStack, cid: int, message_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """The integrator: ``PATCH .../messages/:id`` over HTTP with the account's token."""
    emu = emulator(stack)
    response = requests.patch(
        f"{emu.messages_url(cid)}/{message_id}",
        headers={"api_access_token": emu.token},
        json=body,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def task_log(stack: AirflowStack, run_id: str) -> str:
    assert stack.home is not None
    log = (
        stack.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={TASK_ID}" / "attempt=1.log"
    )
    return log.read_text(errors="replace") if log.exists() else ""


def test_deferred_send_succeeds_once_the_integrator_marks_it_delivered(stack: AirflowStack) -> None:
    emu = emulator(stack)
    cid, run_id, message = send_and_defer(stack)

    assert patch_status(stack, cid, message["id"], {"status": "delivered"})["status"] == "delivered"

    assert_run_succeeded(stack, DAG_ID, run_id)
    out = stack.xcom(DAG_ID, run_id, TASK_ID)
    assert (out["id"], out["status"]) == (message["id"], "delivered")
    ti = stack.task_instance(DAG_ID, run_id, TASK_ID)
    assert (ti["state"], ti["try_number"]) == ("success", 1)
    assert posts(emu, cid) == 1
    assert [m["id"] for m in emu.messages(cid)] == [message["id"]]


def test_deferred_send_fails_with_the_integrators_external_error(stack: AirflowStack) -> None:
    emu = emulator(stack)
    cid, run_id, message = send_and_defer(stack)

    patch_status(stack, cid, message["id"], {"status": "failed", "external_error": WHY})

    run = stack.wait_for_run(DAG_ID, run_id)
    ti = stack.task_instance(DAG_ID, run_id, TASK_ID)
    assert (run["state"], ti["state"], ti["try_number"]) == ("failed", "failed", 1)
    # The resumed task raised the trigger's error as its own class, with the server's reason.
    logged = wait_until(
        lambda: "DotoDeliveryError" in task_log(stack, run_id) and WHY in task_log(stack, run_id),
        60,
        "the task log to name DotoDeliveryError and the external_error",
    )
    assert logged
    assert f"marked failed by its channel: {WHY}" in task_log(stack, run_id)
    assert posts(emu, cid) == 1  # sent once, never again
    assert [m["id"] for m in emu.messages(cid)] == [message["id"]]
    assert emu.message(message["id"])["content_attributes"]["external_error"] == WHY
