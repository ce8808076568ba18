"""``_airflow``: the Airflow-side helpers kept out of the pure core."""

from __future__ import annotations

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_provider_doto._airflow import (
    TEMPLATE_EXTENSIONS,
    check_query,
    describe_error,
    is_static,
    is_template,
    is_template_file,
    rendered_list,
    rendered_query,
)
from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError


def test_describe_error_never_leaks_foreign_messages():
    assert (
        describe_error(DotoAuthError("Doto GET /x failed", status=401)) == "DotoAuthError: Doto GET /x failed"
    )
    assert describe_error(RuntimeError("https://u:tok-SECRET@h")) == "RuntimeError"


def test_is_template():
    assert is_template("{{ ds }}") and is_template("{% if x %}y{% endif %}")
    assert not is_template("plain text") and not is_template(42) and not is_template(None)


def test_template_files_are_named_by_their_extension():
    assert all(is_template_file(f"templates/nudge{ext}") for ext in TEMPLATE_EXTENSIONS)
    assert not any(is_template_file(value) for value in ("Hi there", "nudge.html", None))


def test_is_static_looks_for_templates_and_run_time_values_anywhere_inside():
    with DAG("static_check", schedule=None):
        plan = EmptyOperator(task_id="plan").output
    assert is_static([1, "2", (3,), {"a": [4.0, None, True]}, {5}]) and is_static("1,2") and is_static(None)
    assert not is_static("{{ params.ids }}") and not is_static(plan)
    assert not is_static([1, "{{ params.id }}"]) and not is_static([{"content": "{% if x %}y{% endif %}"}])
    assert not is_static({"ids": [plan]}) and not is_static(({"{{ ds }}"},))


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ([3, "1"], [3, "1"]),
        ((3, 1), [3, 1]),
        (range(1, 3), [1, 2]),
        (7, [7]),
        ("[3, 1]", [3, 1]),
        (' [{"conversation_id": 1, "content": "hi"}] ', [{"conversation_id": 1, "content": "hi"}]),
        ("[{'conversation_id': 1, 'content': 'hi'}]", [{"conversation_id": 1, "content": "hi"}]),
        ("(3, 1)", [3, 1]),
        ("4, 5", [4, 5]),
        ("4,5,", [4, 5]),
        ("7", [7]),
        ("07", ["07"]),  # no literal reads a leading zero; still an id for to_id
        ("1, 07", ["1", "07"]),
        ("[]", []),
    ],
)
def test_rendered_list_reads_every_form_a_list_field_takes(value, items):
    assert rendered_list(value, "conversation_ids") == items


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("[1, 2", r"conversation_ids is not a list: the text '\[1, 2' is neither"),
        ("abc", "conversation_ids is not a list: the text 'abc'"),
        ("", "conversation_ids is not a list: the text ''"),
        ("None", "render_template_as_native_obj=True"),
        ("{'a': 1}", "conversation_ids is not a list: the text \"{'a': 1}\""),
        ("1, x", "conversation_ids is not a list: the text '1, x'"),
        ({"a": 1}, r"conversation_ids must be a list, got dict: \{'a': 1\}"),
        (None, "conversation_ids must be a list, got NoneType: None"),
        (b"12", "conversation_ids must be a list, got bytes"),
        ("9" * 500 + "x", r"conversation_ids is not a list: the text '9{76}\.\.\. is neither"),
    ],
)
def test_rendered_list_refuses_what_is_not_a_list_naming_field_and_value(value, match):
    with pytest.raises(DotoConfigError, match=match):
        rendered_list(value, "conversation_ids")


def test_rendered_list_keeps_the_reading_error_as_the_cause():
    with pytest.raises(DotoConfigError) as caught:
        rendered_list("[1, 2", "messages")
    assert isinstance(caught.value.__cause__, SyntaxError)


def test_rendered_query_reads_a_mapping_its_text_or_a_query():
    from airflow_provider_doto.api import ConversationQuery

    expected = ConversationQuery(status="all", labels=("vip", "bug"), inbox_id=3, active_since=1767225600)
    fields = {
        "status": "all",
        "labels": ["vip", "bug"],
        "inbox_id": "3",
        "active_since": "2026-01-01T00:00:00+00:00",
    }
    assert rendered_query(fields) == expected
    assert rendered_query({**fields, "labels": "['vip', 'bug']", "q": ""}) == expected  # rendered list text
    assert rendered_query({**fields, "labels": "vip, bug"}) == expected
    assert rendered_query(str(fields)) == expected == rendered_query(expected)
    with pytest.raises(DotoConfigError, match="conversation_query: status must be one of"):
        rendered_query({"status": "closed"})
    with pytest.raises(DotoConfigError, match="conversation_query is not a mapping of the query's fields"):
        rendered_query("status: all")


def test_check_query_checks_static_fields_and_every_name_leaving_templates_for_later():
    check_query("{{ params.query }}")
    check_query({"status": "{{ params.status }}", "active_since": "{{ data_interval_start }}"})
    check_query({"sort_by": "created_at_desc", "active_since": "{{ data_interval_start }}"})
    with pytest.raises(DotoConfigError, match="has no field statuses"):
        check_query({"statuses": "{{ params.status }}"})
    with pytest.raises(DotoConfigError, match="sort_by must be one of"):
        check_query({"sort_by": "newest", "q": "{{ params.q }}"})
    with pytest.raises(DotoConfigError, match="must be a mapping"):
        check_query(["open"])
