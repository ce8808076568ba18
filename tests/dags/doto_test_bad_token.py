"""Test DAGs for tests/integration/test_error_story.py: a connection's token that is wrong.

* ``doto_test_pasted_token``: the connection ``doto_pasted`` holds a token with a trailing newline;
  a send through the sync hook and a batch through the async hook both fail at settings.
* ``doto_test_refused_token``: a refused token ends a sensor in each mode. ``doto_wrong`` holds a
  wrong token from the start (poke, reschedule); ``doto_revoked`` is right for the deferrable
  sensor's first check in the worker and wrong by the time its trigger polls (the test changes it
  meanwhile), so the refusal reaches the task through the trigger's error event.

Each failed task's exception object is kept in ``RAISED`` (task id to exception) as it leaves
``execute`` or ``execute_complete``: ``dag.test()`` runs tasks in this process. (Not by a failure
callback: Airflow 3.1 and 3.2 run it without the exception in its context.)
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.operators.doto import SendMessageOperator
from airflow_provider_doto.sensors.doto import NewMessageSensor

RAISED: dict[str, BaseException | None] = {}


def _keeping(cls: type[Any]) -> type[Any]:
    """``cls``, keeping the exception its task raises in ``RAISED``."""

    class Keeping(cls):  # type: ignore[misc, valid-type]
        def execute(self, context: Any) -> Any:
            try:
                return super().execute(context)
            except Exception as err:
                RAISED[self.task_id] = err
                raise

        def execute_complete(self, context: Any, event: Any = None) -> Any:
            try:
                return super().execute_complete(context, event)
            except Exception as err:
                RAISED[self.task_id] = err
                raise

    Keeping.__name__ = cls.__name__
    return Keeping


SendMessageOperator = _keeping(SendMessageOperator)
BatchSendMessagesOperator = _keeping(BatchSendMessagesOperator)
NewMessageSensor = _keeping(NewMessageSensor)


with DAG(
    dag_id="doto_test_pasted_token",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"conversation_id": Param(type="integer")},
) as pasted_dag:
    SendMessageOperator(
        task_id="send_sync",
        conversation_id="{{ params.conversation_id }}",
        content="hello",
        doto_conn_id="doto_pasted",
    )
    BatchSendMessagesOperator(
        task_id="send_async",
        conversation_ids="{{ params.conversation_id }}",
        content="hello",
        doto_conn_id="doto_pasted",
    )

with DAG(
    dag_id="doto_test_refused_token",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"conversation_id": Param(type="integer"), "deferred_conversation_id": Param(type="integer")},
) as refused_dag:
    for mode in ("poke", "reschedule"):
        NewMessageSensor(
            task_id=f"wait_{mode}",
            conversation_id="{{ params.conversation_id }}",
            mode=mode,
            poke_interval=0.2,
            timeout=60,
            doto_conn_id="doto_wrong",
        )
    NewMessageSensor(
        task_id="wait_deferrable",
        conversation_id="{{ params.deferred_conversation_id }}",
        deferrable=True,
        poke_interval=0.2,
        timeout=60,
        doto_conn_id="doto_revoked",
    )
