"""Fixtures of the reliability suite: one emulator with a recognisable token, leak checks, figures."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_doto.testing.emulator import DotoEmulator

from ._options import add_soak_option, soak_enabled
from .reliability_support import (
    FIGURES,
    TOKEN,
    FaultCounter,
    assert_no_token,
    summary_lines,
    write_reliability_md,
)

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    add_soak_option(parser)


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> bool:
    return soak_enabled(pytestconfig)


@pytest.fixture(scope="session")
def secret_emulator() -> Iterator[DotoEmulator]:
    with DotoEmulator(token=TOKEN, account_id=7) as emulator:
        yield emulator


@pytest.fixture
def emu(
    request: pytest.FixtureRequest, secret_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DotoEmulator]:
    """The session's emulator, reset to the test's server flavor (tests/conftest.py parametrises
    it), with ``doto_default`` pointing at it (token: ``TOKEN``, flavor ``auto``)."""
    secret_emulator.reset(flavor=getattr(request, "param", "doto"))
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", secret_emulator.connection_json())
    yield secret_emulator
    secret_emulator.reset(flavor="doto")


@pytest.fixture
def faults(emu: DotoEmulator) -> Iterator[FaultCounter]:
    """``faults.inject(...)``: the emulator's inject, with applied faults counted for the figures."""
    counter = FaultCounter(emu)
    yield counter
    counter.settle()


@pytest.fixture(autouse=True)
def no_token_in_output(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Every reliability test also checks that the token reached no log record and no console output
    (``dag.test()`` prints task logs to the console unmasked, so this covers Airflow task logs too)."""
    caplog.set_level(logging.DEBUG)  # (the suite-wide scan of tests/token_scan.py also checks at DEBUG)
    yield
    out, err = capfd.readouterr()
    assert_no_token(caplog.text, where="captured log records")
    assert_no_token(out, err, where="captured stdout/stderr")
    # Let a failing test still show its output.
    if out:
        print(out, end="")


@pytest.fixture(scope="session")
def reliability_dags(airflow_db: Any) -> Path:
    """``tests/reliability/dags`` linked into the test DAGs folder (``dag.test()`` needs it there)."""
    link = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "reliability_dags"
    if not link.exists():
        link.symlink_to(HERE / "dags", target_is_directory=True)
    return link


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not FIGURES.values:
        return
    soak = soak_enabled(config)
    duration = time.monotonic() - FIGURES.started
    terminalreporter.section("Doto reliability figures")
    for line in summary_lines(soak, duration):
        terminalreporter.write_line(line)
    complete = {"no_duplicates", "no_loss", "fault_matrix"} <= set(FIGURES.values)
    if soak and exitstatus == 0 and complete:  # only a whole, green soak run replaces the figures
        write_reliability_md(duration)
        terminalreporter.write_line("figures written to RELIABILITY.md")
