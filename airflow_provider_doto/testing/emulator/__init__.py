"""The Doto emulator: a local Doto Messages API for testing DAGs, shipped with the provider.

Users test their own DAGs with it; this provider's tests, benchmarks, demo and local stack use it
too. ``DotoEmulator`` serves the real HTTP API on loopback from a background thread; tests seed and
inspect its state, turn Chatwoot-like knobs, and inject faults. Installing the provider registers
its pytest plugin (``pytest_plugin``: the ``doto_emulator`` fixture); ``python -m
airflow_provider_doto.testing.emulator --help`` runs it from the command line.
"""

from airflow_provider_doto.testing.emulator.clock import Clock
from airflow_provider_doto.testing.emulator.faults import Fault
from airflow_provider_doto.testing.emulator.recorder import RecordedRequest
from airflow_provider_doto.testing.emulator.server import DEFAULT_TOKEN, DotoEmulator

__all__ = ["DEFAULT_TOKEN", "Clock", "DotoEmulator", "Fault", "RecordedRequest"]
