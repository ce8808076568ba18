"""One error story, in real DAG runs (``dag.test()``, the emulator over real HTTP).

* A token with a trailing newline (a secret file's last line) fails both hooks' tasks with the
  DotoConfigError naming the API Token, and the captured task logs show the token in no form.
* A refused token fails a sensor with ``DotoAuthError`` in poke, reschedule and deferrable mode:
  in deferrable mode the refusal is met by the trigger and reaches the task as its error event.

DAGs: ``tests/dags/doto_test_bad_token.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest
from dagrun import load_module, task_instances
from known_tokens import TEST_TOKEN

from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError
from airflow_provider_doto.testing.emulator import DotoEmulator

pytestmark = [pytest.mark.integration, pytest.mark.doto_flavor("doto")]

REPO = Path(__file__).resolve().parents[2]
WRONG_TOKEN = "wrong-token-1"  # (tests/known_tokens.py: scanned for too)


def _dags() -> ModuleType:
    return load_module(REPO / "tests/dags/doto_test_bad_token.py", "doto_test_bad_token")


def _set_conn(monkeypatch: pytest.MonkeyPatch, emu: DotoEmulator, conn_id: str, token: str) -> None:
    conn = {**json.loads(emu.connection_json()), "password": token}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_a_pasted_token_fails_both_hooks_and_no_task_log_shows_it(
    airflow_db: Path,
    doto_emulator: DotoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    emu = doto_emulator
    token = emu.token + "\n"
    _set_conn(monkeypatch, emu, "doto_pasted", token)
    cid = emu.add_conversation()
    dags = _dags()

    run = dags.pasted_dag.test(run_conf={"conversation_id": cid})
    out = capfd.readouterr()
    log = out.out + out.err

    assert run.state == "failed"
    # The token in no form: raw, escaped as a repr or a JSON string would show it, or without the newline.
    for form in (token, repr(token)[1:-1], json.dumps(token)[1:-1], TEST_TOKEN):
        assert form not in log, f"{form!r} in the task log"
    states = {task_id: ti.state for (task_id, _), ti in task_instances(run).items()}
    assert states == {"send_sync": "failed", "send_async": "failed"}
    for task_id in ("send_sync", "send_async"):
        error = dags.RAISED[task_id]
        assert type(error) is DotoConfigError, (task_id, repr(error))
        assert "'doto_pasted': the API Token (the connection's password) has a line break at its end" in str(
            error
        )
    assert log.count("the API Token (the connection's password) has a line break at its end") >= 2
    assert emu.requests == []  # refused before anything was sent


def test_a_refused_token_is_a_dotoautherror_in_poke_reschedule_and_deferrable_mode(
    airflow_db: Path, doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = doto_emulator
    _set_conn(monkeypatch, emu, "doto_wrong", WRONG_TOKEN)
    _set_conn(monkeypatch, emu, "doto_revoked", emu.token)
    cid, deferred_cid = emu.add_conversation(), emu.add_conversation()
    # The deferrable sensor's first check (in the worker, with the right token) is held for a moment;
    # meanwhile the connection's token changes, so the trigger that polls next reads a wrong one.
    emu.inject("delay", times=1, delay=1.0, path_contains=f"/conversations/{deferred_cid}/")
    revoked = threading.Event()

    def revoke() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(f"/conversations/{deferred_cid}/" in r.path + "/" for r in emu.requests):
                conn = {**json.loads(emu.connection_json()), "password": WRONG_TOKEN}
                os.environ["AIRFLOW_CONN_DOTO_REVOKED"] = json.dumps(conn)  # monkeypatch restores it
                revoked.set()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=revoke, daemon=True)
    thread.start()
    dags = _dags()
    run = dags.refused_dag.test(run_conf={"conversation_id": cid, "deferred_conversation_id": deferred_cid})
    thread.join(timeout=5)

    assert revoked.is_set()
    assert run.state == "failed"
    tis = task_instances(run)
    for task_id in ("wait_poke", "wait_reschedule", "wait_deferrable"):
        assert tis[task_id, -1].state == "failed", task_id
        error = dags.RAISED[task_id]
        try:
            raise error  # type: ignore[misc]
        except DotoAuthError as caught:  # what a DAG author writes, in every mode
            assert caught.status == 401, task_id
            assert "HTTP 401" in str(caught), task_id
    # The deferrable sensor's first check passed (right token), then its trigger met the refusal.
    deferred = [
        r for r in emu.requests if r.method == "GET" and f"/conversations/{deferred_cid}/" in r.path + "/"
    ]
    assert deferred[0].authorized and not deferred[-1].authorized
