"""Pytest fixtures: one emulator per session, reset for every test that asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_doto.testing.emulator import DotoEmulator

TEST_TOKEN = "doto-test-token"


@pytest.fixture(scope="session")
def doto_emulator_server() -> Iterator[DotoEmulator]:
    """The running emulator for the whole session (state is not reset between uses)."""
    with DotoEmulator(token=TEST_TOKEN, account_id=1) as emulator:
        yield emulator


@pytest.fixture
def doto_emulator(
    doto_emulator_server: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DotoEmulator]:
    """The session's emulator, freshly reset, with ``AIRFLOW_CONN_DOTO_DEFAULT`` pointing at it."""
    doto_emulator_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", doto_emulator_server.connection_json())
    yield doto_emulator_server
    doto_emulator_server.reset()  # don't leave faults or hidden state for code running after the test
