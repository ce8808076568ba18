"""Test-wide setup: an isolated AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from .reliability._options import add_soak_option

_HOME = Path(tempfile.mkdtemp(prefix="doto-airflow-home-"))
REPO = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
# dag.test() needs the DAG file inside the dags folder: link in the examples and the test DAGs.
_DAGS = _HOME / "dags"
_DAGS.mkdir()
(_DAGS / "example_dags").symlink_to(REPO / "example_dags")
(_DAGS / "test_dags").symlink_to(REPO / "tests" / "dags")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME / 'airflow.db'}")


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB, once per session (``dag.test()`` needs one)."""
    from airflow.utils import db

    db.initdb()
    return _HOME / "airflow.db"


def pytest_addoption(parser: pytest.Parser) -> None:
    # Registered here too so `pytest --soak` works from the repository root.
    add_soak_option(parser)
