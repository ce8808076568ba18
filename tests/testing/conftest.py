"""Load the emulator fixtures even when the package is not installed (no pytest11 entry point yet)."""

from importlib.metadata import entry_points

_PLUGIN = "airflow_provider_doto.testing.pytest_plugin"

if not any(ep.value == _PLUGIN for ep in entry_points(group="pytest11")):
    from airflow_provider_doto.testing.pytest_plugin import (  # noqa: F401
        doto_emulator,
        doto_emulator_server,
    )
