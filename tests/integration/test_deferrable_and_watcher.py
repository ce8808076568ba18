"""End to end in real Airflow (``dag.test()``) against the emulator over real HTTP.

* The sensor in poke, reschedule and deferrable mode, each on its own conversation fed the same
  data while it waits, returns the same messages; the deferrable one gets them through the
  trigger (the messages land only after its first, synchronous check).
* A deferred wait with nothing matching times out (no retry: a sensor timeout), and a token refused
  after deferral fails the task through the trigger's error event.
* ``example_dags/doto_new_message_watcher.py``: the asset's own watcher trigger, rebuilt from the
  trigger row Airflow registered for the asset, runs against the emulator; its event goes through
  ``Trigger.submit_event`` (the triggerer's own call, which creates the asset event) and is handed
  to a ``dag.test()`` run as its consumed asset event; the DAG posts one private note.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import importlib.util
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from airflow_versions import DAG_TEST_RESYNCS
from dagrun import load_module, polls, task_instances, xcom

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.stack.local_airflow import EXAMPLE_DAGS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GUARD = 60.0  # hang protection only
WATCHER_CONVERSATION_ID = 9417


def gets(emu: DotoEmulator, cid: int) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and f"/conversations/{cid}/" in r.path + "/")


class Feeder:
    """Adds messages to conversations once they have been polled a given number of times.

    Each conversation gets ``steps``: ``(polls_seen, action)``; the action runs once the emulator
    has answered that many polls of the conversation. Waits on events, not on a clock.
    Hang protection: if the run is still going after ``guard`` seconds, every request to those
    conversations is refused (401), which ends any wait, and ``gave_up`` is set.
    """

    def __init__(
        self,
        emu: DotoEmulator,
        plan: Mapping[int, Sequence[tuple[int, Callable[[int], object]]]],
        guard: float = GUARD,
    ) -> None:
        self.emu, self.plan = emu, {cid: list(steps) for cid, steps in plan.items()}
        self.done: dict[int, list[Any]] = {cid: [] for cid in plan}
        self.gave_up = False
        self._guard = guard
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="doto-feeder", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._guard
        while not self._stop.is_set():
            for cid, steps in self.plan.items():
                while steps and polls(self.emu, cid) >= steps[0][0]:
                    self.done[cid].append(steps.pop(0)[1](cid))
            if not self.gave_up and time.monotonic() > deadline:
                self.gave_up = True
                for cid in self.plan:
                    self.emu.inject(
                        "status", times=10_000, status=401, path_contains=f"/conversations/{cid}/"
                    )
            time.sleep(0.02)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reschedules(ti: Any) -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(select(func.count()).where(TaskReschedule.ti_id == ti.id)) or 0


def comparable(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without what differs between conversations (ids, timestamps)."""
    return [{k: v for k, v in m.items() if k not in ("id", "created_at")} for m in messages]


# ---- the sensor in its three modes -----------------------------------------------------------


def test_sensor_returns_the_same_messages_in_poke_reschedule_and_deferrable_mode(
    airflow_db: Path, doto_emulator: DotoEmulator
) -> None:
    emu = doto_emulator
    modes = ("poke", "reschedule", "deferrable")
    cids = {mode: emu.add_conversation() for mode in modes}
    for cid in cids.values():
        emu.add_message(cid, "refund from last year", created_at=int(time.time()) - 100_000)

    def first_burst(cid: int) -> list[int]:
        # A matching message committed late (shows up after two newer ones) among non-matching ones.
        ids = [emu.add_message(cid, "refund #1", late=2)["id"]]
        emu.add_message(cid, "hello, anyone there?")
        emu.add_message(cid, "refund sent", message_type="outgoing")
        emu.add_message(cid, "refund approved (internal)", message_type="outgoing", private=True)
        return ids

    def second_burst(cid: int) -> list[int]:
        return [emu.add_message(cid, "refund #2 please")["id"]]

    # Poll 1 is the sensor's first check (in deferrable mode the synchronous one, before deferring):
    # nothing matches then; the first match lands after poll 2, the second after poll 4.
    plan = {cid: [(2, first_burst), (4, second_burst)] for cid in cids.values()}
    dag = load_module(REPO / "tests/dags/deferrable_sensor_modes.py", "deferrable_sensor_modes").dag
    with Feeder(emu, plan) as feeder:
        dag_run = dag.test(run_conf=cids)
    assert not feeder.gave_up
    assert dag_run.state == "success"

    tis = task_instances(dag_run)
    results = {mode: xcom(dag_run, f"wait_{mode}") for mode in modes}
    for mode, cid in cids.items():
        expected_ids = [i for step in feeder.done[cid] for i in step]
        assert [m["id"] for m in results[mode]] == expected_ids, mode
        assert [m["content"] for m in results[mode]] == ["refund #1", "refund #2 please"]
        # Both bursts ran (each only once its poll count was reached). Not ``polls >= 5``: the
        # emulator logs a request before answering it, so a burst can land inside poll 4's answer.
        assert len(feeder.done[cid]) == 2, mode
        assert tis[f"wait_{mode}", -1].try_number == 1
        link = xcom(dag_run, f"wait_{mode}", key="_link_DotoConversationLink")
        assert link == f"{emu.base_url}/app/accounts/{emu.account_id}/conversations/{cid}"
    assert (
        comparable(results["poke"]) == comparable(results["reschedule"]) == comparable(results["deferrable"])
    )
    assert reschedules(tis["wait_reschedule", -1]) >= 2  # it really was rescheduled between pokes
    assert reschedules(tis["wait_poke", -1]) == 0


