"""Server differences against the real emulator, in both flavors: the connection test, bot tokens,
404s that name the Base URL, missing_ok deletes in a missing conversation, the 422 flood guard,
the content limit and sender-type spellings."""

from __future__ import annotations

import asyncio
import json
import math
import sys

import pytest
import tenacity

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError, DotoNotFoundError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

FLAVORS = ["doto", "chatwoot"]
BOT_TOKEN = "bot-token-7d1e"
# Both flavors: tests/conftest.py parametrizes the hooks suite's emulator over them; until it does,
# this module does it itself.
_conftest = sys.modules.get("tests.conftest")
if "hooks" not in getattr(_conftest, "FLAVORED_SUITES", ()):
    pytestmark = pytest.mark.parametrize("doto_emulator", FLAVORS, indirect=True)


def connection(monkeypatch, emu: DotoEmulator, conn_id: str = "doto_x", **changes) -> str:
    """A connection to the emulator with some fields changed (host, password, account_id)."""
    conn = json.loads(emu.connection_json())
    for key, value in changes.items():
        if key == "account_id":
            conn["extra"]["account_id"] = value
        else:
            conn[key] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


# -- test_connection ----------------------------------------------------------------------------


def test_connection_ok(doto_emulator: DotoEmulator) -> None:
    ok, text = DotoHook().test_connection()
    assert ok, text
    assert text.startswith(f"Connected to Doto at {doto_emulator.base_url} as ")
    assert text.endswith(", account 1 (administrator).")
    assert [r.path for r in doto_emulator.requests] == ["/api/v1/profile"]


def test_connection_async_twin(doto_emulator: DotoEmulator) -> None:
    assert asyncio.run(DotoAsyncHook().test_connection()) == DotoHook().test_connection()


def test_connection_wrong_account(doto_emulator: DotoEmulator, monkeypatch) -> None:
    doto_emulator.add_account(7)
    ok, text = DotoHook(connection(monkeypatch, doto_emulator, account_id=99)).test_connection()
    assert not ok
    assert "does not belong to account 99" in text and "1 (Account 1), 7 (Account 7)" in text
    assert doto_emulator.token not in text


def test_connection_wrong_path(doto_emulator: DotoEmulator, monkeypatch) -> None:
    base = doto_emulator.base_url + "/chatwoot"
    ok, text = DotoHook(connection(monkeypatch, doto_emulator, host=base)).test_connection()
    assert not ok
    assert f"no Doto API at {base}: check the Base URL (its path)" in text


def test_connection_wrong_token(doto_emulator: DotoEmulator, monkeypatch) -> None:
    ok, text = DotoHook(connection(monkeypatch, doto_emulator, password="wrong-token-1")).test_connection()
    assert not ok
    assert "HTTP 401" in text and "Invalid Access Token" in text and "wrong-token-1" not in text


def test_connection_bot_token(doto_emulator: DotoEmulator, monkeypatch) -> None:
    doto_emulator.add_bot_token(BOT_TOKEN)
    ok, text = DotoHook(connection(monkeypatch, doto_emulator, password=BOT_TOKEN)).test_connection()
    assert not ok
    assert "agent bot" in text and "only send" in text and BOT_TOKEN not in text


# -- bot tokens, 404s ---------------------------------------------------------------------------


def test_bot_token_sends_but_cannot_list(doto_emulator: DotoEmulator, monkeypatch) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_bot_token(BOT_TOKEN)
    hook = DotoHook(connection(monkeypatch, emu, password=BOT_TOKEN))
    sent = hook.send_message(cid, "hello from the bot")
    assert [m["id"] for m in emu.messages(cid)] == [sent.id]
    with pytest.raises(DotoAuthError, match=r"belongs to an agent bot.*only send") as err:
        hook.list_messages(cid)
    assert err.value.status == 401 and BOT_TOKEN not in str(err.value)


