"""Server flavors in the pure core: detection, id paging, and the watch's id cursor.

The two fakes below answer like Doto's reference (``before``/``after`` are Unix timestamps, all
messages, strict bounds) and like Chatwoot's finder (``app/finders/message_finder.rb``: ids, page
caps 100/20/1000/20, ``before_timestamp``). The HTTP-level twins of these tests run against the
emulator in both flavors (tests/hooks, tests/integration).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api

T0 = 1_795_000_000  # a Unix time in late 2026
BIG_IDS = 2_000_000_000  # a large server's ids: above any Unix timestamp of this century


class FakeServer:
    """One conversation; ``visible=False`` messages are committed late (not yet listed)."""

    def __init__(self, flavor: str):
        self.flavor = flavor
        self.messages: list[dict] = []
        self.calls: list[dict] = []

    def add(self, mid: int, ts: int, *, visible: bool = True, **extra) -> dict:
        message = {"id": mid, "content": f"m{mid}", "message_type": 0, "created_at": ts, **extra}
        message["_visible"] = visible
        self.messages.append(message)
        return message

    def reveal(self, mid: int) -> None:
        next(m for m in self.messages if m["id"] == mid)["_visible"] = True

    def __call__(self, request: api.DotoRequest) -> api.DotoResponse:
        params = dict(request.params)
        self.calls.append(params)
        rows = [m for m in self.messages if m["_visible"]]
        rows = self._chatwoot(rows, params) if self.flavor == "chatwoot" else self._doto(rows, params)
        body = {"payload": [{k: v for k, v in m.items() if k != "_visible"} for m in rows]}
        return api.DotoResponse(200, {}, json.dumps(body).encode())

    @staticmethod
    def _doto(rows: list[dict], params: dict) -> list[dict]:
        after, before = params.get("after"), params.get("before")
        rows = [
            m
            for m in rows
            if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
        ]
        return sorted(rows, key=lambda m: (m["created_at"], m["id"]))

    @staticmethod
    def _chatwoot(rows: list[dict], params: dict) -> list[dict]:
        def by_time(ms, reverse=False):
            return sorted(ms, key=lambda m: (m["created_at"], m["id"]), reverse=reverse)

        after, before = params.get("after"), params.get("before")
        if after is not None and before is not None:
            return by_time([m for m in rows if after <= m["id"] < before])[:1000]
        if before is not None:
            return list(reversed(by_time([m for m in rows if m["id"] < before], reverse=True)[:20]))
        if after is not None:
            return by_time([m for m in rows if m["id"] > after])[:100]
        if "before_timestamp" in params:
            older = [m for m in rows if m["created_at"] < params["before_timestamp"]]
            return list(reversed(by_time(older, reverse=True)[:20]))
        return list(reversed(by_time(rows, reverse=True)[:20]))


def ids(messages) -> list[int]:
    return [m.id for m in messages]


def history(server: FakeServer, n: int, *, first_id: int, start: int, step: int = 1) -> list[int]:
    """``n`` messages, one a second from ``start``, ids ``first_id``, ``first_id + step``, ..."""
    return [server.add(first_id + i * step, start + i)["id"] for i in range(n)]


# ---- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize(
    "first_id",
    [1, 5_000, T0 - 500, T0 + 3, BIG_IDS],
    ids=["tiny-ids", "small-ids", "ids-just-below-times", "ids-among-times", "ids-above-times"],
)
def test_detection_in_every_id_regime(flavor, first_id):
    server = FakeServer(flavor)
    history(server, 30, first_id=first_id, start=T0, step=7)
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
    history(server, 5, first_id=100, start=T0)
    api.run_flow(api.list_messages_flow(1, 42, flavor=known), server)
    calls = len(server.calls)
    assert known.known == flavor and known.announce() == flavor and known.announce() is None
    api.run_flow(api.list_messages_flow(1, 42, flavor=known), server)
    assert len(server.calls) - calls == 1  # no second probe


def test_an_explicit_flavor_never_probes():
    server = FakeServer("chatwoot")
    history(server, 5, first_id=100, start=T0)
    result = api.run_flow(api.list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert ids(result) == [100, 101, 102, 103, 104]
    assert server.calls == [{"after": 0}]


def test_settings_read_the_flavor():
    def settings(**extra):
        return api.DotoSettings.from_connection_fields(
            "c", host="https://x.test", password="t", extra={"account_id": 1, **extra}
        )

    assert settings().flavor == "auto"
    assert settings(flavor="Chatwoot ").flavor == "chatwoot"
    assert settings(flavor="").flavor == "auto"
    with pytest.raises(api.DotoConfigError, match="flavor must be one of auto, doto, chatwoot, got 'rails'"):
        settings(flavor="rails")


# ---- listing under both flavors --------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["doto", "chatwoot", "auto"])
@pytest.mark.parametrize("server_flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("first_id", [1, BIG_IDS])
def test_the_same_messages_under_every_flavor(flavor, server_flavor, first_id):
    if flavor not in ("auto", server_flavor):
        pytest.skip("a flavor that contradicts the server is a misconfiguration")
    server = FakeServer(server_flavor)
    all_ids = history(server, 150, first_id=first_id, start=T0, step=3)

    def listed(**window):
        return ids(api.run_flow(api.list_messages_flow(1, 42, flavor=flavor, **window), server))

    assert listed() == all_ids
    assert listed(after=T0 + 99) == all_ids[100:]
    assert listed(before=T0 + 20) == all_ids[:20]
    assert listed(after=T0 + 9, before=T0 + 130) == all_ids[10:130]
    assert listed(after=T0 + 500) == []


def test_a_recent_window_does_not_read_the_whole_history():
    server = FakeServer("chatwoot")
    all_ids = history(server, 10_000, first_id=1, start=T0, step=2)
    found = api.run_flow(api.list_messages_flow(1, 42, after=T0 + 9_949, flavor="chatwoot"), server)
    assert ids(found) == all_ids[-50:]
    # One before_timestamp lookup of the window's first id, then one page forwards.
    assert server.calls == [
        {"before_timestamp": T0 + 9_949 - api.ID_ORDER_SLACK + 1},
        {"after": all_ids[9_949 - api.ID_ORDER_SLACK]},
    ]


def test_id_paging_survives_ids_out_of_time_order():
    """Concurrent inserts can number messages out of created_at order; paging must not skip one."""
    server = FakeServer("chatwoot")
    for i in range(250):
        # Every fifth message got its id a little before its neighbours' (and a later created_at).
        server.add(1000 + i, T0 + i + (1 if i % 5 == 0 else 0))
    found = api.run_flow(api.list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert sorted(ids(found)) == list(range(1000, 1250))


def test_soft_deleted_messages_are_recognised():
    server = FakeServer("chatwoot")
    server.add(7, T0, content="This message was deleted", content_attributes={"deleted": True})
    (message,) = api.run_flow(api.list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert message.is_deleted and message.message_type == "incoming"


# ---- the watch's id cursor ---------------------------------------------------------------


def poll(watch: api.MessageWatch, server: FakeServer, flavor="auto"):
    batch = api.run_flow(watch.poll_flow(1, 42, flavor), server)
    return None if batch is None else ids(batch)


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("size", [100, 10_000])
def test_an_idle_poll_costs_one_request_whatever_the_history(flavor, size):
    server = FakeServer(flavor)
    history(server, size, first_id=BIG_IDS if flavor == "chatwoot" else 1, start=T0 - size)
    watch = api.MessageWatch(start=T0)
    poll(watch, server)  # detection and the first lookup
    server.calls.clear()
    for _ in range(3):
        assert poll(watch, server) is None
    assert len(server.calls) == 3
    assert all("before_timestamp" not in c for c in server.calls)


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_late_commits_are_reported_once(flavor):
    server = FakeServer(flavor)
    history(server, 40, first_id=500, start=T0 - 40)
    watch = api.MessageWatch(start=T0)
    assert poll(watch, server) is None
    server.add(601, T0 + 1, visible=False)  # numbered first, committed last
    server.add(602, T0 + 2)
    assert poll(watch, server) == [602]
    server.reveal(601)
    server.add(603, T0 + 4)
    assert poll(watch, server) == [601, 603]
    assert poll(watch, server) is None


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_state_keeps_the_flavor_so_a_restart_does_not_probe(flavor):
    server = FakeServer(flavor)
    history(server, 10, first_id=BIG_IDS, start=T0 - 10)
    watch = api.MessageWatch(start=T0)
    poll(watch, server)
    state = json.loads(json.dumps(watch.to_state()))
    assert state["flavor"] == flavor
    restarted = api.MessageWatch(start=T0).restore(state)
    server.calls.clear()
    server.add(BIG_IDS + 50, T0 + 3)
    assert poll(restarted, server, api.ServerFlavor("auto")) == [BIG_IDS + 50]
    assert len(server.calls) == 1


def test_auto_on_an_empty_conversation_costs_one_request_until_the_first_message():
    server = FakeServer("chatwoot")
    watch, known = api.MessageWatch(start=T0), api.ServerFlavor("auto")
    for _ in range(3):
        assert poll(watch, server, known) is None
    assert server.calls == [{}, {}, {}]
    server.add(BIG_IDS, T0 + 1)
    assert poll(watch, server, known) == [BIG_IDS]
    assert known.detected == "chatwoot"


@settings(max_examples=150, deadline=None)
@given(
    flavor=st.sampled_from(["doto", "chatwoot"]),
    first_id=st.sampled_from([1, T0 - 3, BIG_IDS]),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4), st.booleans()), min_size=1, max_size=40),
    restart_every=st.integers(0, 5),
)
def test_no_loss_no_repeat_under_late_commits(flavor, first_id, steps, restart_every):
    """Messages arrive in bursts, some committed late (by less than the overlap): each is reported once."""
    server = FakeServer(flavor)
    history(server, 25, first_id=first_id, start=T0 - 30, step=3)
    watch, known = api.MessageWatch(start=T0), api.ServerFlavor("auto")
    next_id, now, hidden, reported, expected = first_id + 1000, T0, [], [], []
    for i, (burst, advance, late) in enumerate(steps):
        now += advance
        while hidden:  # committed one poll late, a few seconds: well inside the overlap
            server.reveal(hidden.pop())
        for _ in range(burst):
            server.add(next_id, now, visible=not late)
            (hidden if late else []).append(next_id)
            expected.append(next_id)
            next_id += 1 + (next_id % 3)
        if restart_every and i % restart_every == 0:
            watch = api.MessageWatch(start=T0).restore(json.loads(json.dumps(watch.to_state())))
        reported += poll(watch, server, known) or []
    for mid in hidden:
        server.reveal(mid)
    reported += poll(watch, server, known) or []
    assert sorted(reported) == sorted(expected)
    assert len(reported) == len(set(reported))
