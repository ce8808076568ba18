"""``_flavors``: detecting how a server reads before/after, once."""

from __future__ import annotations

import pytest

from airflow_provider_doto import api

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
    assert api.run_flow(api.detect_flavor_flow(1, 42), server) == flavor
    assert len(server.calls) == 2


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_detection_waits_while_the_conversation_is_empty(flavor):
    server = FakeServer(flavor)
    assert api.run_flow(api.detect_flavor_flow(1, 42), server) is None
    assert server.calls == [{}]


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_detection_is_kept_once_found(flavor):
    server, known = FakeServer(flavor), api.ServerFlavor("auto")
    history(server, 5, first_id=100, start=T2026)
    api.run_flow(api.list_messages_flow(1, 42, flavor=known), server)
    calls = len(server.calls)
    assert known.known == flavor and known.announce() == flavor and known.announce() is None
    api.run_flow(api.list_messages_flow(1, 42, flavor=known), server)
    assert len(server.calls) - calls == 1  # no second probe


def test_an_explicit_flavor_never_probes():
    server = FakeServer("chatwoot")
    history(server, 5, first_id=100, start=T2026)
    result = api.run_flow(api.list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert ids(result) == [100, 101, 102, 103, 104]
    assert server.calls == [{"after": 0}]
