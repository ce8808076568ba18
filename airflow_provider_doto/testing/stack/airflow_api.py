"""The public REST API of a running Airflow, as the local stack and the deployment tests use it.

The rule: every wait has a deadline that names what it waited for, and checks first that no
component of the deployment has died (``check_alive``), so a crash fails fast with its log.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from airflow_provider_doto.testing.stack.local_airflow import wait_until
from airflow_provider_doto.testing.stack.processes import StackError

HEALTH_PATH = "/api/v2/monitor/health"
# Pauses before asking again after a 500 "Database error" (a briefly locked SQLite), in seconds.
DATABASE_ERROR_WAITS = (0.2, 0.5, 1.0, 2.0, 4.0)


def rest_session() -> requests.Session:
    """A keep-alive session for the api-server that asks again when a pooled connection was reset.

    The api-server closes idle keep-alive connections; a request that reuses one just as it closes
    fails with "Connection reset by peer" before any answer. urllib3 retries that for idempotent
    methods only (GET, PUT, DELETE, ...): a POST is never sent twice by this.
    """
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    adapter = HTTPAdapter(max_retries=Retry(total=3, connect=3, read=3, status=0, backoff_factor=0.2))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class AirflowApi:
    """REST calls on ``base_url``; mixed into :class:`~airflow_provider_doto.testing.stack.AirflowStack`."""

    _session: requests.Session
    _api_token: str | None

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def check_alive(self) -> None:
        """Raise if a process of the deployment has exited (the stack overrides it)."""

    def health(self) -> dict[str, Any] | None:
        try:
            response = self._session.get(self.base_url + HEALTH_PATH, timeout=5)
        except requests.RequestException:
            return None
        return response.json() if response.ok else None

    def wait_healthy(
        self, timeout: float = 120, components: Sequence[str] = ("scheduler", "triggerer", "dag_processor")
    ) -> dict[str, Any]:
        def healthy() -> dict[str, Any] | None:
            self.check_alive()
            report = self.health()
            if report is None:
                return None
            parts = ["metadatabase", *components]
            ok = all((report.get(part) or {}).get("status") == "healthy" for part in parts)
            return report if ok else None

        return wait_until(healthy, timeout, "all components to report healthy", interval=0.5)

    # -- REST API ----------------------------------------------------------------------------------

    def api_token(self) -> str:
        """A bearer token from ``GET /auth/token`` (SimpleAuthManager with all users admin)."""
        if self._api_token is None:
            response = self._session.get(self.base_url + "/auth/token", timeout=30)
            response.raise_for_status()
            self._api_token = str(response.json()["access_token"])
        return self._api_token

    def api(self, method: str, path: str, json_body: Any = None, ok: Sequence[int] = (200,)) -> Any:
        """Call the public REST API (``path`` under ``/api/v2``); return the decoded JSON.

        A 500 "Database error" is retried: on SQLite the api-server answers it when another
        component holds the write lock a moment too long, and the failed request's transaction was
        rolled back, so asking again is safe (a POST that names its resource, like
        :meth:`trigger_dag`, answers 409 if it did commit after all).
        """
        for wait in (*DATABASE_ERROR_WAITS, None):
            response = self._session.request(
                method,
                f"{self.base_url}/api/v2{path}",
                json=json_body,
                headers={"Authorization": f"Bearer {self.api_token()}"},
                timeout=30,
            )
            if wait is None or response.status_code != 500 or "Database error" not in response.text:
                break
            time.sleep(wait)
        if response.status_code not in ok:
            raise StackError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (and it has no import error)."""

        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            response = self._session.get(
                f"{self.base_url}/api/v2/dags/{dag_id}",
                headers={"Authorization": f"Bearer {self.api_token()}"},
                timeout=30,
            )
            return response.json() if response.ok else None

        try:
            return wait_until(parsed, timeout, f"DAG {dag_id} to be parsed", interval=0.5)
        except TimeoutError as exc:
            errors = self.api("GET", "/importErrors")
            raise StackError(f"{exc}; import errors: {json.dumps(errors)[:4000]}") from None

    def trigger_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Start a manual run through the REST API; return its ``dag_run_id``.

        The run is named here, so a retried POST cannot start a second run.
        """
        run_id = f"manual__{uuid.uuid4().hex}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        self.api("POST", f"/dags/{dag_id}/dagRuns", body, ok=(200, 409))
        self.dag_run(dag_id, run_id)  # (a 409 for any other reason: no such run, StackError)
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def mapped_task_instances(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every map index of one task, page by page (the API returns at most 100 per page)."""
        found: list[dict[str, Any]] = []
        while True:
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?task_id={task_id}&limit=100&offset={len(found)}"
            page = self.api("GET", path)["task_instances"]
            found.extend(page)
            if len(page) < 100:
                return found

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self.api("GET", path)["value"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until a run is finished (success or failed); return it."""

        def finished() -> dict[str, Any] | None:
            self.check_alive()
            run = self.dag_run(dag_id, run_id)
            return run if run["state"] in ("success", "failed") else None

        return wait_until(finished, timeout, f"run {run_id} of {dag_id} to finish", interval=0.5)

    def alive_jobs(self, job_type: str) -> list[dict[str, Any]]:
        """Jobs of one type (e.g. ``TriggererJob``) whose heartbeat is recent, from ``GET /jobs``."""
        return list(self.api("GET", f"/jobs?job_type={job_type}&is_alive=true&limit=100")["jobs"])
