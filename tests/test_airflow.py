"""``_airflow``: the Airflow-side helpers kept out of the pure core."""

from __future__ import annotations

from airflow_provider_doto._airflow import describe_error, is_template
from airflow_provider_doto.exceptions import DotoAuthError


def test_describe_error_never_leaks_foreign_messages():
    assert (
        describe_error(DotoAuthError("Doto GET /x failed", status=401)) == "DotoAuthError: Doto GET /x failed"
    )
    assert describe_error(RuntimeError("https://u:tok-SECRET@h")) == "RuntimeError"


def test_is_template():
    assert is_template("{{ ds }}") and is_template("{% if x %}y{% endif %}")
    assert not is_template("plain text") and not is_template(42) and not is_template(None)
