"""``_flavors``: detecting how a server reads before/after, once."""

from __future__ import annotations

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._flavors import detect_flavor_flow, resolve_flow
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._listing import list_messages_flow
from airflow_provider_doto.exceptions import DotoConfigError

from ._support import BIG_IDS, T2026, FakeServer, history, ids


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize(
    "first_id",
    [1, 5_000, T2026 - 500, T2026 + 3, BIG_IDS],
    ids=["tiny-ids", "small-ids", "ids-just-below-times", "ids-among-times", "ids-above-times"],
)
def test_detection_in_every_id_regime(flavor, first_id):
    server = FakeServer(flavor)
    history(server, 30, first_id=first_id, start=T2026, step=7)
    assert run_flow(detect_flavor_flow(1, 42), server) == flavor
    assert len(server.calls) == 2


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_detection_waits_while_the_conversation_is_empty(flavor):
    server = FakeServer(flavor)
    assert run_flow(detect_flavor_flow(1, 42), server) is None
    assert server.calls == [{}]


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_detection_returns_a_new_reading_that_needs_no_second_probe(flavor):
    server, auto = FakeServer(flavor), api.ServerReading()
    history(server, 5, first_id=100, start=T2026)
    known = run_flow(resolve_flow(auto, 1, 42), server)
    assert known == api.ServerReading("auto", detected=flavor) and known.known == flavor
    assert auto.known is None  # the caller's value is never changed
    calls = len(server.calls)
    assert run_flow(resolve_flow(known, 1, 42), server) is known
    run_flow(list_messages_flow(1, 42, flavor=known), server)
    assert len(server.calls) - calls == 1  # no second probe


def test_an_empty_conversation_leaves_the_reading_unknown():
    server = FakeServer("chatwoot")
    assert run_flow(resolve_flow(api.ServerReading(), 1, 42), server) == api.ServerReading()


def test_a_configured_reading_learns_nothing():
    assert api.ServerReading("doto").learned("chatwoot").known == "doto"
    assert api.ServerReading().learned("chatwoot").learned("doto").known == "chatwoot"
    with pytest.raises(DotoConfigError, match="flavor must be one of"):
        api.ServerReading("rails")


def test_an_explicit_flavor_never_probes():
    server = FakeServer("chatwoot")
    history(server, 5, first_id=100, start=T2026)
    result = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert ids(result) == [100, 101, 102, 103, 104]
    assert server.calls == [{"after": 0}]
