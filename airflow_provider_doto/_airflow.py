"""Helpers of the Airflow-facing classes (operators, sensor, notifier, trigger), kept out of the pure
API core: they know about Jinja templates and about what goes into a log line or a trigger event."""

from __future__ import annotations

from typing import Any

from airflow_provider_doto.exceptions import DotoError


def is_template(value: Any) -> bool:
    """A Jinja template string: its value is only known, and checked, after rendering."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def describe_error(error: BaseException) -> str:
    """One line for logs and trigger events: the typed error's text (never carries the token)."""
    if isinstance(error, DotoError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}"
