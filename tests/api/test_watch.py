"""``_watch``: the MessageWatch cursor (overlap, de-duplication, state) and MessageFilter."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.exceptions import DotoConfigError

from . import _support
from ._support import BIG_IDS, T0, T2026, FakeServer, capped_server, history, ids, msg


class Conversation:
    """A capped server whose messages the test adds over time."""

    def __init__(self):
        self.messages: list[dict] = []
        self.calls: list[dict] = []

    def add(self, mid, ts, message_type="incoming", **extra):
        self.messages.append(msg(mid, ts, message_type, **extra))

    def delete(self, mid):
        for m in self.messages:
            if m["id"] == mid:
                m["content"] = "This message was deleted"
                m["content_attributes"] = {"deleted": True}

    def poll(self, watch: api.MessageWatch):
        server = capped_server(self.messages)
        result = run_flow(watch.poll_flow(1, 42, "doto"), server)
        self.calls.extend(server.calls)
        return None if result is None else ids(result)


class TestMessageWatch:
    def test_new_means_at_or_after_start(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0)
        conv.add(1, T0 - 1)
        assert conv.poll(watch) is None
        conv.add(2, T0)
        conv.add(3, T0 + 1)
        assert conv.poll(watch) == [2, 3]
        assert conv.poll(watch) is None

    def test_polls_with_overlap_behind_the_cursor(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0, overlap=10)
        assert watch.poll_after == T0 - 1 - 10
        conv.add(1, T0 + 30)
        conv.poll(watch)
        assert watch.position == T0 + 30
        conv.poll(watch)
        assert [c["after"] for c in conv.calls] == [T0 - 11, T0 + 20]

    def test_message_sharing_the_cursors_second(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0)
        conv.add(1, T0 + 5)
        assert conv.poll(watch) == [1]
        conv.add(2, T0 + 5)  # committed after the poll, same second as the cursor
        assert conv.poll(watch) == [2]
        assert conv.poll(watch) is None

    def test_late_message_is_still_reported(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0)
        conv.add(10, T0 + 8)
        assert conv.poll(watch) == [10]
        conv.add(9, T0 + 3)  # older created_at, appears after a newer one was seen
        assert conv.poll(watch) == [9]
        assert conv.poll(watch) is None

    def test_deleted_never_reported(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0)
        conv.add(1, T0, content_attributes={"deleted": True}, content="This message was deleted")
        conv.add(2, T0 + 1)
        assert conv.poll(watch) == [2]
        conv.delete(2)
        conv.add(3, T0 + 2)
        conv.delete(3)
        assert conv.poll(watch) is None

    def test_filters(self):
        conv = Conversation()
        conv.add(1, T0, "outgoing")
        conv.add(2, T0, "incoming", private=True)
        conv.add(
            3, T0, "incoming", content="please call me", sender={"id": 1, "name": "J", "type": "contact"}
        )
        conv.add(4, T0, "incoming", content="thanks", sender={"id": 1, "name": "J", "type": "contact"})
        conv.add(5, T0, 2, content="Conversation resolved")
        conv.add(6, T0, "outgoing", private=True, sender={"id": 2, "name": "A", "type": "user"})
        assert conv.poll(api.MessageWatch(start=T0)) == [3, 4]
        assert conv.poll(api.MessageWatch(start=T0, filter=api.MessageFilter(include_private=True))) == [
            2,
            3,
            4,
        ]
        assert conv.poll(api.MessageWatch(start=T0, filter=api.MessageFilter(content_pattern=r"call"))) == [3]
        assert conv.poll(
            api.MessageWatch(
                start=T0,
                filter=api.MessageFilter(
                    message_types=("outgoing",), include_private=True, sender_types=("user",)
                ),
            )
        ) == [6]
        assert conv.poll(
            api.MessageWatch(start=T0, filter=api.MessageFilter(message_types=["activity"]))
        ) == [5]

    def test_min_messages_accumulates(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0, min_messages=3)
        conv.add(1, T0)
        conv.add(2, T0 + 1)
        assert conv.poll(watch) is None
        assert conv.poll(watch) is None
        conv.add(3, T0 + 2)
        conv.add(4, T0 + 2)
        assert conv.poll(watch) == [1, 2, 3, 4]
        assert watch.matched == []

    def test_state_round_trips_through_json(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0, min_messages=3)
        conv.add(1, T0 + 1)
        conv.add(2, T0 + 2)
        assert conv.poll(watch) is None
        state = json.loads(json.dumps(watch.to_state()))
        restored = api.MessageWatch(start=T0, min_messages=3).restore(state)
        assert (restored.position, restored.seen, restored.matched) == (
            watch.position,
            watch.seen,
            watch.matched,
        )
        conv.add(3, T0 + 2)
        assert conv.poll(restored) == [1, 2, 3]
        assert conv.poll(restored) is None

    def test_restore_ignores_foreign_state(self):
        watch = api.MessageWatch(start=T0)
        other = api.MessageWatch(start=T0 + 5, position=T0 + 50, seen={1: T0 + 50})
        assert watch.restore(other.to_state()).position == T0 - 1
        assert watch.restore(None).seen == {}
        assert watch.restore({}).position == T0 - 1

    def test_cursor_never_moves_back(self):
        watch = api.MessageWatch(start=T0)
        watch.feed([parse_message(msg(1, T0 + 10))])
        watch.feed([parse_message(msg(2, T0 + 3))])
        assert watch.position == T0 + 10
        watch.feed([])
        assert watch.position == T0 + 10

    def test_seen_stays_bounded(self):
        conv, watch = Conversation(), api.MessageWatch(start=T0, overlap=5)
        for i in range(200):
            conv.add(i + 1, T0 + i)
        conv.poll(watch)
        assert max(watch.seen.values()) - min(watch.seen.values()) <= 5
        assert len(watch.seen) <= 6

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"min_messages": 0},
            {"min_messages": True},
            {"min_messages": "1"},
            {"overlap": -1},
            {"overlap": 1.5},
            {"overlap": False},
        ],
    )
    def test_validation(self, kwargs):
        with pytest.raises(DotoConfigError):
            api.MessageWatch(start=T0, **kwargs)

    @settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), overlap=st.integers(1, 12))
    def test_property_each_new_message_reported_exactly_once(self, data, overlap):
        """Messages arrive over many polls, some committed late (up to overlap-1 seconds behind the
        newest one already visible), several per second; each is reported exactly once."""
        conv, watch = Conversation(), api.MessageWatch(start=T0, overlap=overlap)
        newest, next_id, reported = T0, 1, []
        for _ in range(data.draw(st.integers(1, 8), label="polls")):
            for _ in range(data.draw(st.integers(0, 30), label="arrivals")):
                ts = newest + data.draw(st.integers(-(overlap - 1), 3), label="offset")
                kind = data.draw(st.sampled_from(["incoming", "incoming", "outgoing", "deleted"]))
                if kind == "deleted":
                    conv.add(next_id, ts, content_attributes={"deleted": True})
                else:
                    conv.add(next_id, ts, kind)
                newest, next_id = max(newest, ts), next_id + 1
            batch = conv.poll(watch)
            reported.extend(batch or [])
            state = json.loads(json.dumps(watch.to_state()))
            watch = api.MessageWatch(start=T0, overlap=overlap).restore(state)
        reported.extend(conv.poll(watch) or [])
        expected = [
            m["id"]
            for m in conv.messages
            if m["created_at"] >= T0 and m["message_type"] == "incoming" and not m.get("content_attributes")
        ]
        assert sorted(reported) == sorted(expected)
        assert len(reported) == len(set(reported))


class TestBatchesInFlight:
    """A watcher's batches stay in the state from before their event leaves until it is surely stored."""

    def watch_with_batch(self, conv: Conversation, *mids: int) -> tuple[api.MessageWatch, list]:
        watch = api.MessageWatch(start=T0)
        for i, mid in enumerate(mids):
            conv.add(mid, T0 + i)
        batch = run_flow(watch.poll_flow(1, 42, "doto"), capped_server(conv.messages))
        assert batch is not None
        return watch, batch

    def watch_with_two_batches(self, conv: Conversation) -> tuple[api.MessageWatch, list]:
        """Batch [1] announced and handed over at 1000 s; batch [2] polled, not announced yet."""
        watch, first = self.watch_with_batch(conv, 1)
        watch.announce(first)
        watch.handed_over(now=1000.0)
        conv.add(2, T0 + 3)
        return watch, run_flow(watch.poll_flow(1, 42, "doto"), capped_server(conv.messages))

    def test_an_announced_batch_is_in_the_state_until_it_settles(self):
        conv = Conversation()
        watch, batch = self.watch_with_batch(conv, 1, 2)
        watch.announce(batch)
        assert [[m["id"] for m in b] for b in watch.to_state()["pending"]] == [[1, 2]]
        assert not watch.settle(now=1000.0, after=10)  # not handed over yet: kept, whatever the time
        watch.handed_over(now=1000.0)
        assert not watch.settle(now=1009.9, after=10)
        assert watch.in_flight() and "pending" in watch.to_state()
        assert watch.settle(now=1010.0, after=10)
        assert watch.in_flight() == [] and "pending" not in watch.to_state()

    def test_the_sensors_state_keeps_its_shape(self):
        conv = Conversation()
        watch, _ = self.watch_with_batch(conv, 1)
        assert "pending" not in watch.to_state()

    def test_a_restored_watch_announces_the_pending_batch_again_and_nothing_else(self):
        conv = Conversation()
        watch, batch = self.watch_with_batch(conv, 1, 2)
        watch.announce(batch)
        saved = json.loads(json.dumps(watch.to_state()))  # what the killed triggerer left

        again = api.MessageWatch(start=T0).restore(saved)
        assert ids(again.in_flight()) == [1, 2]
        assert [m.to_dict() for m in again.in_flight()] == [m.to_dict() for m in batch]
        assert conv.poll(again) is None  # the cursor is past them: they come back only as in flight
        conv.add(3, T0 + 5)
        assert conv.poll(again) == [3]
        assert ids(again.in_flight()) == [1, 2]  # still pending: not handed over again yet

    def test_several_pending_batches_come_back_as_one_each_message_once(self):
        watch, second = self.watch_with_two_batches(Conversation())
        watch.announce(second)
        watch.announce(second)  # announced twice (a re-announcement): still each message once
        assert watch.settle(now=1001.0, after=10) is False
        again = api.MessageWatch(start=T0).restore(watch.to_state())
        assert len(again.pending) == 1 and ids(again.in_flight()) == [1, 2]

    def test_only_batches_handed_over_long_enough_ago_settle(self):
        watch, second = self.watch_with_two_batches(Conversation())
        watch.announce(second)
        watch.handed_over(now=1008.0)
        assert watch.settle(now=1010.0, after=10)
        assert ids(watch.in_flight()) == [2]

    def test_a_state_from_another_start_brings_no_pending_batch(self):
        conv = Conversation()
        watch, batch = self.watch_with_batch(conv, 1)
        watch.announce(batch)
        assert api.MessageWatch(start=T0 + 1).restore(watch.to_state()).in_flight() == []
        assert api.MessageWatch(start=T0).restore({**watch.to_state(), "pending": []}).pending == []


