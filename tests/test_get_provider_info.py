"""Provider metadata: what Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import tomllib
from pathlib import Path

import pytest
from airflow_versions import FORM_FROM_HOOK_WIDGETS

import airflow_provider_doto
from airflow_provider_doto import api
from airflow_provider_doto.get_provider_info import get_provider_info
from airflow_provider_doto.hooks.doto import DotoHook

DIST = importlib.metadata.distribution("airflow-provider-doto")


@pytest.fixture(scope="module")
def info():
    return get_provider_info()


@pytest.fixture(scope="module")
def conn_type(info):
    (entry,) = info["connection-types"]
    return entry


def import_string(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_package_name_is_the_distribution_name(info):
    assert info["package-name"] == DIST.metadata["Name"] == "airflow-provider-doto"


def test_versions(info):
    assert info["versions"][0] == airflow_provider_doto.__version__ == DIST.version


def test_entry_point_points_here():
    (entry,) = [ep for ep in DIST.entry_points if ep.group == "apache_airflow_provider"]
    assert entry.load() is get_provider_info


def test_valid_against_airflows_schema(info):
    jsonschema = pytest.importorskip("jsonschema")
    import airflow

    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    if not schema_path.exists():
        pytest.skip("this Airflow ships no provider_info.schema.json")
    jsonschema.validate(info, json.loads(schema_path.read_text()))


def test_documentation_url_is_the_projects(info):
    """Airflow links the provider's docs from here; it is pyproject's Documentation URL, one value."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert info["documentation-url"] == pyproject["project"]["urls"]["Documentation"]
    assert info["documentation-url"].startswith("https://")


def test_is_plain_data(info):
    assert json.loads(json.dumps(info)) == info


def test_connection_type(conn_type):
    assert conn_type["connection-type"] == DotoHook.conn_type == "doto"
    assert conn_type["hook-name"] == DotoHook.hook_name
    assert import_string(conn_type["hook-class-name"]) is DotoHook


def test_conn_fields(conn_type):
    fields = conn_type["conn-fields"]
    assert {"account_id", "timeout"} <= set(fields)
    assert fields["account_id"]["label"] == "Account ID"
    assert fields["account_id"]["schema"]["type"] == "integer"
    timeout = fields["timeout"]["schema"]
    assert timeout["default"] == 30 and timeout["minimum"] == 1 and "integer" in timeout["type"]
    flavor = fields["flavor"]
    assert flavor["schema"]["enum"] == list(api.FLAVORS) and flavor["schema"]["default"] == "auto"
    assert "timestamps" in flavor["description"] and "message ids" in flavor["description"]


def test_pacing_fields_show_the_defaults_the_settings_apply(conn_type):
    from airflow_provider_doto.api._pacing import PaceSettings

    fields = conn_type["conn-fields"]
    defaults = PaceSettings()
    shown = {
        "max_requests_per_minute": defaults.per_minute,
        "rate_limit_wait_seconds": defaults.wait,
        "rate_limit_window_seconds": defaults.window,
    }
    assert {name: fields[name]["schema"]["default"] for name in shown} == shown


def test_ui_field_behaviour_matches_the_hook(conn_type):
    behaviour = conn_type["ui-field-behaviour"]
    hook_behaviour = DotoHook.get_ui_field_behaviour()
    assert behaviour["hidden-fields"] == hook_behaviour["hidden_fields"]
    assert {"schema", "port", "login"} <= set(behaviour["hidden-fields"])
    assert not {"host", "password"} & set(behaviour["hidden-fields"])
    assert (
        behaviour["relabeling"]
        == hook_behaviour["relabeling"]
        == {"host": "Base URL", "password": "API Token"}
    )
    assert behaviour["placeholders"] == hook_behaviour["placeholders"]
    assert behaviour["placeholders"]["host"] == "https://app.usendoto.com"


def test_listed_modules_and_classes_import(info):
    modules = [
        m
        for key in ("operators", "sensors", "hooks", "triggers")
        for entry in info[key]
        for m in entry["python-modules"]
    ]
    assert modules
    for module in modules:
        importlib.import_module(module)
    for dotted in info["notifications"] + info["extra-links"]:
        assert isinstance(import_string(dotted), type)


def test_airflow_loads_the_provider():
    """Airflow's own ProvidersManager finds the provider, the hook and the connection form."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-doto"].version == DIST.version
    assert manager.hooks["doto"].hook_class_name == f"{DotoHook.__module__}.DotoHook"
    if FORM_FROM_HOOK_WIDGETS:  # no conn-fields; the widgets need flask-appbuilder outside the UI
        pytest.skip("Airflow 3.1 builds the form in the UI only: tests/test_connection_form.py")
    behaviour = manager.field_behaviours["doto"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Token"}
    assert behaviour["placeholders"]["extra__doto__account_id"] == "1"
    widgets = manager.connection_form_widgets
    assert widgets["extra__doto__account_id"].field_name == "account_id"
    assert widgets["extra__doto__timeout"].field["value"] == 30
