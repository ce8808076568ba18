"""``_listing``: a window of messages from a capped server, every message once."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._listing import ID_ORDER_SLACK, MessagePager, id_paged_flow, list_messages_flow
from airflow_provider_doto.exceptions import DotoAuthError, DotoConfigError

from ._support import (
    BIG_IDS,
    ID_DISORDER,
    ISSUE_26,
    RENUMBERED,
    T0,
    T2026,
    FakeServer,
    busy_history,
    busy_seconds,
    capped_server,
    history,
    ids,
    list_all,
    msg,
    ok,
)

# What the property tests draw: messages per second, the server's page caps (forward, backward), a
# window in seconds from T0 (None: open on that side) and a seed for the order of ties.
HISTORIES = {
    "per_second": st.lists(st.integers(0, 45), min_size=1, max_size=12),
    "caps": st.sampled_from([(100, 20), (20, 20), (100, 100), (30, 20)]),
    "window": st.tuples(st.none() | st.integers(-1, 12), st.none() | st.integers(0, 13)),
    "tie_seed": st.integers(0, 1000),
}


def shuffled_history(per_second: list[int], cap_after: int, tie_seed: int) -> list[dict]:
    """Messages ``per_second`` from T0 on, stored in a shuffled order."""
    messages: list[dict] = []
    next_id = 1
    for second, count in enumerate(per_second):
        for _ in range(min(count, cap_after)):  # at most a forward page per second: all reachable
            messages.append(msg(next_id, T0 + second))
            next_id += 1
    random.Random(tie_seed).shuffle(messages)
    return messages


class TestListFlowByHand:
    def test_list_flow_driven_by_hand(self):
        flow = list_messages_flow(1, 42, after=T0, flavor="doto")
        first = next(flow)
        assert (first.method, dict(first.params)) == ("GET", {"after": T0})
        # A full page (20 messages, 4 per second): the flow asks for the next one, re-reading the last second.
        page = [msg(i, T0 + 1 + (i - 1) // 4) for i in range(1, 21)]
        second = flow.send(ok({"payload": page}))
        assert dict(second.params) == {"after": T0 + 5 - 1}
        # The next page repeats the last second's four messages and adds two: short page, done.
        with pytest.raises(StopIteration) as done:
            flow.send(ok({"payload": [*page[-4:], msg(21, T0 + 6), msg(22, T0 + 6)]}))
        assert ids(done.value.value) == list(range(1, 23))

    def test_list_flow_backwards_by_hand(self):
        flow = list_messages_flow(1, 42, before=T0 + 100, flavor="doto")
        assert dict(next(flow).params) == {"before": T0 + 100}
        page = [msg(i, T0 + 50 + i) for i in range(1, 21)]  # newest 20 before the bound
        second = flow.send(ok({"payload": page}))
        assert dict(second.params) == {"before": T0 + 51 + 1}
        with pytest.raises(StopIteration) as done:
            flow.send(ok({"payload": [msg(0, T0), page[0]]}))
        assert ids(done.value.value) == list(range(21))

    def test_list_flow_drops_messages_outside_a_strict_window(self):
        flow = list_messages_flow(1, 42, after=T0, before=T0 + 10, flavor="doto")
        next(flow)
        with pytest.raises(StopIteration) as done:
            flow.send(ok({"payload": [msg(1, T0), msg(2, T0 + 1), msg(3, T0 + 9), msg(4, T0 + 10)]}))
        assert ids(done.value.value) == [2, 3]

    def test_list_flow_propagates_errors(self):
        flow = list_messages_flow(1, 42, flavor="doto")
        next(flow)
        with pytest.raises(DotoAuthError):
            flow.send(ok({"error": "Invalid Access Token"}, status=401))


class TestPaging:
    """list_messages_flow against a capped server: every message exactly once, oldest first."""

    def test_short_conversation_one_request(self):
        messages = [msg(i, T0 + i) for i in range(1, 6)]
        result, calls = list_all(messages)
        assert ids(result) == [1, 2, 3, 4, 5]
        assert calls == [{}]

    def test_backwards_many_pages(self):
        messages = [msg(i, T0 + i) for i in range(1, 96)]
        result, calls = list_all(messages)
        assert ids(result) == list(range(1, 96))
        assert len(calls) >= 5

    def test_forwards_many_pages(self):
        messages = [msg(i, T0 + i // 3) for i in range(1, 451)]
        result, _ = list_all(messages, after=T0 - 1)
        assert ids(result) == list(range(1, 451))

    def test_many_messages_sharing_one_second_backwards(self):
        # 45 in the newest second: more than a backwards page (20), fewer than a forward one (100).
        messages = [msg(i, T0 + 1) for i in range(100, 145)] + [msg(i, T0 - 100 + i) for i in range(1, 31)]
        result, calls = list_all(messages, tie_seed=3)
        assert sorted(ids(result)) == sorted(m["id"] for m in messages)
        assert [(m.created_at, m.id) for m in result] == sorted((m["created_at"], m["id"]) for m in messages)
        assert any("after" in c for c in calls)  # the crowded second was read forwards

    def test_many_messages_sharing_one_second_forwards(self):
        messages = [msg(i, T0 + 5) for i in range(1, 100)] + [msg(i, T0 + 6 + i % 3) for i in range(100, 160)]
        result, _ = list_all(messages, after=T0, tie_seed=5)
        assert [(m.created_at, m.id) for m in result] == sorted((m["created_at"], m["id"]) for m in messages)

    def test_more_than_a_forward_page_in_one_second_does_not_lose_later_messages(self):
        # 130 in one second cannot all be reached through a 100-cap server, but what follows must.
        messages = [msg(i, T0 + 1) for i in range(1, 131)] + [msg(i, T0 + 2) for i in range(131, 141)]
        result, _ = list_all(messages, after=T0)
        assert set(range(131, 141)) <= set(ids(result))
        assert len(ids(result)) == len(set(ids(result)))

    def test_window_with_both_bounds(self):
        messages = [msg(i, T0 + i // 2) for i in range(1, 300)]
        result, _ = list_all(messages, after=T0 + 10, before=T0 + 120)
        assert ids(result) == [m["id"] for m in messages if T0 + 10 < m["created_at"] < T0 + 120]

    def test_server_that_ignores_before_and_after_terminates(self):
        messages = [msg(i, T0 + i // 7) for i in range(1, 80)]
        for kwargs in ({}, {"after": T0 + 3}, {"before": T0 + 6}):
            result, calls = list_all(messages, ignore_params=True, **kwargs)
            expected = [
                m["id"]
                for m in messages
                if m["created_at"] > kwargs.get("after", -math.inf)
                and m["created_at"] < kwargs.get("before", math.inf)
            ]
            assert ids(result) == expected
            assert len(calls) < 10

    def test_duplicates_inside_a_page_reported_once(self):
        def send(request):
            return ok({"payload": [msg(1, T0), msg(1, T0), msg(2, T0 + 1)]})

        assert ids(run_flow(list_messages_flow(1, 42, flavor="doto"), send)) == [1, 2]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(**HISTORIES)
    def test_property_every_message_exactly_once(self, per_second, caps, window, tie_seed):
        cap_after, cap_before = caps
        messages = shuffled_history(per_second, cap_after, tie_seed)
        after, before = (None if w is None else T0 + w for w in window)
        result, calls = list_all(
            messages,
            after=after,
            before=before,
            cap_after=cap_after,
            cap_before=cap_before,
            tie_seed=tie_seed,
        )
        expected = sorted(
            (m["created_at"], m["id"])
            for m in messages
            if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
        )
        assert [(m.created_at, m.id) for m in result] == expected
        assert len(calls) <= 3 * len(messages) // 20 + 2 * len(per_second) + 3


# --------------------------------------------------------------------------------------------
# Listing under both server flavors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["doto", "chatwoot", "auto"])
@pytest.mark.parametrize("server_flavor", ["doto", "chatwoot"])
@pytest.mark.parametrize("first_id", [1, BIG_IDS])
def test_the_same_messages_under_every_flavor(flavor, server_flavor, first_id):
    if flavor not in ("auto", server_flavor):
        pytest.skip("a flavor that contradicts the server is a misconfiguration")
    server = FakeServer(server_flavor)
    all_ids = history(server, 150, first_id=first_id, start=T2026, step=3)

    def listed(**window):
        return ids(run_flow(list_messages_flow(1, 42, flavor=flavor, **window), server))

    assert listed() == all_ids
    assert listed(after=T2026 + 99) == all_ids[100:]
    assert listed(before=T2026 + 20) == all_ids[:20]
    assert listed(after=T2026 + 9, before=T2026 + 130) == all_ids[10:130]
    assert listed(after=T2026 + 500) == []


def test_a_recent_window_does_not_read_the_whole_history():
    server = FakeServer("chatwoot")
    all_ids = history(server, 10_000, first_id=1, start=T2026, step=2)
    found = run_flow(list_messages_flow(1, 42, after=T2026 + 9_949, flavor="chatwoot"), server)
    assert ids(found) == all_ids[-50:]
    # One before_timestamp lookup of the window's first id, then one page forwards.
    assert server.calls == [
        {"before_timestamp": T2026 + 9_949 - ID_ORDER_SLACK + 1},
        {"after": all_ids[9_949 - ID_ORDER_SLACK]},
    ]


def test_id_paging_survives_ids_out_of_time_order():
    """Concurrent inserts can number messages out of created_at order; paging must not skip one."""
    server = FakeServer("chatwoot")
    for i in range(250):
        # Every fifth message got its id a little before its neighbours' (and a later created_at).
        server.add(1000 + i, T2026 + i + (1 if i % 5 == 0 else 0))
    found = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert sorted(ids(found)) == list(range(1000, 1250))


# What the busy-conversation properties draw besides the seconds and the renumbered messages: a
# window in seconds from T2026 and the server's order inside a second.
BUSY = {
    "per_second": busy_seconds(8),
    "renumbered": RENUMBERED,
    "window": st.tuples(st.none() | st.integers(-1, 8), st.none() | st.integers(0, 9)),
    "tie_seed": st.integers(0, 1000),
}


def busy_server(per_second, renumbered, tie_seed=None) -> FakeServer:
    """A Chatwoot conversation of :func:`busy_history`, with account-wide (gapped) ids."""
    server = FakeServer("chatwoot", tie_seed=tie_seed)
    for i, ts in enumerate(busy_history(per_second, renumbered, T2026)):
        server.add(BIG_IDS + 3 * i, ts)
    return server


def _range_reads(calls) -> int:
    return sum(1 for c in calls if "after" in c and "before" in c)


def _keys(messages) -> list[tuple[int, int]]:
    return [(m.created_at, m.id) for m in messages]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**BUSY)
@example(**ISSUE_26, window=(None, None), tie_seed=0)
@example(**ISSUE_26, window=(9, None), tie_seed=0)
def test_property_busy_seconds_and_ids_out_of_order_lose_nothing(per_second, renumbered, window, tie_seed):
    """Every reader on Chatwoot gives each message of the window once, oldest first, whatever the
    density and however ids and times disagree (within the slack); a page within the slack costs at
    most one more request."""
    server = busy_server(per_second, renumbered, tie_seed)
    after, before = (None if w is None else T2026 + w for w in window)
    expected = sorted(
        (m["created_at"], m["id"])
        for m in server.messages
        if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
    )
    listed = run_flow(list_messages_flow(1, 42, after=after, before=before, flavor="chatwoot"), server)
    assert _keys(listed) == expected
    forwards = sum(1 for c in server.calls if set(c) == {"after"})
    assert _range_reads(server.calls) <= max(forwards - 1, 0)
    server.calls.clear()
    pages, _ = _stream(server, after=after, before=before, flavor="chatwoot")
    assert _keys(_flat(pages)) == expected
    every = run_flow(id_paged_flow(1, 42, after_id=0), server)
    assert sorted(ids(every)) == sorted(m["id"] for m in server.messages)


def test_a_page_within_the_slack_reads_the_ids_below_its_highest_before_moving_past_them():
    """Issue 26: a full page lies within the slack and holds a message numbered after later ones.
    Paging on from its highest id skipped 21 messages; the ids below it are read as one range."""
    server = busy_server(**ISSUE_26)
    found = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert len(found) == len(server.messages) == 161
    assert _keys(found) == sorted((m["created_at"], m["id"]) for m in server.messages)
    early = BIG_IDS + 3 * 160  # numbered last, created in the middle busy second
    (at,) = [i for i, c in enumerate(server.calls) if set(c) == {"after", "before"}]
    assert server.calls[at] == {"after": server.calls[at - 1]["after"] + 1, "before": early + 1}
    assert server.calls[at + 1 :] == [{"after": early}]


def test_a_range_holding_more_than_an_answer_is_split_until_each_part_is_whole():
    """1,000 is the cap of a range answer: a fuller range is split (where its ids are) and read again."""
    server = FakeServer("chatwoot", tie_seed=7)
    # 2,500 messages in two seconds, the first numbered last: the first page has nothing settled
    # and its highest id is the conversation's.
    server.add(BIG_IDS + 10_000, T2026)
    for i in range(2_500):
        server.add(BIG_IDS + 2 * i, T2026 + 1 + i // 1_250)
    found = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert sorted(ids(found)) == sorted(m["id"] for m in server.messages)
    assert len(found) == len(set(ids(found)))
    ranges = [c for c in server.calls if set(c) == {"after", "before"}]
    assert 3 <= len(ranges) <= 8  # 2,501 sparse ids: a few splits, not one per halving of the id range


def test_a_normal_conversation_costs_no_range_read():
    """Three messages a second, give or take, numbered a little out of order: no page lies within
    the slack, so paging costs what it did before the range reads (one request per 100 and a bit)."""
    rng = random.Random(26)
    per_second = [rng.randint(0, 6) for _ in range(330)]
    renumbered = [(rng.randrange(1_000), rng.randint(1, ID_DISORDER)) for _ in range(30)]
    server = busy_server(per_second, renumbered, tie_seed=3)
    found = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert len(found) == len(server.messages)
    assert _range_reads(server.calls) == 0
    assert len(server.calls) <= len(server.messages) // 90 + 1


def test_soft_deleted_messages_are_recognised():
    server = FakeServer("chatwoot")
    server.add(7, T2026, content="This message was deleted", content_attributes={"deleted": True})
    (message,) = run_flow(list_messages_flow(1, 42, flavor="chatwoot"), server)
    assert message.is_deleted and message.message_type == "incoming"


# --------------------------------------------------------------------------------------------
# MessagePager: the same window a page at a time
# --------------------------------------------------------------------------------------------


def _stream(server, **kwargs):
    """Drive a pager to the end: its pages, and the most it held (ids kept, messages waiting)."""
    pager = MessagePager(1, 42, **{"flavor": "doto", **kwargs})
    pages, held = [], 0
    while not pager.done:
        pages.append(run_flow(pager.next_page_flow(), server))
        held = max(held, len(pager._seen), len(pager._waiting))
    return pages, held


def _flat(pages):
    return [m for page in pages for m in page]


class TestPager:
    def test_pages_by_hand_hold_the_newest_second_back(self):
        pager = MessagePager(1, 42, after=T0, flavor="doto")
        flow = pager.next_page_flow()
        assert dict(next(flow).params) == {"after": T0}
        page = [msg(i, T0 + 1 + (i - 1) // 4) for i in range(1, 21)]  # 4 a second, the last second T0 + 5
        with pytest.raises(StopIteration) as first:
            flow.send(ok({"payload": page}))
        # Messages 17-20 share the page's newest second: a later page may hold more of it.
        assert ids(first.value.value) == list(range(1, 17)) and not pager.done
        flow = pager.next_page_flow()
        assert dict(next(flow).params) == {"after": T0 + 4}
        with pytest.raises(StopIteration) as second:
            flow.send(ok({"payload": [msg(23, T0 + 5), *page[-4:], msg(21, T0 + 6), msg(22, T0 + 6)]}))
        assert ids(second.value.value) == [17, 18, 19, 20, 23, 21, 22] and pager.done
        assert run_flow(pager.next_page_flow(), lambda r: pytest.fail("asked again")) == []

    def test_a_timestamp_window_without_a_start_is_read_forwards(self):
        pages, _ = _stream(capped_server([msg(i, T0 + i) for i in range(1, 6)]))
        assert ids(_flat(pages)) == [1, 2, 3, 4, 5]
        calls = []
        server = capped_server([msg(i, T0 + i) for i in range(1, 6)])
        run_flow(
            MessagePager(1, 42, before=T0 + 4, flavor="doto").next_page_flow(),
            lambda r: calls.append(r) or server(r),
        )
        assert [dict(r.params) for r in calls] == [{"after": 0, "before": T0 + 4}]

    def test_an_empty_conversation_on_auto_is_done_after_the_probe(self):
        pager = MessagePager(1, 42, flavor="auto")
        assert run_flow(pager.next_page_flow(), lambda r: ok({"payload": []})) == []
        assert pager.done

    def test_a_failed_request_leaves_the_pager_to_be_asked_again(self):
        messages = [msg(i, T0 + i) for i in range(1, 60)]
        server = capped_server(messages)
        pager = MessagePager(1, 42, after=T0, flavor="doto")
        first = run_flow(pager.next_page_flow(), server)
        with pytest.raises(DotoAuthError):
            run_flow(pager.next_page_flow(), lambda r: ok({"error": "Invalid Access Token"}, status=401))
        rest = []
        while not pager.done:
            rest += run_flow(pager.next_page_flow(), server)
        assert ids(first + rest) == list(range(1, 60))

    def test_after_id_steers_only_an_id_server(self):
        for flavor, expected in (("doto", slice(5, None)), ("chatwoot", slice(11, None))):
            server = FakeServer(flavor)
            all_ids = history(server, 30, first_id=BIG_IDS, start=T2026)
            pages, _ = _stream(server, flavor=flavor, after_id=BIG_IDS + 10, after=T2026 + 4)
            assert ids(_flat(pages)) == all_ids[expected]

    def test_a_lower_id_created_a_second_later_and_committed_between_pages_is_read(self):
        """The next page starts ID_ORDER_SLACK behind the page's newest second: an id below the
        page's end, created up to that much after a higher one, may commit after the page was read."""
        server = FakeServer("chatwoot")
        history(server, 98, first_id=1000, start=T2026)  # 1000-1097, one a second
        server.add(1200, T2026 + 97)  # numbered after the next one, created a second before it
        server.add(1150, T2026 + 98, visible=False)  # commits after the first page is read
        server.add(1201, T2026 + 98)
        history(server, 5, first_id=1202, start=T2026 + 99)
        pager = MessagePager(1, 42, flavor="chatwoot")
        first = run_flow(pager.next_page_flow(), server)
        assert ids(first)[:2] == [1000, 1001] and 1150 not in ids(first)
        server.reveal(1150)
        rest = []
        while not pager.done:
            rest += run_flow(pager.next_page_flow(), server)
        assert sorted(ids(first + rest)) == sorted(m["id"] for m in server.messages)

    def test_bad_arguments_fail_before_any_request(self):
        with pytest.raises(DotoConfigError, match="after must be"):
            MessagePager(1, 42, after="yesterday", flavor="doto")
        with pytest.raises(DotoConfigError, match="conversation_id"):
            MessagePager(1, 0)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(**HISTORIES)
    def test_property_the_same_messages_in_the_same_order_as_the_list(
        self, per_second, caps, window, tie_seed
    ):
        cap_after, cap_before = caps
        messages = shuffled_history(per_second, cap_after, tie_seed)
        after, before = (None if w is None else T0 + w for w in window)
        server = capped_server(messages, cap_after=cap_after, cap_before=cap_before, tie_seed=tie_seed)
        listed = run_flow(list_messages_flow(1, 42, after=after, before=before, flavor="doto"), server)
        pages, held = _stream(server, after=after, before=before)
        assert [(m.created_at, m.id) for m in _flat(pages)] == [(m.created_at, m.id) for m in listed]
        # What the pager keeps between pages is at most what one page brought.
        assert held <= cap_after

    @pytest.mark.parametrize("server_flavor", ["doto", "chatwoot"])
    def test_a_long_conversation_streams_with_a_page_held(self, server_flavor):
        server = FakeServer(server_flavor)
        # Three messages a second, ids out of time order inside the slack every seventh message.
        for i in range(1_500):
            server.add(BIG_IDS + i, T2026 + i // 3 + (1 if i % 7 == 0 else 0))
        if server_flavor == "doto":
            full = server._doto

            def capped(rows, params):
                rows = full(rows, params)
                return rows[:100] if "after" in params else rows[-20:]

            server._doto = capped  # a doto server that caps its pages as Chatwoot does
        listed = run_flow(list_messages_flow(1, 42, flavor=server_flavor), server)
        pages, held = _stream(server, flavor=server_flavor)
        assert len(listed) == 1_500
        assert ids(_flat(pages)) == ids(listed)
        assert len(pages) > 10 and held <= 100
        window = {"after": T2026 + 100, "before": T2026 + 400}
        listed = run_flow(list_messages_flow(1, 42, flavor=server_flavor, **window), server)
        assert ids(_flat(_stream(server, flavor=server_flavor, **window)[0])) == ids(listed)
        assert all(T2026 + 100 < m.created_at < T2026 + 400 for m in listed) and len(listed) > 800

    @pytest.mark.parametrize("server_flavor", ["doto", "chatwoot"])
    def test_auto_detects_then_pages(self, server_flavor):
        server = FakeServer(server_flavor)
        all_ids = history(server, 250, first_id=BIG_IDS, start=T2026, step=3)
        pages, _ = _stream(server, flavor="auto", after=T2026 + 9)
        assert ids(_flat(pages)) == all_ids[10:]