class TestMessageFilter:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"message_types": "incoming"},
            {"message_types": ("incoming", "bogus")},
            {"include_private": "yes"},
            {"content_pattern": "("},
        ],
    )
    def test_validation(self, kwargs):
        with pytest.raises(DotoConfigError):
            api.MessageFilter(**kwargs)

    def test_single_sender_type_string(self):
        assert api.MessageFilter(sender_types="contact").sender_types == ("contact",)

    def test_dict_round_trip(self):
        f = api.MessageFilter(
            message_types=["incoming", "outgoing"],
            include_private=True,
            sender_types=["contact"],
            content_pattern="^hi",
        )
        again = api.MessageFilter.from_dict(json.loads(json.dumps(f.to_dict())))
        assert again == f
        assert api.MessageFilter.from_dict({}) == api.MessageFilter()


# --------------------------------------------------------------------------------------------
# The watch's id cursor under both server flavors
# --------------------------------------------------------------------------------------------


def poll(watch: api.MessageWatch, server: FakeServer, flavor="auto"):
    batch = run_flow(watch.poll_flow(1, 42, flavor), server)
    return None if batch is None else ids(batch)


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("size", [100, 10_000])
def test_an_idle_poll_costs_one_request_whatever_the_history(flavor, size):
    server = FakeServer(flavor)
    history(server, size, first_id=BIG_IDS if flavor == "chatwoot" else 1, start=T2026 - size)
    watch = api.MessageWatch(start=T2026)
    poll(watch, server)  # detection and the first lookup
    server.calls.clear()
    for _ in range(3):
        assert poll(watch, server) is None
    assert len(server.calls) == 3
    assert all("before_timestamp" not in c for c in server.calls)


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_late_commits_are_reported_once(flavor):
    server = FakeServer(flavor)
    history(server, 40, first_id=500, start=T2026 - 40)
    watch = api.MessageWatch(start=T2026)
    assert poll(watch, server) is None
    server.add(601, T2026 + 1, visible=False)  # numbered first, committed last
    server.add(602, T2026 + 2)
    assert poll(watch, server) == [602]
    server.reveal(601)
    server.add(603, T2026 + 4)
    assert poll(watch, server) == [601, 603]
    assert poll(watch, server) is None


