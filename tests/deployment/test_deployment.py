"""The provider in a real Airflow deployment: DAGs parsed by the dag-processor, run by the scheduler's
LocalExecutor, deferred into a separate triggerer process, triggered through the REST API, with the
``doto_default`` connection in the metadata DB and the Doto emulator on loopback.

``dag.test()`` cannot show these: it runs triggers inline without ``serialize()``, never restarts a
triggerer, and reads connections from the environment. Tests run in file order and share one stack;
the log check is last so it sees every other test's logs.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.testing.stack import AirflowStack
from airflow_provider_doto.testing.stack.local_airflow import wait_until

from .conftest import ESCALATION_INBOX_ID, TOKEN

pytestmark = pytest.mark.deployment

ESCALATION = "doto_escalation"
SENSOR = "wait_for_message"
WATCHER = "doto_new_message_watcher"
ACCOUNT_WATCHER = "doto_escalation_watcher"
TRIGGER_CLASSPATH = "airflow_provider_doto.triggers.doto.NewMessageTrigger"


def trigger_logs(stack: AirflowStack, dag_id: str, run_id: str, task_id: str) -> dict[int, Path]:
    """Trigger log files of a task, by triggerer job id (``attempt=N.log.trigger.<job id>.log``)."""
    assert stack.home is not None
    folder = stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return {int(p.name.rsplit(".", 2)[-2]): p for p in folder.glob("attempt=*.log.trigger.*.log")}


def wait_deferred_in_triggerer(
    stack: AirflowStack, dag_id: str, run_id: str, task_id: str, classpath: str = TRIGGER_CLASSPATH
) -> int:
    """Wait until the task is deferred and a triggerer runs its trigger (of ``classpath``); return
    that triggerer's job id."""

    def deferred() -> dict[str, Any] | None:
        stack.check_alive()
        ti = stack.task_instance(dag_id, run_id, task_id)
        if ti["state"] in ("success", "failed", "upstream_failed", "skipped"):
            pytest.fail(f"{task_id} ended {ti['state']} before it was seen deferred: {ti}")
        if ti["state"] == "deferred" and ti["trigger"] and ti["triggerer_job"]:
            return ti
        return None

    ti = wait_until(deferred, 120, f"{task_id} to be deferred and picked up by a triggerer", interval=0.3)
    assert ti["trigger"]["classpath"] == classpath
    job_id = int(ti["triggerer_job"]["id"])
    assert ti["triggerer_job"]["job_type"] == "TriggererJob"
    # The triggerer rebuilt the trigger from serialize() and started it: it writes this log.
    wait_until(
        lambda: trigger_logs(stack, dag_id, run_id, task_id).get(job_id),
        60,
        f"the trigger log of triggerer job {job_id}",
    )
    return job_id


def messages(stack: AirflowStack, cid: int) -> list[dict[str, Any]]:
    assert stack.emulator is not None
    return stack.emulator.messages(cid)


def public_outgoing(stack: AirflowStack, cid: int) -> list[dict[str, Any]]:
    return [m for m in messages(stack, cid) if m["message_type"] == "outgoing" and not m["private"]]


def private_notes(stack: AirflowStack, cid: int) -> list[dict[str, Any]]:
    return [m for m in messages(stack, cid) if m["private"]]


def watch_state(stack: AirflowStack) -> dict[str, Any] | None:
    """The watcher's cursor as the triggerer saved it in the asset state store (REST API, 3.3+)."""
    cid = stack.conversation_id
    [asset] = stack.api("GET", f"/assets?name_pattern=doto_conversation_{cid}_incoming")["assets"]
    entries = stack.api("GET", f"/assets/{asset['id']}/state-store")["asset_state_store"]
    return next((e["value"] for e in entries if e["key"].startswith("doto_watch:")), None)


