"""The "View in Doto" extra link: right URL for the rendered conversation, on every operator that
touches a conversation, registered with Airflow. (The link Airflow stores for a real task run is
checked in tests/integration/test_deferrable_and_watcher.py.)"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pendulum
import pytest
from airflow.sdk import DAG, BaseOperator
from dagrun import load_dag, task_instances, xcom

try:
    from airflow.sdk.types import TaskInstanceKey
except ImportError:  # Airflow 3.1: not in the SDK yet
    from airflow.models.taskinstancekey import TaskInstanceKey

from airflow_provider_doto.get_provider_info import get_provider_info
from airflow_provider_doto.links.doto import DotoConversationLink
from airflow_provider_doto.operators.doto import (
    DeleteMessageOperator,
    ListMessagesOperator,
    SendMessageOperator,
)
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.testing.emulator import DotoEmulator

KEY = TaskInstanceKey(dag_id="d", task_id="t", run_id="manual__1", try_number=1, map_index=-1)


def operator_classes() -> list[type[BaseOperator]]:
    """Every public operator/sensor class in the modules the provider declares."""
    info = get_provider_info()
    modules = [
        m for kind in ("operators", "sensors") for entry in info[kind] for m in entry["python-modules"]
    ]
    found = []
    for name in modules:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseOperator) and cls.__module__ == name and not cls.__name__.startswith("_"):
                found.append(cls)
    return found


def test_every_operator_that_touches_a_conversation_has_the_link() -> None:
    classes = operator_classes()
    touching = [c for c in classes if "conversation_id" in inspect.signature(c.__init__).parameters]
    assert set(touching) >= {
        SendMessageOperator,
        DeleteMessageOperator,
        ListMessagesOperator,
        NewMessageSensor,
    }
    for cls in touching:
        assert any(isinstance(link, DotoConversationLink) for link in cls.operator_extra_links), cls


def test_link_is_registered_with_airflow() -> None:
    from airflow.providers_manager import ProvidersManager

    path = "airflow_provider_doto.links.doto.DotoConversationLink"
    assert path in get_provider_info()["extra-links"]
    assert path in ProvidersManager().extra_links_class_names


@pytest.mark.parametrize(
    "make",
    [
        lambda: SendMessageOperator(task_id="t", conversation_id="{{ params.cid }}", content="hi"),
        lambda: NewMessageSensor(task_id="t", conversation_id="{{ params.cid }}"),
        lambda: DeleteMessageOperator(task_id="t", conversation_id="{{ params.cid }}", message_id=5),
        lambda: ListMessagesOperator(task_id="t", conversation_id="{{ params.cid }}"),
    ],
    ids=["send", "sensor", "delete", "list"],
)
def test_link_points_at_the_rendered_conversation(doto_emulator: DotoEmulator, make) -> None:
    operator = make()
    operator.render_template_fields({"params": {"cid": 314}})  # type: ignore[arg-type]
    assert operator.conversation_id == "314"
    url = DotoConversationLink().get_link(operator=operator, ti_key=KEY)
    assert url == f"{doto_emulator.base_url}/app/accounts/{doto_emulator.account_id}/conversations/314"


def test_link_uses_the_operators_own_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTO_EU",
        json.dumps(
            {
                "conn_type": "doto",
                "host": "https://doto.example.com/support/",
                "password": "secret-token",
                "extra": {"account_id": 77},
            }
        ),
    )
    operator = SendMessageOperator(task_id="t", conversation_id=42, content="hi", doto_conn_id="doto_eu")
    url = DotoConversationLink().get_link(operator=operator, ti_key=KEY)
    assert url == "https://doto.example.com/support/app/accounts/77/conversations/42"
    assert "secret-token" not in url


def test_link_is_empty_without_a_conversation(doto_emulator: DotoEmulator) -> None:
    operator = SendMessageOperator(task_id="t", conversation_id="{{ params.cid }}", content="hi")
    operator.conversation_id = ""
    assert DotoConversationLink().get_link(operator=operator, ti_key=KEY) == ""


def test_serialised_dag_keeps_the_link_for_the_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI reads links from the serialised DAG: the link must survive serialisation."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # Airflow 3.1: the same class, under its old name
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization

    # Airflow's scheduler-side code (run earlier in this process by dag.test()) switches link loading
    # off globally; the API server runs with it on.
    monkeypatch.setattr(DagSerialization, "_load_operator_extra_links", True)

    with DAG("links", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        SendMessageOperator(task_id="send", conversation_id=1, content="hi")
        NewMessageSensor(task_id="wait", conversation_id=1)
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    for task_id in ("send", "wait"):
        links = restored.get_task(task_id).operator_extra_link_dict
        assert list(links) == ["View in Doto"]
        assert links["View in Doto"].xcom_key == DotoConversationLink().xcom_key


def test_a_task_failing_before_its_conversation_is_known_logs_one_error(
    airflow_db: Path, doto_emulator: DotoEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real run whose send renders a conversation id that is not one: the task fails with that
    error alone. Airflow still computes the link when the task ends; with nothing to link it is
    empty, with no traceback of its own ("Failed to push an xcom for task operator extra link")."""
    dag = load_dag("test_dags/doto_test_bad_conversation_id.py")
    run = dag.test()
    log = "".join(capfd.readouterr())
    assert run.state == "failed"
    assert task_instances(run)[("send", -1)].state == "failed"
    assert "conversation_id must be a positive integer" in log
    assert "Failed to push an xcom" not in log
    assert log.count("Traceback (most recent call last)") <= 1, log
    assert xcom(run, "send", key=DotoConversationLink().xcom_key) == ""
    assert doto_emulator.requests == []
