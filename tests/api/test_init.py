"""The ``api`` package: one public face whose names load their modules on first use, so a DAG file
importing the operators and the sensor pays for the value checks only."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys

import pytest

from airflow_provider_doto import api

# What a DAG file imports and builds at parse time.
PARSE_TIME = """
import json, sys
import airflow.sdk
before = set(sys.modules)  # Airflow's own imports (tenacity among them) are not ours
from airflow_provider_doto.operators.doto import SendMessageOperator, ExportMessagesOperator
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator
from airflow_provider_doto.sensors.doto import NewMessageSensor
from airflow_provider_doto.notifications.doto import DotoNotifier
imported = sorted(m for m in sys.modules if m.startswith("airflow_provider_doto.api"))
SendMessageOperator(task_id="s", conversation_id=7, content="Hi {{ ds }}", private=True)
ExportMessagesOperator(task_id="e", conversation_ids=[7, 8], output_path="/tmp/x.jsonl", after=0)
BatchSendMessagesOperator(task_id="b", conversation_ids=[7, 8], content="Hi #{{ conversation_id }}")
BatchSendMessagesOperator(task_id="m", messages=[{"conversation_id": 7, "content": "hi"}])
DotoNotifier(conversation_id=7)
built = sorted(m for m in sys.modules if m.startswith("airflow_provider_doto.api"))
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("tenacity", "requests", "aiohttp"))
print(json.dumps({"imported": imported, "built": built, "heavy": heavy}))
"""


def test_a_dag_file_loads_only_the_value_checks_of_the_core():
    out = subprocess.run([sys.executable, "-c", PARSE_TIME], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    core = "airflow_provider_doto.api"
    assert loaded["imported"] == [core, f"{core}._values"]  # importing the operators and the sensor
    # Building them checks values (and a batch's items), never loading the flows, listing or watch.
    assert loaded["built"] == [core, f"{core}._batch", f"{core}._values"]
    assert loaded["heavy"] == []


QUERY_AT_PARSE = """
import json, sys
import airflow.sdk
before = set(sys.modules)
from airflow_provider_doto.operators.conversations import ListConversationsOperator
from airflow_provider_doto.operators.doto import ExportMessagesOperator
imported = sorted(m for m in sys.modules if m.startswith("airflow_provider_doto.api"))
ListConversationsOperator(task_id="l", status="all", active_since="{{ data_interval_start }}")
ExportMessagesOperator(task_id="e", conversation_query={"status": "all"}, output_path="/tmp/x.jsonl")
built = sorted(m for m in sys.modules if m.startswith("airflow_provider_doto.api"))
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in ("tenacity", "requests", "aiohttp"))
print(json.dumps({"imported": imported, "built": built, "heavy": heavy}))
"""


def test_a_query_is_checked_at_parse_without_the_flows():
    out = subprocess.run([sys.executable, "-c", QUERY_AT_PARSE], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    core = "airflow_provider_doto.api"
    assert loaded["imported"] == [core, f"{core}._values"]
    # Checking a query needs ConversationQuery (and the parsers its module holds), no flow or transport.
    assert loaded["built"] == [
        core,
        f"{core}._attachments",
        f"{core}._conversations",
        f"{core}._http",
        f"{core}._messages",
        f"{core}._values",
    ]
    assert loaded["heavy"] == []


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_name_comes_from_its_module(name):
    module = importlib.import_module(f"airflow_provider_doto.api.{api._SOURCE[name]}")
    value = getattr(api, name)
    assert value is vars(module)[name]
    if inspect.isfunction(value) or inspect.isclass(value):
        assert value.__module__ == module.__name__  # defined there, not imported from elsewhere
    assert name in dir(api)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        api.nothing_here  # noqa: B018


def test_type_checkers_see_every_public_name_where_it_is_loaded_from():
    """The imports under TYPE_CHECKING (what mypy reads), the table ``api.X`` loads from and
    ``__all__`` name the same things."""
    tree = ast.parse(inspect.getsource(api))
    (block,) = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    imported = {
        alias.name: node.module.rsplit(".", 1)[1]
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    assert imported == api._SOURCE
    assert sorted(api.__all__) == sorted(api._SOURCE)


def test_the_public_face_is_what_a_user_of_the_hooks_needs():
    """Pinned: a name joins only with a reason (docs/hooks.md lists them). The flows, parsers,
    validators and transport-error constructors stay in their modules, imported by the hooks."""
    assert api.__all__ == [
        "DEFAULT_OVERLAP",
        "DELIVERY_KEY_ATTRIBUTE",
        "FLAVORS",
        "MESSAGE_TYPES",
        "Attachment",
        "BatchItem",
        "BatchResult",
        "Conversation",
        "ConversationQuery",
        "DotoSettings",
        "Message",
        "MessageFilter",
        "MessageWatch",
        "RetryPolicy",
        "Sender",
        "ServerReading",
        "Timestamp",
        "batch_counts",
        "check_batch",
        "delivery_key",
        "to_timestamp",
    ]