@pytest.mark.parametrize("flavor", ["doto", "chatwoot"])
def test_state_keeps_the_flavor_so_a_restart_does_not_probe(flavor):
    server = FakeServer(flavor)
    history(server, 10, first_id=BIG_IDS, start=T2026 - 10)
    watch = api.MessageWatch(start=T2026)
    poll(watch, server)
    state = json.loads(json.dumps(watch.to_state()))
    assert state["flavor"] == flavor
    restarted = api.MessageWatch(start=T2026).restore(state)
    server.calls.clear()
    server.add(BIG_IDS + 50, T2026 + 3)
    assert poll(restarted, server, api.ServerReading()) == [BIG_IDS + 50]
    assert len(server.calls) == 1


def test_auto_on_an_empty_conversation_costs_one_request_until_the_first_message():
    server = FakeServer("chatwoot")
    watch = api.MessageWatch(start=T2026)
    for _ in range(3):
        assert poll(watch, server) is None
    assert server.calls == [{}, {}, {}]
    server.add(BIG_IDS, T2026 + 1)
    assert poll(watch, server) == [BIG_IDS]
    assert watch.reading.known == "chatwoot"


@settings(max_examples=150, deadline=None)
@given(
    flavor=st.sampled_from(["doto", "chatwoot"]),
    first_id=st.sampled_from([1, T2026 - 3, BIG_IDS]),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4), st.booleans()), min_size=1, max_size=40),
    restart_every=st.integers(0, 5),
)
def test_no_loss_no_repeat_under_late_commits(flavor, first_id, steps, restart_every):
    """Messages arrive in bursts, some committed late (by less than the overlap): each is reported once."""
    server = FakeServer(flavor)
    history(server, 25, first_id=first_id, start=T2026 - 30, step=3)
    watch, known = api.MessageWatch(start=T2026), api.ServerReading()
    next_id, now, hidden, reported, expected = first_id + 1000, T2026, [], [], []
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
            watch = api.MessageWatch(start=T2026).restore(json.loads(json.dumps(watch.to_state())))
        reported += poll(watch, server, known) or []
    for mid in hidden:
        server.reveal(mid)
    reported += poll(watch, server, known) or []
    assert sorted(reported) == sorted(expected)
    assert len(reported) == len(set(reported))


