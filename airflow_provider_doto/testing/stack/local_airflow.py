"""Airflow on this machine, in a throwaway home: what the demo, the stack and the tests share.

The rule: an Airflow the tools start sees only the settings given here, never the caller's
``AIRFLOW_*`` environment, and any wait for it has a deadline that names what it waited for.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Shipped in the wheel (package data), so the demo and the stack run from an installed package.
EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def sqlite_uri(home: Path) -> str:
    """The metadata DB of a throwaway home: one SQLite file in it."""
    return f"sqlite:///{home / 'airflow.db'}"


def airflow_settings(home: Path, dags_folder: Path, database_uri: str | None = None) -> dict[str, str]:
    """The settings of an Airflow in ``home``: no bundled examples, our DAGs folder, its own DB."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_uri or sqlite_uri(home),
    }


def isolated_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """A subprocess environment: this one without its Airflow settings, plus ``settings``.

    This interpreter's scripts come first on ``PATH``, so any ``airflow`` a component runs is this install's.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(settings)
    return env


def wait_until(
    check: Callable[[], T | None], timeout: float = 60.0, what: str = "a condition", interval: float = 0.05
) -> T:
    """Call ``check`` until it returns something truthy and return that; ``TimeoutError`` names ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def tail(path: Path, lines: int = 40, secret: str | None = None) -> str:
    """The last lines of a log file, for error messages; ``secret`` (e.g. a token) shows as ``***``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    if secret:
        text = text.replace(secret, "***")
    return "\n".join(text.splitlines()[-lines:])