def settled_watch(stack: AirflowStack) -> dict[str, Any] | None:
    """The stored cursor once no batch is pending (every announced event surely stored)."""
    stack.check_alive()
    state = watch_state(stack)
    return state if state is not None and not state.get("pending") else None


def assert_run_succeeded(stack: AirflowStack, dag_id: str, run_id: str, timeout: float = 180) -> None:
    run = stack.wait_for_run(dag_id, run_id, timeout)
    if run["state"] != "success":
        tis = [(t["task_id"], t["state"], t["try_number"]) for t in stack.task_instances(dag_id, run_id)]
        pytest.fail(f"{dag_id} run {run_id} ended {run['state']}: {tis}")


def escalation_run(stack: AirflowStack, pattern: str) -> tuple[int, str]:
    """A new conversation and a run of the escalation DAG waiting in it for ``pattern``."""
    assert stack.emulator is not None
    stack.wait_for_dag(ESCALATION)
    cid = stack.emulator.add_conversation()
    conf = {"conversation_id": cid, "pattern": pattern, "poke_interval": 1}
    return cid, stack.trigger_dag(ESCALATION, conf)


def test_escalation_defers_into_the_triggerer_and_replies_once(stack: AirflowStack) -> None:
    assert stack.emulator is not None
    cid, run_id = escalation_run(stack, "(?i)refund")

    wait_deferred_in_triggerer(stack, ESCALATION, run_id, SENSOR)
    stack.emulator.add_message(cid, "Nothing to see here", message_type="incoming")  # does not match
    message = stack.emulator.add_message(cid, "I would like a refund, please", message_type="incoming")

    assert_run_succeeded(stack, ESCALATION, run_id)
    assert [m["id"] for m in stack.xcom(ESCALATION, run_id, SENSOR)] == [message["id"]]
    replies = public_outgoing(stack, cid)
    assert len(replies) == 1, replies
    notes = private_notes(stack, cid)
    assert len(notes) == 1, notes  # the team note; no failure note
    assert "I would like a refund, please" in notes[0]["content"]


def test_asset_watcher_runs_the_dag_on_a_new_message(stack: AirflowStack) -> None:
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(WATCHER)
    cid = stack.conversation_id  # the stack points DOTO_WATCH_CONVERSATION_ID at its seeded conversation
    path = emulator.messages_url(cid).split(emulator.base_url, 1)[1]

    # The watcher's trigger starts from "now" on its first poll: wait until it polls in the triggerer.
    wait_until(
        lambda: any(r.method == "GET" and r.path == path for r in emulator.requests),
        120,
        "the asset watcher's trigger to poll the conversation",
    )
    assert stack.dag_runs(WATCHER) == []  # nothing happened before a customer wrote
    message = emulator.add_message(cid, "Where is my parcel?", message_type="incoming")

    # A run appears by itself. (Poll the runs, not /assets/events: Airflow 3.3.2 answers that with
    # a 500 while an asset-triggered run is still queued, its start_date being null.)
    runs = wait_until(lambda: stack.dag_runs(WATCHER), 120, "a run of the asset-watcher DAG", interval=0.5)
    [run] = runs
    assert run["run_type"] == "asset_triggered"
    assert_run_succeeded(stack, WATCHER, run["dag_run_id"])
    [event] = stack.api("GET", f"/dags/{WATCHER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")[
        "asset_events"
    ]
    assert event["uri"] == f"doto://conversations/{cid}/incoming"
    assert event["extra"]["from_trigger"] is True
    assert [m["id"] for m in event["extra"]["payload"]["messages"]] == [message["id"]]
    summaries = [m for m in private_notes(stack, cid) if f"#{message['id']}" in (m["content"] or "")]
    assert len(summaries) == 1, summaries


