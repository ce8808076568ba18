"""A local Doto Messages API emulator for tests, demos and benchmarks.

``DotoEmulator`` serves the real HTTP API on loopback from a background thread; tests seed and
inspect its state, turn Chatwoot-like knobs, and inject faults. See ``python -m
airflow_provider_doto.testing serve --help`` for the command line and ``pytest_plugin`` for fixtures.
"""

from airflow_provider_doto.testing.clock import Clock
from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.faults import Fault
from airflow_provider_doto.testing.recorder import RecordedRequest

__all__ = ["Clock", "DotoEmulator", "Fault", "RecordedRequest"]
