"""Pytest fixtures: one emulator per session, reset for every test that asks for it.

The ``doto_emulator`` fixture resets the server to a flavor chosen by, in order: indirect
parametrisation (``@pytest.mark.parametrize("doto_emulator", ["chatwoot"], indirect=True)``), the
marker ``@pytest.mark.doto_flavor("chatwoot")``, else ``"doto"``. The marker
``@pytest.mark.doto_throttle(60, 5)`` turns on a rack-attack throttle (60 requests per client per
5 s window) for that test; the provider's per-process pacers are forgotten before and after each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_doto.testing.emulator.flavors import FLAVORS, check_flavor
from airflow_provider_doto.testing.emulator.server import DotoEmulator

TEST_TOKEN = "doto-test-token"
DEFAULT_FLAVOR = "doto"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"doto_flavor(name): reset the doto_emulator fixture to this flavor, one of {', '.join(FLAVORS)}",
    )
    config.addinivalue_line(
        "markers",
        "doto_throttle(limit, period=60): the doto_emulator fixture throttles like rack-attack, limit "
        "requests per client per period seconds (429 text/plain, no Retry-After)",
    )


def requested_flavor(request: pytest.FixtureRequest) -> str:
    """The flavor a test asks for: indirect param, else the ``doto_flavor`` marker, else ``doto``."""
    param = getattr(request, "param", None)
    if param is not None:
        return check_flavor(param)
    marker = request.node.get_closest_marker("doto_flavor")
    if marker is not None:
        name = marker.args[0] if marker.args else marker.kwargs.get("name", DEFAULT_FLAVOR)
        return check_flavor(name)
    return DEFAULT_FLAVOR


@pytest.fixture(scope="session")
def doto_emulator_server() -> Iterator[DotoEmulator]:
    """The running emulator for the whole session (state is not reset between uses)."""
    with DotoEmulator(token=TEST_TOKEN, account_id=1) as emulator:
        yield emulator


@pytest.fixture
def doto_emulator(
    request: pytest.FixtureRequest, doto_emulator_server: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DotoEmulator]:
    """The session's emulator, freshly reset to the test's flavor, with ``AIRFLOW_CONN_DOTO_DEFAULT`` set."""
    doto_emulator_server.reset(flavor=requested_flavor(request), first_message_id=1)
    throttle = request.node.get_closest_marker("doto_throttle")
    if throttle is not None:
        doto_emulator_server.set_throttle(*throttle.args, **throttle.kwargs)
    _forget_pacers()
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", doto_emulator_server.connection_json())
    yield doto_emulator_server
    # Don't leave faults, hidden state or another flavor for code running after the test.
    doto_emulator_server.reset(flavor=DEFAULT_FLAVOR, first_message_id=1)
    _forget_pacers()


def _forget_pacers() -> None:
    """A pause or an emptied bucket of one test must not slow the next (the pacers are per process)."""
    import sys

    pacing = sys.modules.get("airflow_provider_doto.hooks._pacing")
    if pacing is not None:
        pacing.forget_pacers()


@pytest.fixture
def doto_flavor(doto_emulator: DotoEmulator) -> str:
    """The flavor the ``doto_emulator`` fixture was reset to for this test."""
    return doto_emulator.flavor