def test_failing_task_notifier_posts_its_note_once(stack: AirflowStack) -> None:
    assert stack.emulator is not None
    stack.wait_for_dag("deployment_failing_task")
    cid = stack.emulator.add_conversation()
    run_id = stack.trigger_dag("deployment_failing_task", {"conversation_id": cid})

    run = stack.wait_for_run("deployment_failing_task", run_id)
    assert run["state"] == "failed"
    expected = f"Task always_fails failed in run {run_id}."
    # The callback runs in the task's process as the task fails; the run state may be set first.
    wait_until(lambda: private_notes(stack, cid), 60, "the notifier's private note")
    ti = stack.task_instance("deployment_failing_task", run_id, "always_fails")
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    assert [m["content"] for m in private_notes(stack, cid)] == [expected]
    assert public_outgoing(stack, cid) == []


def test_sensor_survives_a_triggerer_restart(stack: AirflowStack) -> None:
    assert stack.emulator is not None
    cid, run_id = escalation_run(stack, "(?i)cancel")
    first_job = wait_deferred_in_triggerer(stack, ESCALATION, run_id, SENSOR)

    stack.kill_component("triggerer", signal.SIGKILL)  # a crash: no graceful hand-over
    stack.emulator.add_message(cid, "hello?", message_type="incoming")
    message = stack.emulator.add_message(cid, "Please cancel my order", message_type="incoming")
    stack.start_component("triggerer")

    assert_run_succeeded(stack, ESCALATION, run_id, timeout=240)
    jobs = set(trigger_logs(stack, ESCALATION, run_id, SENSOR))
    assert first_job in jobs and len(jobs) >= 2, jobs  # the trigger ran again in the new triggerer
    returned = [m["id"] for m in stack.xcom(ESCALATION, run_id, SENSOR)]
    assert returned == [message["id"]]  # not lost, not twice
    assert len(public_outgoing(stack, cid)) == 1
    stack.wait_healthy()


def test_watcher_cursor_survives_a_triggerer_restart(stack: AirflowStack) -> None:
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(WATCHER)
    cid = stack.conversation_id
    path = emulator.messages_url(cid).split(emulator.base_url, 1)[1]

    def polls() -> int:
        return sum(1 for r in emulator.requests if r.method == "GET" and r.path == path)

    def runs_settled() -> tuple[list[dict[str, Any]]] | None:
        stack.check_alive()
        runs = stack.dag_runs(WATCHER)  # a tuple around it: no runs yet is a settled answer too
        return (runs,) if all(r["state"] in ("success", "failed") for r in runs) else None

    # The trigger saves its cursor after each poll (after yielding the poll's event, if any), before
    # it sleeps: once it has polled twice more with no run in progress, the stored cursor is current.
    [before] = wait_until(runs_settled, 180, "earlier runs of the asset-watcher DAG to finish", interval=0.5)
    seen = polls()
    wait_until(lambda: polls() >= seen + 2, 120, "the asset watcher to poll the conversation twice")
    # A batch stays pending in the stored cursor until its event has surely been stored (~10 s).
    wait_until(lambda: settled_watch(stack), 120, "the stored cursor to hold no pending batch", interval=0.5)
    assert len(stack.dag_runs(WATCHER)) == len(before)  # no new message, no new run

    stack.kill_component("triggerer", signal.SIGKILL)  # a crash: the cursor is only in the store
    message = emulator.add_message(cid, "Are you still there?", message_type="incoming")
    down = polls()
    stack.start_component("triggerer")

    # Once the dead triggerer's heartbeat is stale, the new one runs the watcher from its stored
    # cursor: the message that came while none ran becomes one asset event (from "now" it would be lost).
    known = {r["dag_run_id"] for r in before}

    def new_runs() -> list[dict[str, Any]]:
        stack.check_alive()
        return [r for r in stack.dag_runs(WATCHER) if r["dag_run_id"] not in known]

    [run] = wait_until(new_runs, 180, "a run of the asset-watcher DAG after the restart", interval=0.5)
    assert polls() > down  # the new triggerer polled (nothing polled while none ran)
    assert run["run_type"] == "asset_triggered"
    assert_run_succeeded(stack, WATCHER, run["dag_run_id"])
    [event] = stack.api("GET", f"/dags/{WATCHER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")[
        "asset_events"
    ]
    assert event["extra"]["from_trigger"] is True
    # Only the new message: the earlier ones are behind the stored cursor and not reported again.
    assert [m["id"] for m in event["extra"]["payload"]["messages"]] == [message["id"]]

    # Nothing more comes: a few more polls by the new triggerer add no run.
    seen = polls()
    wait_until(lambda: polls() >= seen + 3, 120, "the restarted watcher to poll three more times")
    [after] = wait_until(runs_settled, 180, "the asset-watcher runs to finish", interval=0.5)
    assert [r["dag_run_id"] for r in after if r["dag_run_id"] not in known] == [run["dag_run_id"]]
    stack.wait_healthy()