def test_deferred_sensor_times_out_and_fails_on_trigger_errors(
    airflow_db: Path, doto_emulator: DotoEmulator
) -> None:
    emu = doto_emulator
    conf = {"timeout": emu.add_conversation(), "unauthorized": emu.add_conversation()}

    def noise(cid: int) -> None:
        emu.add_message(cid, "refund", message_type="outgoing")  # wrong type
        emu.add_message(cid, "refund?", message_type="outgoing", private=True)  # private note
        emu.add_message(cid, "just saying hi")  # no keyword

    def refuse_token(cid: int) -> None:
        emu.inject("status", times=1, status=401, path_contains=f"/conversations/{cid}/")

    plan = {conf["timeout"]: [(1, noise)], conf["unauthorized"]: [(1, refuse_token)]}
    dag = load_module(REPO / "tests/dags/deferrable_sensor_modes.py", "deferrable_sensor_failures")
    with Feeder(emu, plan) as feeder:
        dag_run = dag.failures_dag.test(run_conf=conf)
    assert not feeder.gave_up
    assert dag_run.state == "failed"
    tis = task_instances(dag_run)

    timed_out = tis["wait_timeout", -1]
    assert timed_out.state == "failed"
    assert timed_out.try_number == 1  # a sensor timeout is final: retries=1 was not used
    assert gets(emu, conf["timeout"]) >= 3  # the trigger kept polling after the first check

    assert tis["wait_timeout_soft", -1].state == "skipped"

    refused = tis["wait_unauthorized", -1]
    assert refused.state == "failed"
    # First check, then the trigger's 401: no more polls. (On Chatwoot, once auto has found the
    # flavor through the other conversation, the first check also looks up the window's first id.)
    assert gets(emu, conf["unauthorized"]) in ({2, 3} if emu.flavor == "chatwoot" else {2})
    assert not emu.faults  # the 401 was spent by the trigger


# ---- event-driven: the example watcher DAG ---------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.data.get(key, default))

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = copy.deepcopy(value)


