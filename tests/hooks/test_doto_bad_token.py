"""A token no header can carry (a secret file's trailing newline, a pasted space) on both hooks.

Both hooks read the connection through ``DotoSettings``, which refuses such a token with a
``DotoConfigError`` naming the API Token field and the connection, before anything is sent. The
token shows nowhere: not in the error's text or repr, nor in its formatted traceback (the text a
task log prints). And should a bad header still reach a client (settings built by hand, past that
check), the client's refusal is a ``DotoConfigError`` raised ``from None``: requests' InvalidHeader
quotes the header's value, escaped so that Airflow's secret masker would miss it.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from typing import Any

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

pytestmark = pytest.mark.doto_flavor("doto")  # nothing here depends on the server's flavor

CONN_ID = "doto_pasted"
BAD_TOKENS = {
    "trailing newline": "{token}\n",
    "trailing CRLF": "{token}\r\n",
    "trailing space": "{token} ",
    "leading space": " {token}",
    "tab inside": "doto-test\ttoken",
}


def _run(hook_kind: str, conn_id: str = CONN_ID, settings: api.DotoSettings | None = None) -> Any:
    """One listing through the hook of that kind (``settings``: given, instead of read)."""
    if hook_kind == "sync":
        hook = DotoHook(conn_id)
        if settings is not None:
            hook.__dict__["settings"] = settings
        return hook.list_messages(1)
    async_hook = DotoAsyncHook(conn_id)
    async_hook._settings = settings
    return asyncio.run(async_hook.list_messages(1))


def assert_token_hidden(error: BaseException, token: str) -> None:
    """Neither the token nor its escaped form in the error's text, repr or printed traceback."""
    shown = [str(error), repr(error), "".join(traceback.format_exception(error))]
    for form in (token, repr(token)[1:-1], token.strip()):
        for text in shown:
            assert form not in text, text[:300]


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_token_with_whitespace_is_refused_naming_the_api_token_field(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch, hook_kind: str, case: str
) -> None:
    token = BAD_TOKENS[case].format(token=doto_emulator.token)
    conn = {**json.loads(doto_emulator.connection_json()), "password": token}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    with pytest.raises(DotoConfigError) as raised:
        _run(hook_kind)
    text = str(raised.value)
    assert f"Doto connection {CONN_ID!r}: the API Token (the connection's password) has " in text
    assert "Base URL" not in text
    assert_token_hidden(raised.value, token)
    assert doto_emulator.requests == []  # refused before anything was sent


@pytest.mark.parametrize(
    ("hook_kind", "case"),
    # (aiohttp sends a leading space: the server trims it. Only what a client refuses is here.)
    [("sync", "trailing newline"), ("sync", "leading space"), ("async", "trailing newline")],
)
def test_a_header_the_client_refuses_is_a_config_error_without_its_cause(
    doto_emulator: DotoEmulator, hook_kind: str, case: str
) -> None:
    """Past the settings check (settings built by hand), the HTTP client's own refusal: requests'
    InvalidHeader quotes the value (escaped), aiohttp raises a bare ValueError. Either becomes a
    DotoConfigError naming the API Token, raised from None."""
    token = BAD_TOKENS[case].format(token=doto_emulator.token)
    settings = api.DotoSettings(doto_emulator.base_url, token, doto_emulator.account_id, conn_id=CONN_ID)
    with pytest.raises(DotoConfigError) as raised:
        _run(hook_kind, settings=settings)
    assert "refused the request before connecting" in str(raised.value)
    assert "API Token" in str(raised.value)
    assert raised.value.__cause__ is None
    assert_token_hidden(raised.value, token)
    assert doto_emulator.requests == []