def test_watcher_killed_with_a_batch_in_flight_announces_it_again(stack: AirflowStack) -> None:
    """SIGKILL right after a poll found a message (its batch saved as pending; the event perhaps not
    stored yet): after the restart the message is in an asset event, never lost; a second event for
    it, if any, is marked ``redelivered`` and carries the same ids."""
    emulator = stack.emulator
    assert emulator is not None
    stack.wait_for_dag(WATCHER)
    cid = stack.conversation_id
    wait_until(lambda: settled_watch(stack), 180, "the stored cursor to hold no pending batch", interval=0.5)
    known = {r["dag_run_id"] for r in stack.dag_runs(WATCHER)}

    message = emulator.add_message(cid, "Hello? Anyone?", message_type="incoming")

    def in_flight() -> list[int] | None:
        stack.check_alive()
        state = watch_state(stack) or {}
        pending = [m["id"] for batch in state.get("pending", []) for m in batch]
        return pending or None

    assert wait_until(in_flight, 60, "the watcher to save the new message as pending", interval=0.05) == [
        message["id"]
    ]
    stack.kill_component("triggerer", signal.SIGKILL)  # the batch is in flight: saved, perhaps not stored
    stack.start_component("triggerer")

    def events_for_message() -> list[dict[str, Any]] | None:
        stack.check_alive()
        runs = [r for r in stack.dag_runs(WATCHER) if r["dag_run_id"] not in known]
        if not runs or not settled_watch(stack):
            return None
        found = [
            e
            for r in runs
            for e in stack.api("GET", f"/dags/{WATCHER}/dagRuns/{r['dag_run_id']}/upstreamAssetEvents")[
                "asset_events"
            ]
        ]
        return (
            found
            if any(message["id"] in [m["id"] for m in e["extra"]["payload"]["messages"]] for e in found)
            else None
        )

    events = wait_until(
        events_for_message, 240, "the message in an asset event after the restart", interval=1
    )
    payloads = [e["extra"]["payload"] for e in events]
    assert all([m["id"] for m in p["messages"]] == [message["id"]] for p in payloads), payloads
    assert 1 <= len(payloads) <= 2  # not lost; at most the one batch in flight announced twice
    assert [p.get("redelivered", False) for p in payloads].count(False) <= 1
    print(f"asset events for the in-flight message after the kill: {len(payloads)}")
    stack.wait_healthy()


