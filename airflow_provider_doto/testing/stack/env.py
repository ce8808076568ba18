"""What every process of the local stack runs with: its environment and its command line.

The rule: one environment for every component and worker, so all share the fernet key, the JWT
secret, the execution API URL and the metadata DB; nothing Airflow-related leaks in from the caller
(e.g. a test session's unit-test settings).
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path

from airflow_provider_doto.testing.stack.broker import redis_url
from airflow_provider_doto.testing.stack.local_airflow import airflow_settings, isolated_environment

# Settings every component shares; per-stack values (home, ports, keys, DB) are added in ``env``.
BASE_SETTINGS: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__API__EXPOSE_CONFIG": "False",
    # No sync-in-async bridge: a trigger that fetches its connection synchronously fails here, as it
    # would in a triggerer without greenback, instead of silently working.
    "AIRFLOW_DISABLE_GREENBACK_PORTAL": "true",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}


def stack_environment(
    home: Path,
    dags_folder: Path,
    db_uri: str,
    base_url: str,
    parallelism: int,
    celery: tuple[int, int] | None = None,
) -> dict[str, str]:
    """The components' environment; ``celery=(redis_port, worker_concurrency)`` selects the CeleryExecutor."""
    env = isolated_environment({**BASE_SETTINGS, **airflow_settings(home, dags_folder, db_uri)})
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_uri.replace(
                "sqlite://", "sqlite+aiosqlite://", 1
            ),
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        }
    )
    if celery is not None:
        redis_port, concurrency = celery
        env["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"
        env["AIRFLOW__CELERY__BROKER_URL"] = redis_url(redis_port)
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = str(concurrency)
    return env


def component_argv(name: str, api_port: int) -> list[str]:
    """The command of an Airflow component: ``api-server``, ``scheduler``, ``dag-processor``,
    ``triggerer`` / ``triggerer-N`` or ``worker-N`` (a Celery worker)."""
    base = [sys.executable, "-m", "airflow"]
    if name == "api-server":
        return [*base, "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"]
    if name.startswith("worker-"):
        # Its own Celery hostname; no log server (two workers would share its port).
        return [*base, "celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
    if name == "scheduler" or name == "triggerer" or name.startswith("triggerer-"):
        return [*base, name.split("-")[0], "--skip-serve-logs"]
    if name == "dag-processor":
        return [*base, "dag-processor"]
    raise ValueError(f"unknown component {name!r}")
