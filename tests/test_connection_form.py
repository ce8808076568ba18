"""The connection form as the Airflow UI of each version builds it (/ui/connections/hook_meta).

Airflow 3.1 builds it from ``DotoHook.get_connection_form_widgets()`` and
``get_ui_field_behaviour()``, with stand-ins for flask-appbuilder and wtforms that know only string,
integer, password and boolean fields (any other field drops the whole form); Airflow 3.2+ reads the
provider info's declarative ``conn-fields``. Both must show every field of ``CONN_FIELDS``.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_versions import FORM_FROM_HOOK_WIDGETS

from airflow_provider_doto.get_provider_info import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_doto.hooks.doto import DotoHook


@pytest.fixture(scope="module")
def form() -> Any:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    if FORM_FROM_HOOK_WIDGETS:
        # 3.1's ProvidersManager is a process-wide singleton that builds the widgets once: a test
        # that read its hooks earlier in this process (tests/test_get_provider_info.py) left it
        # without them, outside the stand-ins. The api-server builds them first; so does this test.
        ProvidersManager()._cleanup()
    forms = [meta for meta in HookMetaService.hook_meta_data() if meta.connection_type == "doto"]
    assert forms, "the UI lists no Doto connection type"
    (meta,) = forms
    return meta


def first_type(schema: dict[str, Any]) -> str:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    (kind,) = [t for t in types if t != "null"]
    return kind


@pytest.mark.parametrize("key", list(CONN_FIELDS))
def test_every_declared_field_is_in_the_ui(form: Any, key: str) -> None:
    declared = CONN_FIELDS[key]
    shown = form.extra_fields[key]
    assert shown["schema"]["title"] == declared["label"]
    assert first_type(shown["schema"]) == first_type(declared["schema"])
    assert shown["schema"].get("enum") == declared["schema"].get("enum")
    assert shown["value"] == declared["schema"].get("default")
    assert shown.get("description") == declared.get("description")


def test_no_field_beyond_the_declared_ones(form: Any) -> None:
    assert set(form.extra_fields) == set(CONN_FIELDS)


def test_standard_fields_relabelled_and_hidden(form: Any) -> None:
    fields = form.standard_fields
    for name, label in UI_FIELD_BEHAVIOUR["relabeling"].items():
        shown = getattr(fields, name)
        assert shown.title == label and not shown.hidden
        assert shown.placeholder == UI_FIELD_BEHAVIOUR["placeholders"][name]
    assert fields.port.hidden and fields.login.hidden and fields.url_schema.hidden


@pytest.mark.skipif(not FORM_FROM_HOOK_WIDGETS, reason="Airflow 3.2+ builds the form from conn-fields")
def test_on_3_1_the_form_comes_from_the_hook_widgets(form: Any) -> None:
    """The 3.1 path itself: the widgets, built under the UI's flask-appbuilder/wtforms stand-ins."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()  # filled by the fixture's call, under the stand-ins
    widgets = manager.connection_form_widgets
    doto = {info.field_name: info for key, info in widgets.items() if key.startswith("extra__doto__")}
    assert set(doto) == set(CONN_FIELDS)
    assert all(isinstance(info.field, HookMetaService.MockBaseField) for info in doto.values())
    behaviour = manager.field_behaviours["doto"]
    expected = DotoHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == expected["hidden_fields"]
    assert behaviour["relabeling"] == expected["relabeling"]


@pytest.mark.skipif(FORM_FROM_HOOK_WIDGETS, reason="Airflow 3.1 builds the form from the hook's widgets")
def test_on_3_2_and_later_the_form_comes_from_conn_fields() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    assert (
        manager.providers["airflow-provider-doto"].data["connection-types"][0]["conn-fields"] == CONN_FIELDS
    )


def test_max_upload_mb_is_in_the_form_with_the_limit_the_checks_use(form: Any) -> None:
    """The upload limit is a form field (not only a raw extra): its default is the limit the upload
    checks use when the field is left empty, and whatever the form stores is what they read."""
    from airflow_provider_doto.api._settings import DotoSettings
    from airflow_provider_doto.api._uploads import DEFAULT_MAX_UPLOAD_MB, MEGABYTE

    shown = form.extra_fields["max_upload_mb"]
    assert shown["schema"]["title"] == "Max upload (MB)"
    assert shown["value"] == DEFAULT_MAX_UPLOAD_MB
    assert CONN_FIELDS["max_upload_mb"]["schema"]["minimum"] == 1

    def read(value: Any) -> int:
        extra = {"account_id": 1, "max_upload_mb": value}
        settings = DotoSettings.from_connection_fields(
            "doto_form", host="https://app.usendoto.com", password="t0ken", extra=extra
        )
        return settings.max_upload_bytes

    assert read(None) == read("") == DEFAULT_MAX_UPLOAD_MB * MEGABYTE  # the field left empty
    assert read(5) == read("5") == 5 * MEGABYTE  # as 3.2+ (a number) and 3.1 (text) store it
