"""The ``--soak`` command-line option of the reliability suite.

pytest only calls ``pytest_addoption`` in *initial* conftests: ``tests/reliability/conftest.py``
is one when ``tests/reliability`` is named on the command line (``pytest tests/reliability --soak``,
what ``scripts/soak.sh`` runs), but not for a bare ``pytest --soak`` from the repository root
(``testpaths = ["tests"]`` only pre-loads ``tests/test*/`` conftests). To make the bare form work,
``tests/conftest.py`` can call :func:`add_soak_option` from its own ``pytest_addoption``; adding
the option twice is harmless. ``DOTO_SOAK=1`` in the environment also turns soak mode on.
"""

from __future__ import annotations

import contextlib
import os

import pytest

SOAK_OPTION = "--soak"


def add_soak_option(parser: pytest.Parser) -> None:
    """Register ``--soak`` unless another conftest already did."""
    with contextlib.suppress(ValueError):  # "option names {'--soak'} already added"
        parser.addoption(
            SOAK_OPTION,
            action="store_true",
            default=False,
            help="Doto reliability suite: run the long soak (1,000 duplicate trials, 10,000 messages) "
            "and write its figures into RELIABILITY.md.",
        )


def soak_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption(SOAK_OPTION, default=False)) or os.environ.get("DOTO_SOAK") == "1"
