"""Server flavors over real HTTP: both hooks against both emulator personalities, ``auto`` included."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import DotoConfigError
from airflow_provider_doto.hooks.doto import DotoHook
from airflow_provider_doto.hooks.doto_async import DotoAsyncHook
from airflow_provider_doto.testing.emulator import DotoEmulator

BIG_IDS = 2_000_000_000  # a large server: ids above every Unix timestamp of this century


def gets(emu: DotoEmulator, cid: int) -> list[dict]:
    return [r.query for r in emu.requests if r.method == "GET" and f"/conversations/{cid}/messages" in r.path]


def seed(emu: DotoEmulator, cid: int, count: int, *, until: int) -> list[int]:
    return [emu.add_message(cid, f"old {i}", created_at=until - count + i)["id"] for i in range(count)]


@pytest.mark.doto_flavor("doto")
@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("first_id", [1, BIG_IDS], ids=["small-ids", "ids-above-timestamps"])
def test_auto_detects_the_server_once_and_logs_it(
    doto_emulator: DotoEmulator, caplog: pytest.LogCaptureFixture, flavor: str, first_id: int
) -> None:
    emu = doto_emulator
    emu.reset(flavor=flavor, first_message_id=first_id)
    cid = emu.add_conversation()
    now = emu.clock.now()
    ids = seed(emu, cid, 150, until=now)
    caplog.set_level(logging.INFO, logger="airflow_provider_doto")
    hook = DotoHook()
    assert [m.id for m in hook.list_messages(cid)] == ids
    assert [m.id for m in hook.list_messages(cid, after=now - 31)] == ids[-30:]
    assert [m.id for m in asyncio.run(DotoAsyncHook().list_messages(cid, before=now - 140))] == ids[:10]
    found = [r.getMessage() for r in caplog.records if "detected" in r.getMessage()]
    assert len(found) == 1 and f"(flavor {flavor!r}, detected)" in found[0]
    probes = [q for q in gets(emu, cid) if "before" in q and "after" in q]
    assert len(probes) == 1  # one probe for the process, shared by both hooks


@pytest.mark.doto_flavor("doto")
@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("history", [100, 10_000])
def test_an_idle_poke_is_one_request_whatever_the_history(
    doto_emulator: DotoEmulator, flavor: str, history: int
) -> None:
    emu = doto_emulator
    emu.reset(flavor=flavor, first_message_id=BIG_IDS if flavor == "chatwoot" else 1)
    cid = emu.add_conversation()
    start = emu.clock.now()
    seed(emu, cid, history, until=start - 60)
    hook, watch = DotoHook(), api.MessageWatch(start=start)
    assert hook.poll(watch, cid) is None  # detection and, on Chatwoot, the window's first id
    emu.clear_requests()
    for _ in range(5):
        assert hook.poll(watch, cid) is None
    requests = gets(emu, cid)
    assert len(requests) == 5
    assert all(set(q) == {"after"} for q in requests)
    emu.add_message(cid, "a new one", message_type="incoming")
    batch = hook.poll(watch, cid)
    assert batch is not None and [m.content for m in batch] == ["a new one"]
    assert watch.reading.known == flavor


@pytest.mark.doto_flavor("chatwoot")
def test_an_explicit_flavor_never_probes(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = doto_emulator
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", emu.connection_json(flavor="chatwoot"))
    cid = emu.add_conversation()
    seed(emu, cid, 3, until=emu.clock.now())
    assert len(DotoHook().list_messages(cid)) == 3
    assert gets(emu, cid) == [{"after": "0"}]


@pytest.mark.doto_flavor("chatwoot")
def test_a_wrong_flavor_is_refused_by_name(
    doto_emulator: DotoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_DEFAULT", doto_emulator.connection_json(flavor="rails"))
    with pytest.raises(DotoConfigError, match="'doto_default': flavor must be one of auto, doto, chatwoot"):
        DotoHook().list_messages(1)