def test_missing_conversation_404_names_the_base_url(doto_emulator: DotoEmulator) -> None:
    with pytest.raises(DotoNotFoundError) as err:
        DotoHook().list_messages(999)
    assert f"Resource could not be found (at {doto_emulator.base_url})" in str(err.value)


def test_wrong_path_404_says_no_doto_api(doto_emulator: DotoEmulator, monkeypatch) -> None:
    cid = doto_emulator.add_conversation()
    base = doto_emulator.base_url + "/wrong"
    hook = DotoHook(connection(monkeypatch, doto_emulator, host=base))
    with pytest.raises(DotoNotFoundError, match=rf"no Doto API at {base}: check the Base URL"):
        hook.send_message(cid, "hello")
    assert doto_emulator.messages(cid) == []


# -- deletes ------------------------------------------------------------------------------------


def test_delete_missing_ok_in_a_missing_conversation_raises(doto_emulator: DotoEmulator) -> None:
    with pytest.raises(DotoNotFoundError, match=r"conversation 999 does not exist in account 1"):
        DotoHook().delete_message(999, 5, missing_ok=True)


def test_delete_missing_ok_for_a_missing_message(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.add_message(cid, "keep me")
    assert DotoHook().delete_message(cid, 12345, missing_ok=True) is False
    with pytest.raises(DotoNotFoundError):
        DotoHook().delete_message(cid, 12345)


def test_delete_twice(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    mid = emu.add_message(cid, "oops")["id"]
    hook = DotoHook()
    assert hook.delete_message(cid, mid) is True
    # Chatwoot deletes softly (a second DELETE answers 200); Doto's reference forgets the message.
    assert hook.delete_message(cid, mid, missing_ok=True) is (emu.flavor == "chatwoot")


# -- flood guard, content limit -----------------------------------------------------------------


def test_flood_guard_burst_sends_every_message_exactly_once(doto_emulator: DotoEmulator, monkeypatch) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.set_message_rate_limit(3, window=10)
    # Sleeping advances the emulator's clock instead: the guard's window passes without waiting.
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        emu.clock.advance(math.ceil(seconds))

    monkeypatch.setattr(tenacity.nap.time, "sleep", sleep)
    hook = DotoHook(retry_policy=api.RetryPolicy(attempts=6, backoff=1.0))
    contents = [f"burst {i}" for i in range(8)]
    sent = [hook.send_message(cid, text) for text in contents]
    assert [m.content for m in sent] == contents
    assert sorted(m["content"] for m in emu.messages(cid)) == sorted(contents)  # none lost, none twice
    posts = [r for r in emu.requests if r.method == "POST"]
    assert len(posts) > len(contents) and waits  # the guard was hit, and waited out


def test_content_over_the_limit_is_refused_before_sending(doto_emulator: DotoEmulator) -> None:
    cid = doto_emulator.add_conversation()
    with pytest.raises(DotoConfigError, match=r"150,001 characters.*150,000"):
        DotoHook().send_message(cid, "x" * 150_001)
    assert doto_emulator.requests == []


# -- sender types -------------------------------------------------------------------------------


def test_sender_type_filter_matches_either_spelling(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    start = emu.clock.now() - 5
    emu.add_message(cid, "customer", sender_type="Contact", created_at=start + 1)
    emu.add_message(cid, "bot", sender_type="AgentBot", created_at=start + 2)
    emu.add_message(cid, "agent", message_type="outgoing", sender_type="User", created_at=start + 3)
    hook = DotoHook()
    for wanted, expected in (
        (["Contact"], ["customer"]),
        (["contact"], ["customer"]),
        (["AgentBot"], ["bot"]),
        (["agent_bot"], ["bot"]),
    ):
        watch = api.MessageWatch(start=start, filter=api.MessageFilter(sender_types=wanted))
        assert [m.content for m in hook.poll(watch, cid) or []] == expected, wanted
    watch = api.MessageWatch(
        start=start, filter=api.MessageFilter(message_types=["outgoing"], sender_types=["user"])
    )
    assert [m.content for m in hook.poll(watch, cid) or []] == ["agent"]
