"""Every token constant of the suite is in ``known_tokens.KNOWN_TOKENS`` (so the token scan of
``tests/conftest.py`` covers it), and the scan itself fails a test that leaks one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from known_tokens import KNOWN_TOKENS

TESTS = Path(__file__).resolve().parent
CONSTANT = re.compile(r"^\s*[A-Z_]*TOKEN\s*=\s*\"([^\"]{4,})\"", re.MULTILINE)


def test_the_library_tokens_are_known() -> None:
    from airflow_provider_doto.testing.emulator import DEFAULT_TOKEN
    from airflow_provider_doto.testing.emulator.pytest_plugin import TEST_TOKEN

    assert {TEST_TOKEN, DEFAULT_TOKEN} <= set(KNOWN_TOKENS)


def test_every_token_constant_is_known() -> None:
    found = {
        (path.relative_to(TESTS).as_posix(), token)
        for path in TESTS.rglob("*.py")
        for token in CONSTANT.findall(path.read_text())
    }
    assert found, "no token constants found: the pattern is out of date"
    assert {(where, token) for where, token in found if token not in KNOWN_TOKENS} == set()


def test_the_scan_fails_a_test_that_logs_a_token(tmp_path: Path) -> None:
    (tmp_path / "test_leaks.py").write_text(
        f"""
import logging

import pytest

def test_debug_leak():
    logging.getLogger("airflow_provider_doto.hooks.doto").debug("header %s", {KNOWN_TOKENS[2]!r})

def test_print_leak():
    print("token:", {KNOWN_TOKENS[3]!r})

def test_stderr_leak_in_setup(leaky):
    pass

@pytest.fixture
def leaky():
    import sys
    print({KNOWN_TOKENS[0]!r}, file=sys.stderr)

@pytest.mark.token_in_output(reason="shows the token on purpose")
def test_allowed():
    print({KNOWN_TOKENS[3]!r})

def test_clean():
    logging.getLogger("airflow_provider_doto").debug("nothing secret")
"""
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "token_scan",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-rf",
            "-q",
            str(tmp_path / "test_leaks.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert "2 failed, 2 passed, 1 error" in out, out  # (a failed setup is an error)
    for name in ("test_debug_leak", "test_print_leak"):
        assert f"FAILED test_leaks.py::{name}" in out, out
    assert "ERROR at setup of test_stderr_leak_in_setup" in out
    assert "known test token" in out
