"""Helpers for tests that run real DAGs with ``dag.test()``: load a DAG file, read XComs and task
instances from the metadata DB, and drive the emulator from a background thread."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from airflow_provider_doto.testing.emulator import DotoEmulator


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def load_module(path: Path, name: str) -> ModuleType:
    """Import a DAG file as module ``name`` (a fresh module each call: a DAG file's top level runs again)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dags(relative_path: str) -> dict[str, Any]:
    """Import a DAG file from the dags folder (``example_dags/x.py`` or ``test_dags/x.py``)."""
    from airflow.sdk import DAG

    name = "dagfile_" + relative_path.replace("/", "_").removesuffix(".py")
    module = load_module(dags_folder() / relative_path, name)
    return {v.dag_id: v for v in vars(module).values() if isinstance(v, DAG)}


def load_dag(relative_path: str, dag_id: str | None = None) -> Any:
    """The DAG of a file; ``dag_id`` defaults to the file name, as for the example DAGs."""
    dags = load_dags(relative_path)
    return dags[dag_id or Path(relative_path).stem]


def xcom(dag_run: Any, task_id: str, map_index: int = -1, key: str = "return_value") -> Any:
    """A task's XCom value as stored in the metadata DB (what downstream tasks would pull)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        ).one()
        return XComModel.deserialize_value(row)


def has_xcom(dag_run: Any, task_id: str, map_index: int = -1) -> bool:
    """Whether the task stored a return value (any other error, e.g. a broken DB, is raised)."""
    from sqlalchemy.exc import NoResultFound

    try:
        xcom(dag_run, task_id, map_index)
    except NoResultFound:
        return False
    return True


def task_instances(dag_run: Any) -> dict[tuple[str, int], Any]:
    """``{(task_id, map_index): TaskInstance}`` of a finished run, fresh from the DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        session.expunge_all()
        return {(ti.task_id, ti.map_index): ti for ti in tis}


def clear_and_rerun(dag: Any, dag_run: Any, task_ids: list[str]) -> Any:
    """Clear tasks of a finished run with Airflow's own Clear, then run them again in that same run.

    The clear is the serialized DAG's ``clear()``, what the UI's and the REST API's "Clear" call (the
    task instances reset, the run back to queued). ``dag.test()`` cannot re-run them: it replaces an
    existing run of the same logical date with a new one. So the scheduler's part is done here: the
    run is started again and its schedulable tasks run in-process through the same function
    ``dag.test()`` runs them with, each new try with the try number raised, as the scheduler does.
    Returns the run, refreshed.
    """
    import inspect

    from airflow.models.dagrun import DagRun
    from airflow.serialization import serialized_objects

    # Airflow 3.2+ names it DagSerialization; 3.1 SerializedDAG (as its dag.test() does).
    serialization = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    run_task = inspect.getmodule(type(dag).test)._run_task  # type: ignore[union-attr]
    scheduler_dag = serialization.deserialize_dag(serialization.serialize_dag(dag))
    scheduler_dag.clear(task_ids=task_ids, run_id=dag_run.run_id)
    with create_session() as session:
        dr = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
        ).one()
        assert dr.state == DagRunState.QUEUED, f"a cleared run is queued, not {dr.state}"
        dr.dag = scheduler_dag
        dr.set_state(DagRunState.RUNNING)
        session.commit()
        deadline = time.monotonic() + 120
        while dr.state == DagRunState.RUNNING:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cleared run {dr.run_id} did not finish")
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                    ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in dr.get_task_instances(session=session):
                if ti.state == TaskInstanceState.SCHEDULED:
                    with contextlib.suppress(Exception):  # as in dag.test(): the run's state tells
                        run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    with create_session() as session:
        dr = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
        ).one()
        session.expunge_all()
        return dr


def polls(emulator: DotoEmulator, conversation_id: int) -> int:
    """How many polls of a conversation the emulator has served, counted by the request that ends each.

    A poll ends with its listing from the cursor (``after`` alone; on Chatwoot it may start with a
    ``before_timestamp`` lookup of the window's first id). With the connection on ``auto`` a poll
    of a still empty conversation is one request without parameters; a poll that finds the server's
    flavor starts with that request and the probe (``after`` and ``before``), then lists.
    """
    suffix = f"/conversations/{conversation_id}/messages"
    queries = [set(r.query) for r in emulator.requests if r.method == "GET" and r.path.endswith(suffix)]
    probe = {"after", "before"}
    return sum(
        1
        for i, query in enumerate(queries)
        if query == {"after"} or (not query and queries[i + 1 : i + 2] != [probe])
    )


class Background:
    """Run ``target`` in a thread while a DAG runs; ``join()`` re-raises its exception."""

    def __init__(self, target: Callable[[], None]) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), daemon=True)

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as err:
            self._error = err

    def __enter__(self) -> Background:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()

    def join(self) -> None:
        self._thread.join(timeout=120)
        if self._error is not None:
            raise self._error