def test_a_lower_id_created_2_s_after_a_higher_one_and_committed_late_inside_the_overlap():
    """The id cursor passes an id only once it is ID_ORDER_SLACK further behind than the overlap:
    a lower id can be created that much later (concurrent inserts) and commit late."""
    for flavor in ("doto", "chatwoot"):
        server = FakeServer(flavor)
        history(server, 20, first_id=100, start=T2026 - 20)
        watch, reported = api.MessageWatch(start=T2026), []
        reported += poll(watch, server, flavor) or []
        server.add(700, T2026)  # numbered after the next one, created 2 s before it
        server.add(690, T2026 + 2, visible=False)
        for i in range(1, 10):
            server.add(700 + i, T2026 + 2 + i)
            reported += poll(watch, server, flavor) or []
        # The newest seen is 9 s after message 690: inside the 10 s overlap, so it must be found.
        server.reveal(690)
        reported += poll(watch, server, flavor) or []
        assert sorted(reported) == [690, *range(700, 710)], flavor


# What the busy watch property draws besides the busy seconds and renumbered messages: messages
# committed late (by less than the overlap), how often the watch polls (seconds) and how often it
# restarts from its JSON state.
LATE = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, api.DEFAULT_OVERLAP - 1)), max_size=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flavor=st.sampled_from(["doto", "chatwoot"]),
    per_second=_support.busy_seconds(8),
    renumbered=_support.RENUMBERED,
    late=LATE,
    poll_every=st.integers(1, 4),
    restart_every=st.integers(0, 3),
    tie_seed=st.integers(0, 1000),
)
@example(**_support.ISSUE_26, flavor="chatwoot", late=[], poll_every=30, restart_every=0, tie_seed=0)
def test_property_busy_seconds_ids_out_of_order_each_reported_once(
    flavor, per_second, renumbered, late, poll_every, restart_every, tie_seed
):
    """Busy seconds (a page within the slack, or more than a page in one), ids out of time order,
    late commits: the watch reports each message once, polled often or seldom, restarted or not."""
    server = FakeServer(flavor, tie_seed=tie_seed)
    created = _support.busy_history(per_second, renumbered, T2026)
    lag = dict((k % len(created), seconds) for k, seconds in late) if created else {}
    commit = {}  # id -> when it shows up
    for i, ts in enumerate(created):
        mid = BIG_IDS + 3 * i
        server.add(mid, ts, visible=False)
        commit[mid] = ts + lag.get(i, 0)
    watch, reported = api.MessageWatch(start=T2026), []
    end = T2026 + len(per_second) + api.DEFAULT_OVERLAP
    for i, now in enumerate(range(T2026, end + poll_every, poll_every)):
        for mid in [mid for mid, at in commit.items() if at <= now]:
            server.reveal(mid)
            del commit[mid]
        if restart_every and i % restart_every == 0:
            watch = api.MessageWatch(start=T2026).restore(json.loads(json.dumps(watch.to_state())))
        reported += poll(watch, server, flavor) or []
    assert not commit
    assert sorted(reported) == sorted(m["id"] for m in server.messages)
    assert len(reported) == len(set(reported))


