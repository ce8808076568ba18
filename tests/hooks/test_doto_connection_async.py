"""The async hook's ``test_connection()`` against the real emulator, in both flavors, for the failures
``test_doto_server_differences.py`` checks on the sync hook: a wrong token, a wrong account and a
wrong Base URL path each give the same answer from both hooks, without the token in it."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator


def _connection(monkeypatch: pytest.MonkeyPatch, emu: DotoEmulator, **changes: object) -> str:
    conn = json.loads(emu.connection_json())
    for key, value in changes.items():
        if key == "account_id":
            conn["extra"]["account_id"] = value
        elif key == "path":
            conn["host"] = emu.base_url + str(value)
        else:
            conn[key] = value
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_ASYNC_CHECK", json.dumps(conn))
    return "doto_async_check"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({}, ("Connected to Doto at", ", account 1 (administrator).")),
        ({"password": "wrong-token-2"}, ("HTTP 401", "Invalid Access Token")),
        ({"account_id": 99}, ("does not belong to account 99", "1 (Account 1), 7 (Account 7)")),
        ({"path": "/chatwoot"}, ("no Doto API at", "check the Base URL (its path)")),
    ],
    ids=["good token", "bad token", "wrong account", "wrong URL path"],
)
def test_async_test_connection_answers_like_the_sync_hook(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch, changes: dict, says: tuple[str, ...]
) -> None:
    doto_emulator.add_account(7)
    conn_id = _connection(monkeypatch, doto_emulator, **changes)

    ok, text = asyncio.run(DotoAsyncHook(conn_id).test_connection())

    assert ok is (not changes), text
    for part in says:
        assert part in text
    assert doto_emulator.token not in text and "wrong-token-2" not in text
    assert (ok, text) == DotoHook(conn_id).test_connection()