def test_account_watcher_escalates_where_the_message_came_from_across_a_triggerer_kill(
    stack: AirflowStack,
) -> None:
    """``doto_escalation_watcher``: one AssetWatcher on the account (here one inbox of it). A matching
    customer message in one of several conversations runs the DAG, which answers in that conversation
    only; with the triggerer killed, a message written meanwhile still runs it after the restart.
    Each message gets one note and one acknowledgement, even if its batch is announced twice."""
    emulator = stack.emulator
    assert emulator is not None
    emulator.add_inbox("api", "Escalations", inbox_id=ESCALATION_INBOX_ID)
    cids = [emulator.add_conversation(inbox_id=ESCALATION_INBOX_ID) for _ in range(6)]
    for cid in cids:
        emulator.add_message(cid, "Hello, a question about my order")
    stack.wait_for_dag(ACCOUNT_WATCHER)

    def lists() -> int:
        return sum(
            1
            for r in emulator.requests
            if r.method == "GET" and r.path.endswith("/conversations") and "updated_within" in r.query
        )

    def runs() -> list[dict[str, Any]]:
        stack.check_alive()
        return stack.dag_runs(ACCOUNT_WATCHER)

    def escalated(count: int) -> list[dict[str, Any]] | None:
        done = [r for r in runs() if r["state"] in ("success", "failed")]
        if len(done) < count or len(done) != len(runs()):
            return None
        return done

    seen = lists()
    wait_until(lambda: lists() >= seen + 2, 120, "the account watcher to list the inbox twice")
    first = emulator.add_message(cids[2], "I want a refund for order #77")
    [run] = wait_until(lambda: escalated(1), 180, "a run of the account watcher DAG", interval=0.5)
    assert run["state"] == "success" and run["run_type"] == "asset_triggered"
    [event] = stack.api("GET", f"/dags/{ACCOUNT_WATCHER}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")[
        "asset_events"
    ]
    payload = event["extra"]["payload"]
    assert payload["conversation_id"] is None
    assert [(m["conversation_id"], m["id"]) for m in payload["messages"]] == [(cids[2], first["id"])]

    # Killed once the batch has settled: the cursor is in the asset state store only.
    wait_until(lambda: account_watch_settled(stack), 120, "the stored account cursor to settle", interval=0.5)
    stack.kill_component("triggerer", signal.SIGKILL)
    second = emulator.add_message(cids[4], "Please cancel my subscription")
    stack.start_component("triggerer")
    wait_until(lambda: escalated(2), 240, "a run for the message written while down", interval=1)
    for r in runs():
        assert r["state"] == "success", r

    for cid, message in ((cids[2], first), (cids[4], second)):
        outgoing = [m for m in messages(stack, cid) if m["message_type"] == "outgoing"]
        notes = [m for m in outgoing if m["private"] and f"message {message['id']}" in (m["content"] or "")]
        acks = [m for m in outgoing if not m["private"]]
        assert len(notes) == 1 and len(acks) == 1, outgoing
    quiet = [cid for cid in cids if cid not in (cids[2], cids[4])]
    assert not any(m["message_type"] == "outgoing" for cid in quiet for m in messages(stack, cid))
    stack.wait_healthy()


def account_watch_settled(stack: AirflowStack) -> bool:
    stack.check_alive()
    [asset] = stack.api("GET", "/assets?name_pattern=doto_account_escalations")["assets"]
    entries = stack.api("GET", f"/assets/{asset['id']}/state-store")["asset_state_store"]
    state = next((e["value"] for e in entries if e["key"].startswith("doto_watch:")), None)
    return state is not None and state.get("account") is True and not state.get("pending")


def test_no_log_contains_the_token(stack: AirflowStack) -> None:
    assert stack.emulator is not None and stack.home is not None
    assert stack.emulator.token == TOKEN
    assert any(r.authorized for r in stack.emulator.requests)  # the components did use the token
    files = stack.log_files()
    names = {p.name for p in files}
    assert {"api-server.log", "scheduler.log", "dag-processor.log", "triggerer.log"} <= names
    assert any(".log.trigger." in name for name in names)  # trigger logs
    assert any(name.startswith("attempt=") and ".trigger." not in name for name in names)  # task logs
    leaks = [str(p) for p in files if TOKEN.encode() in p.read_bytes()]
    assert leaks == []
    if stack.database == "sqlite":  # stored encrypted with the Fernet key, not in clear text
        assert TOKEN.encode() not in (stack.home / "airflow.db").read_bytes()