# --------------------------------------------------------------------------------------------
# Sender types as Doto and Chatwoot spell them
# --------------------------------------------------------------------------------------------


def message(sender_type: str | None, mid: int = 1) -> api.Message:
    payload: dict = {"id": mid, "content": "hi", "message_type": 0, "created_at": T0}
    if sender_type is not None:
        payload["sender"] = {"id": 3, "name": "Sam", "type": sender_type}
    return parse_message(payload)


class TestSenderTypes:
    @pytest.mark.parametrize(
        ("wanted", "actual"),
        [
            ("Contact", "contact"),
            ("contact", "Contact"),
            ("Contact", "Contact"),
            ("User", "user"),
            ("user", "User"),
            ("AgentBot", "agent_bot"),
            ("agent_bot", "AgentBot"),
            ("agentbot", "Agent_Bot"),
        ],
    )
    def test_spellings_match(self, wanted, actual):
        assert api.MessageFilter(sender_types=[wanted]).matches(message(actual))

    @pytest.mark.parametrize(
        ("wanted", "actual"), [("Contact", "user"), ("AgentBot", "agent"), ("User", None)]
    )
    def test_other_types_do_not(self, wanted, actual):
        assert not api.MessageFilter(sender_types=[wanted]).matches(message(actual))

    def test_to_dict_keeps_the_users_spelling(self):
        f = api.MessageFilter(sender_types=["AgentBot", "contact"])
        assert f.to_dict()["sender_types"] == ["AgentBot", "contact"]
        assert api.MessageFilter.from_dict(f.to_dict()) == f
