"""Every API token the test suite gives an emulator or a connection, in one place.

``tests/conftest.py`` fails any test whose captured log records (at DEBUG) or console output
contain one of these, unless the test is marked ``token_in_output`` with a reason. Tests keep their
own constants (e.g. ``TOKEN`` in ``tests/hooks/test_doto.py``); ``tests/test_known_tokens.py``
checks that every token constant of the suite is listed here. Short throwaway tokens such as
``"T"`` are left out: they would match ordinary text.
"""

from __future__ import annotations

# Literals, not imports: tests/conftest.py loads this before it sets up Airflow's environment
# (tests/test_known_tokens.py checks them against the library's constants).
TEST_TOKEN = "doto-test-token"  # airflow_provider_doto.testing.emulator.pytest_plugin.TEST_TOKEN
DEFAULT_TOKEN = "doto-emulator-token"  # airflow_provider_doto.testing.emulator.DEFAULT_TOKEN
KNOWN_TOKENS: tuple[str, ...] = (
    TEST_TOKEN,  # the doto_emulator fixture (pytest plugin)
    DEFAULT_TOKEN,  # DotoEmulator() without a token
    "tok-SECRET-3f9a7c",  # tests/hooks/test_doto.py, tests/api/_support.py
    "SECRET-TOKEN-d0t0-XYZ",  # tests/reliability (reliability_support.TOKEN)
    "doto-deploy-SECRET-4f1c9e7a2b",  # tests/deployment/conftest.py
    "doto-cli-SECRET-9d2e61",  # tests/deployment/test_cli.py
    "doto-distributed-SECRET-7b3e0c51",  # tests/distributed/conftest.py
    "bot-token-7d1e",  # tests/hooks/test_doto_server_differences.py (an agent bot's token)
    "wrong-token-1",  # refused tokens: even a wrong token must not be shown
    "wrong-token-2",
    "demo-token-that-must-not-appear",  # tests/testing/stack/test_demo.py
    "not-the-emulator-token",  # tests/testing/emulator/test_contract.py
)


def leaks(text: str) -> list[str]:
    """The known tokens found in ``text``."""
    return [token for token in KNOWN_TOKENS if token in text]


def masked(text: str) -> str:
    for token in KNOWN_TOKENS:
        text = text.replace(token, "<TOKEN>")
    return text