@pytest.fixture
def watcher_module(doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    # A conversation (so an asset) of its own: other tests' dag.test() runs parse this DAG with the
    # default settings, and Airflow 3.3.2 drops an asset's watcher for one parse when its trigger
    # kwargs change (the new AssetWatcherModel has no .trigger yet when old references are pruned).
    cid = doto_emulator.add_conversation(conversation_id=WATCHER_CONVERSATION_ID)
    monkeypatch.setenv("DOTO_WATCH_CONVERSATION_ID", str(cid))
    monkeypatch.setenv("DOTO_WATCH_POLL_INTERVAL", "0.1")
    # Airflow registers a watcher's trigger only for an unpaused DAG.
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False")
    yield load_module(EXAMPLE_DAGS / "doto_new_message_watcher.py", "doto_new_message_watcher")


def sync_dags_folder() -> None:
    """What dag.test() does on its first run of a DAG (Airflow 3.1, 3.2): parse and sync every bundle."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:
        from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import sync_bag_to_db

        try:
            from airflow.models.dagbag import BundleDagBag
        except ImportError:  # Airflow 3.1.5: DagBag does what BundleDagBag does from 3.1.8 on
            from airflow.models.dagbag import DagBag as BundleDagBag
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        try:
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        except TypeError:  # Airflow 3.1: no bundle_name
            bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def run_registered_watcher(emu: DotoEmulator, trigger_row: Any, cid: int) -> tuple[Any, list[dict[str, Any]]]:
    """Inflate the trigger Airflow registered (as the triggerer does) and run it to its first event."""
    try:
        from airflow.serialization.decoders import smart_decode_trigger_kwargs
    except ImportError:  # Airflow 3.1
        from airflow.serialization.serialized_objects import smart_decode_trigger_kwargs

    module, _, name = trigger_row.classpath.rpartition(".")
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in trigger_row.kwargs.items()}
    trigger = getattr(importlib.import_module(module), name)(**kwargs)
    trigger.trigger_id = trigger_row.id
    trigger.task_instance = None
    trigger.asset_state_store = MemoryStore()

    async def first_event() -> tuple[Any, list[dict[str, Any]]]:
        gen = trigger.run()
        pending = asyncio.ensure_future(anext(gen))
        while gets(emu, cid) < 1:
            await asyncio.sleep(0.01)
        sent = [
            emu.add_message(cid, "Where is my order #1234?", late=1),
            emu.add_message(cid, "noted", message_type="outgoing", private=True),  # not counted
        ]
        event = await pending
        await gen.aclose()
        return event, [sent[0]]

    return asyncio.run(asyncio.wait_for(first_event(), GUARD))


def test_watcher_dag_runs_on_the_asset_event_and_posts_one_note(
    airflow_db: Path, doto_emulator: DotoEmulator, watcher_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow.models.dagrun as dagrun_module
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.trigger import Trigger
    from sqlalchemy import select

    emu = doto_emulator
    asset = watcher_module.incoming_messages
    cid = int(asset.uri.split("/")[3])
    dag = watcher_module.dag
    unpause(dag.dag_id)  # in case an earlier test's parse created the DAG paused
    seen: dict[str, Any] = {}
    real_get_or_create_dagrun = dagrun_module.get_or_create_dagrun

    def with_asset_event(**kwargs: Any) -> Any:
        """dag.test() has synced the DAG (and its watcher) by now: fire the watcher, consume its event."""
        dag_run = real_get_or_create_dagrun(**kwargs)
        session = kwargs["session"]
        session.expire_all()  # the sync wrote the asset's trigger through another session
        asset_model = session.scalar(select(AssetModel).where(AssetModel.name == asset.name))
        assert asset_model is not None
        assert [t.classpath for t in asset_model.triggers] == [
            "airflow_provider_doto.triggers.doto.NewMessageTrigger"
        ]
        trigger_row = asset_model.triggers[0]
        event, sent = run_registered_watcher(emu, trigger_row, cid)
        Trigger.submit_event(trigger_row.id, event, session=session)
        asset_event = session.scalars(
            select(AssetEvent).where(AssetEvent.asset_id == asset_model.id).order_by(AssetEvent.id.desc())
        ).first()
        dag_run.consumed_asset_events.append(asset_event)
        session.commit()
        seen.update(event=event, sent=sent, extra=asset_event.extra)
        return dag_run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", with_asset_event)
    if not DAG_TEST_RESYNCS:
        # Before 3.3 dag.test() syncs a DAG (and so registers its watcher) only if it has no version
        # yet; an earlier test's run may have synced it without the watcher.
        sync_dags_folder()
    dag_run = dag.test()
    assert dag_run.state == "success"

    # The shape Airflow gives a watcher's asset event, and what the task read from it.
    event, sent = seen["event"], seen["sent"]
    assert seen["extra"] == {"from_trigger": True, "payload": event.payload}
    assert event.payload["status"] == "success" and event.payload["conversation_id"] == cid
    assert [m["id"] for m in event.payload["messages"]] == [m["id"] for m in sent]
    summary = xcom(dag_run, "read_messages")
    assert summary["message_ids"] == [m["id"] for m in sent]

    notes = [m for m in emu.messages(cid) if m["private"] and m["content"].startswith("1 new message")]
    assert len(notes) == 1
    assert f"#{sent[0]['id']}: Where is my order #1234?" in notes[0]["content"]
    assert notes[0]["message_type"] == "outgoing"


def test_watcher_dag_fails_on_an_error_event(watcher_module: ModuleType) -> None:
    """A watcher's error event (bad token, missing conversation) makes the run fail with that error:
    the class the trigger met (what a poking sensor raises), its text and its status."""
    from airflow_provider_doto.exceptions import DotoAuthError

    payload = {
        "status": "error",
        "error_type": "DotoAuthError",
        "error": "DotoAuthError: HTTP 401",
        "error_fields": {"status": 401},
    }
    with pytest.raises(DotoAuthError, match=r"^HTTP 401$") as raised:
        watcher_module.summarise([payload])
    assert raised.value.status == 401


def test_watcher_dag_counts_a_redelivered_message_once(watcher_module: ModuleType) -> None:
    """A batch announced again after a triggerer restart can trigger the same run twice: one note line."""

    def message(mid: int) -> dict:
        return {"id": mid, "content": f"message {mid}"}

    first = {"status": "success", "conversation_id": 7, "messages": [message(1), message(2)]}
    again = {**first, "redelivered": True}
    newer = {"status": "success", "conversation_id": 7, "messages": [message(3)], "redelivered": False}
    summary = watcher_module.summarise([first, again, newer])
    assert summary["message_ids"] == [1, 2, 3]
    assert summary["note"].startswith("3 new message(s)")


def test_watcher_dag_parses_to_a_stable_trigger(watcher_module: ModuleType) -> None:
    """Every parse yields the same trigger kwargs, so Airflow keeps a single trigger for the asset."""
    from airflow.triggers.base import BaseEventTrigger

    again = load_module(EXAMPLE_DAGS / "doto_new_message_watcher.py", "doto_new_message_watcher_2")
    hashes = {
        BaseEventTrigger.hash(*module.incoming_messages.watchers[0].trigger.serialize())
        for module in (watcher_module, again)
    }
    assert len(hashes) == 1
    assert list(watcher_module.dag.timetable.asset_condition.objects) == [watcher_module.incoming_messages]
