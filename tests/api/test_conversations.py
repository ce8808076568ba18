"""The core's conversations: parsing, the query's checks, the list's pages and ``active_since``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._conversations import (
    CLOCK_SLACK,
    PAGE_SIZE,
    ConversationPager,
    ConversationQuery,
    conversation_list_request,
    get_conversation_flow,
    list_conversations_flow,
    parse_conversation,
    window_seconds,
)
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoNotFoundError,
    DotoResponseError,
    DotoServerError,
)

from ._support import BASE, DOTO_404, RAILS_404, T0, answer, drive

NOW = T0 + 86_400
OPENAPI = Path(__file__).resolve().parents[2] / ".." / "shared" / "doto-api" / "chatwoot-openapi.json"


def conversation(cid: int, *, last_activity_at: int, updated_at: float | None = None, **extra) -> dict:
    """A conversation as Chatwoot's list and show answer it (``_conversation.json.jbuilder``)."""
    body = {
        "id": cid,
        "account_id": 1,
        "uuid": f"00000000-0000-0000-0000-{cid:012d}",
        "additional_attributes": {},
        "agent_last_seen_at": 0,
        "assignee_last_seen_at": 0,
        "can_reply": True,
        "contact_last_seen_at": 0,
        "custom_attributes": {},
        "inbox_id": 3,
        "labels": [],
        "muted": False,
        "snoozed_until": None,
        "status": "open",
        "created_at": last_activity_at - 600,
        "updated_at": float(last_activity_at) + 0.25 if updated_at is None else updated_at,
        "timestamp": last_activity_at,
        "first_reply_created_at": None,
        "unread_count": 0,
        "last_non_activity_message": {
            "id": cid * 100,
            "content": f"hello from {cid}",
            "message_type": 0,
            "created_at": last_activity_at,
            "private": False,
            "sender": {"id": 900 + cid, "name": f"Contact {cid}", "type": "contact"},
        },
        "last_activity_at": last_activity_at,
        "priority": None,
        "waiting_since": last_activity_at,
        "sla_policy_id": None,
        "applied_sla": {},
        "sla_events": [],
        "messages": [],
        "meta": {
            "sender": {"id": 900 + cid, "name": f"Contact {cid}", "type": "contact", "email": None},
            "channel": "Channel::Api",
            "hmac_verified": False,
        },
    }
    body.update(extra)
    return body


class ConversationServer:
    """Chatwoot's conversation list (``conversation_finder.rb``) over canned conversations.

    ``updated_within`` is honoured (every match, no paging) unless ``honours_window`` is False (a
    server before February 2024: it pages as usual); ``counts`` False leaves ``meta`` out. The
    server's clock is ``now``.
    """

    def __init__(
        self, *, honours_window: bool = True, counts: bool = True, pages: bool = True, now: int = NOW
    ):
        self.rows: list[dict] = []
        self.calls: list[dict] = []
        self.honours_window, self.counts, self.pages, self.now = honours_window, counts, pages, now
        self.fail_next: int | None = None

    def add(self, cid: int, last_activity_at: int, **extra) -> dict:
        row = conversation(cid, last_activity_at=last_activity_at, **extra)
        self.rows.append(row)
        return row

    def __call__(self, request: DotoRequest) -> DotoResponse:
        assert request.method == "GET"
        pairs = request.query() or []
        params = {k: v for k, v in pairs if k != "labels[]"}
        labels = [v for k, v in pairs if k == "labels[]"]
        self.calls.append({**params, **({"labels[]": labels} if labels else {})})
        if self.fail_next is not None:
            status, self.fail_next = self.fail_next, None
            return answer({"error": "boom"}, status)
        if request.path.startswith("/api/v1/accounts/1/conversations/"):
            cid = int(request.path.rsplit("/", 1)[1])
            found = [r for r in self.rows if r["id"] == cid]
            return answer(found[0]) if found else answer(DOTO_404, 404)
        assert request.path == "/api/v1/accounts/1/conversations"
        rows = list(self.rows)
        if "q" not in params and params.get("status", "open") != "all":
            rows = [r for r in rows if r["status"] == params.get("status", "open")]
        if "inbox_id" in params:
            rows = [r for r in rows if r["inbox_id"] == int(params["inbox_id"])]
        if labels:
            rows = [r for r in rows if set(labels) & set(r["labels"])]
        # Counted before the window applies, as the finder does.
        counts = {"mine_count": 0, "assigned_count": 0, "unassigned_count": len(rows), "all_count": len(rows)}
        within = params.get("updated_within") if self.honours_window else None
        if within is not None:
            rows = [r for r in rows if r["updated_at"] > self.now - int(within)]
        order = params.get("sort_by", "last_activity_at_desc")
        key, _, direction = order.rpartition("_")
        rows.sort(key=lambda r: r[key], reverse=direction == "desc")
        if within is None and self.pages:
            page = int(params.get("page", 1))
            rows = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        elif within is None:  # a server that ignores ``page``
            rows = rows[:PAGE_SIZE]
        data: dict = {"payload": rows}
        if self.counts:
            data["meta"] = counts
        return answer({"data": data})


def listed(server, query=None, now=NOW):
    return run_flow(list_conversations_flow(1, query, now=now), server)


# ---- parsing ---------------------------------------------------------------------------------


def test_a_conversation_as_chatwoot_sends_it():
    raw = conversation(
        7,
        last_activity_at=T0,
        labels=["vip", "billing"],
        priority="urgent",
        status="pending",
        can_reply=False,
        unread_count=3,
    )
    raw["meta"]["assignee"] = {"id": 12, "name": "Agent"}
    c = parse_conversation(raw)
    assert (c.id, c.inbox_id, c.channel, c.status, c.labels) == (
        7,
        3,
        "Channel::Api",
        "pending",
        ("vip", "billing"),
    )
    assert (c.priority, c.assignee_id, c.can_reply, c.unread_count) == ("urgent", 12, False, 3)
    assert (c.created_at, c.updated_at, c.last_activity_at, c.waiting_since) == (T0 - 600, T0 + 0.25, T0, T0)
    assert c.contact == api.Sender(907, "Contact 7", "contact")
    assert c.last_message is not None and c.last_message.content == "hello from 7"
    assert c.last_message.message_type == "incoming"
    assert c.raw == raw


def test_to_dict_is_json_and_rebuilds_the_same_conversation():
    raw = conversation(7, last_activity_at=T0, labels=["vip"])
    c = parse_conversation(raw)
    plain = json.loads(json.dumps(c.to_dict()))
    assert plain["contact"] == {"id": 907, "name": "Contact 7", "type": "contact"}
    assert plain["last_message"]["id"] == 700
    assert api.Conversation.from_dict(plain) == c


def test_missing_and_odd_optional_fields_take_their_defaults():
    c = parse_conversation({"id": 5, "last_activity_at": T0})
    assert c == api.Conversation(id=5, last_activity_at=T0)
    assert (c.labels, c.unread_count, c.can_reply, c.contact, c.last_message) == ((), 0, None, None, None)
    odd = parse_conversation(
        {
            "id": 5,
            "timestamp": T0,  # Chatwoot's other name for last_activity_at
            "labels": "vip",
            "priority": 3,
            "can_reply": "yes",
            "unread_count": -1,
            "inbox_id": "3",
            "waiting_since": 0,  # Chatwoot: nobody waits
            "meta": ["not", "an", "object"],
            "last_non_activity_message": None,
        }
    )
    assert odd == api.Conversation(id=5, last_activity_at=T0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "'id'"),
        ({"id": "7"}, "'id'"),
        ({"id": True}, "'id'"),
        ({"id": 0}, "'id'"),
        ({"last_activity_at": None, "timestamp": None}, "'last_activity_at'"),
        ({"last_activity_at": "soon"}, "'last_activity_at'"),
        ({"last_activity_at": math.nan}, "'last_activity_at'"),
        ({"last_activity_at": 10**20}, "'last_activity_at'"),
        ({"created_at": "yesterday"}, "'created_at'"),
        ({"updated_at": [1]}, "'updated_at'"),
        ({"last_non_activity_message": {"id": "x"}}, "'last_non_activity_message'"),
    ],
)
def test_a_malformed_required_field_or_time_is_a_typed_error_naming_it(change, field):
    raw = conversation(7, last_activity_at=T0)
    raw.update(change)
    with pytest.raises(DotoResponseError, match=field):
        parse_conversation(raw)


def test_not_an_object_is_a_typed_error():
    with pytest.raises(DotoResponseError, match="expected an object, got list"):
        parse_conversation([1, 2])


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", json.dumps({"data": {"payload": "none"}}).encode(), b"[]"],
)
def test_a_list_answer_of_the_wrong_shape_is_a_typed_error(body):
    with pytest.raises(DotoResponseError, match="GET /api/v1/accounts/1/conversations"):
        drive(list_conversations_flow(1), [answer(body)])


def test_a_bad_conversation_in_a_page_names_the_request():
    bad = {"data": {"payload": [conversation(1, last_activity_at=T0), {"id": 2}]}}
    with pytest.raises(DotoResponseError, match="'last_activity_at'") as caught:
        drive(list_conversations_flow(1), [answer(bad)])
    assert caught.value.path == "/api/v1/accounts/1/conversations"


# ---- the query -------------------------------------------------------------------------------


def test_a_query_is_normalised_and_becomes_the_request():
    query = ConversationQuery(
        status="all",
        inbox_id="4",
        team_id=2,
        labels=["vip", "billing"],
        assignee_type="unassigned",
        q="refund",
    )
    assert (query.inbox_id, query.labels) == (4, ("vip", "billing"))
    request = conversation_list_request(1, query, page=3)
    assert request.path == "/api/v1/accounts/1/conversations"
    assert request.query() == [
        ("status", "all"),
        ("inbox_id", 4),
        ("team_id", 2),
        ("labels[]", "vip"),
        ("labels[]", "billing"),
        ("assignee_type", "unassigned"),
        ("q", "refund"),
        ("page", 3),
    ]
    assert conversation_list_request(1, ConversationQuery()).query() == [("status", "open"), ("page", 1)]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"status": "closed"}, "status"),
        ({"status": None}, "status"),
        ({"inbox_id": "7x"}, "inbox_id"),
        ({"inbox_id": 0}, "inbox_id"),
        ({"inbox_id": True}, "inbox_id"),
        ({"inbox_id": 7.0}, "inbox_id"),
        ({"team_id": -1}, "team_id"),
        ({"labels": "vip"}, "labels"),
        ({"labels": [1]}, "labels"),
        ({"labels": [""]}, "labels"),
        ({"labels": None}, "labels"),
        ({"assignee_type": "mine"}, "assignee_type"),
        ({"q": ""}, "q"),
        ({"q": 5}, "q"),
        ({"sort_by": "newest"}, "sort_by"),
        ({"active_since": "yesterday"}, "active_since"),
        ({"active_since": True}, "active_since"),
        ({"active_since": T0, "sort_by": "created_at_asc"}, "active_since"),
    ],
)
def test_a_bad_field_is_refused_when_the_query_is_built(fields, name):
    with pytest.raises(DotoConfigError, match=name):
        ConversationQuery(**fields)


def test_a_query_from_keywords_or_query_but_not_both():
    query = ConversationQuery(status="resolved")
    assert ConversationQuery.of(query) is query
    assert ConversationQuery.of(None, status=None, inbox_id=None) == ConversationQuery()
    assert ConversationQuery.of(None, labels=["a"]).labels == ("a",)
    with pytest.raises(DotoConfigError, match=r"not both.*inbox_id"):
        ConversationQuery.of(query, inbox_id=4)
    with pytest.raises(DotoConfigError, match="query must be a ConversationQuery"):
        ConversationQuery.of({"status": "open"})  # type: ignore[arg-type]


def test_active_since_accepts_any_timestamp_and_needs_now():
    query = ConversationQuery(active_since="2024-04-01T20:10:00Z")
    assert query.active_since == 1_712_002_200 and query.since == 1_712_002_200
    assert query.params()["sort_by"] == "last_activity_at_desc"
    with pytest.raises(DotoConfigError, match="needs now"):
        ConversationPager(1, query)
    assert window_seconds(T0, T0 + 3600) == 3600 + CLOCK_SLACK
    assert window_seconds(T0, T0 - 5) == 1 + CLOCK_SLACK  # a caller's clock behind: still a window


# ---- paging ----------------------------------------------------------------------------------


def test_every_page_once_in_the_servers_order():
    server = ConversationServer()
    for cid in range(1, 61):
        server.add(cid, T0 + cid)
    result = listed(server)
    assert [c.id for c in result] == list(range(60, 0, -1))
    assert [call["page"] for call in server.calls] == [1, 2, 3]


def test_a_last_full_page_costs_one_empty_request():
    server = ConversationServer()
    for cid in range(1, 51):
        server.add(cid, T0 + cid)
    assert len(listed(server)) == 50
    assert [call["page"] for call in server.calls] == [1, 2, 3]


def test_filters_reach_the_server():
    server = ConversationServer()
    server.add(1, T0, labels=["vip"], inbox_id=4)
    server.add(2, T0 + 1, labels=["other"], inbox_id=4)
    server.add(3, T0 + 2, labels=["vip"], inbox_id=5, status="resolved")
    assert [c.id for c in listed(server, ConversationQuery(inbox_id=4, labels=["vip"]))] == [1]
    assert [c.id for c in listed(server, ConversationQuery(status="all", labels=["vip"]))] == [3, 1]
    assert server.calls[-1]["labels[]"] == ["vip"]


def test_a_server_that_ignores_page_is_read_once_not_forever():
    server = ConversationServer(pages=False)
    for cid in range(1, 61):
        server.add(cid, T0 + cid)
    assert len(listed(server)) == PAGE_SIZE
    assert len(server.calls) == 2


def test_a_conversation_repeated_across_the_page_boundary_comes_once():
    """A conversation that gains activity between two pages shifts the others down by one."""
    server = ConversationServer()
    for cid in range(1, 41):
        server.add(cid, T0 + cid)
    pager = ConversationPager(1)
    first = run_flow(pager.next_page_flow(), server)
    server.rows[0]["last_activity_at"] = T0 + 1000  # conversation 1 jumps to the top
    rest = []
    while not pager.done:
        rest += run_flow(pager.next_page_flow(), server)
    ids = [c.id for c in first + rest]
    assert len(ids) == len(set(ids)) == 39  # 1 moved onto the page already read: the next run finds it
    assert 1 not in ids


def test_the_pager_holds_one_page_and_asks_for_the_next_only_when_asked():
    server = ConversationServer()
    for cid in range(1, 501):
        server.add(cid, T0 + cid)
    pager = ConversationPager(1)
    total = 0
    while not pager.done:
        page = run_flow(pager.next_page_flow(), server)
        total += len(page)
        assert len(page) <= PAGE_SIZE and len(server.calls) == pager.pages
        held = [v for v in vars(pager).values() if isinstance(v, list | dict | set | frozenset | tuple)]
        assert sum(len(v) for v in held) <= PAGE_SIZE  # the previous page's ids, nothing more
    assert total == 500 and pager.pages == 21


def test_a_failed_page_leaves_the_pager_as_it_was():
    server = ConversationServer()
    for cid in range(1, 61):
        server.add(cid, T0 + cid)
    pager = ConversationPager(1)
    got = run_flow(pager.next_page_flow(), server)
    server.fail_next = 500
    with pytest.raises(DotoServerError):
        run_flow(pager.next_page_flow(), server)
    while not pager.done:
        got += run_flow(pager.next_page_flow(), server)
    assert [c.id for c in got] == list(range(60, 0, -1))


# ---- active_since ----------------------------------------------------------------------------


def active_history(server: ConversationServer, count: int = 100) -> None:
    """``count`` conversations, one active a minute until ``NOW``; id 1 is the newest."""
    for cid in range(1, count + 1):
        server.add(cid, NOW - 60 * cid)


def test_a_server_that_honours_updated_within_answers_in_one_request():
    server = ConversationServer()
    active_history(server)
    since = NOW - 60 * 30 - 30  # conversations 1..30 were active after it
    # Resolved after ``since`` with no new message: updated, not active (the server's reading keeps it).
    server.add(500, NOW - 86_000, updated_at=float(NOW - 100))
    # Updated just before ``since``, inside the clock slack the window asks for: dropped.
    server.add(501, since - 10, updated_at=float(since - 5))
    pager = ConversationPager(1, ConversationQuery(active_since=since), now=NOW)
    result = run_flow(pager.next_page_flow(), server)
    assert pager.done and pager.mode == "updated_within" and pager.pages == 1
    assert sorted(c.id for c in result) == [*range(1, 31), 500]
    assert server.calls == [
        {
            "status": "open",
            "sort_by": "last_activity_at_desc",
            "page": 1,
            "updated_within": NOW - since + CLOCK_SLACK,
        }
    ]


def test_a_server_that_ignores_updated_within_is_paged_by_activity_and_stops_past_the_time():
    server = ConversationServer(honours_window=False)
    active_history(server)
    since = NOW - 60 * 30 - 30
    result = listed(server, ConversationQuery(active_since=since))
    assert [c.id for c in result] == list(range(1, 31))
    # The window's answer (page 1 of everything), then pages 1 and 2 by activity; never page 3.
    assert [(c.get("updated_within"), c["page"], c["sort_by"]) for c in server.calls] == [
        (NOW - since + CLOCK_SLACK, 1, "last_activity_at_desc"),
        (None, 1, "last_activity_at_desc"),
        (None, 2, "last_activity_at_desc"),
    ]


@pytest.mark.parametrize("counts", [True, False])
def test_an_ignored_window_is_seen_even_when_its_first_page_is_all_recent(counts):
    """The first page holds only conversations of the window: a full page that ``meta`` does not
    count as the whole list (or no count at all) may have been cut."""
    server = ConversationServer(honours_window=False, counts=counts)
    active_history(server)
    since = NOW - 60 * 40 - 30  # 40 conversations: more than the first page
    result = listed(server, ConversationQuery(active_since=since))
    assert [c.id for c in result] == list(range(1, 41))
    assert len(server.calls) == 3


@pytest.mark.parametrize("honours", [True, False])
def test_a_short_answer_is_whole_either_way(honours):
    """Fewer than a page with nothing too old: the window's answer, or a first page that is the
    whole list. One request."""
    server = ConversationServer(honours_window=honours)
    active_history(server, 20)
    since = NOW - 60 * 20 - 30
    assert [c.id for c in listed(server, ConversationQuery(active_since=since))] == list(range(1, 21))
    assert len(server.calls) == 1


@pytest.mark.parametrize(("total", "requests"), [(25, 1), (100, 2)])
def test_an_answer_of_exactly_a_page_is_whole_only_if_meta_counts_that_many(total, requests):
    """25 in the answer: on a list of 25 in all the answer is whole; on a longer list it cannot be
    told from a cut page, so it is read again by paging (a few requests more, no conversation less)."""
    server = ConversationServer()
    active_history(server, total)
    since = NOW - 60 * PAGE_SIZE + 30  # the window's slack reaches conversation 25, not 26
    assert [c.id for c in listed(server, ConversationQuery(active_since=since))] == list(range(1, 25))
    assert len(server.calls) == requests


def test_a_server_clock_behind_ours_is_covered_by_the_slack():
    server = ConversationServer(now=NOW - 45)  # its window starts 45 s earlier than ours would
    active_history(server)
    since = NOW - 60 * 10 - 30
    result = listed(server, ConversationQuery(active_since=since))
    assert [c.id for c in result] == list(range(1, 11)) and len(server.calls) == 1


def test_a_server_clock_ahead_of_ours_by_more_than_the_slack_narrows_the_window():
    """A limit, pinned: with its clock 10 minutes ahead the server's window is 9 minutes short."""
    server = ConversationServer(now=NOW + 600)
    active_history(server)
    since = NOW - 60 * 20 - 30
    result = listed(server, ConversationQuery(active_since=since))
    # The server's window cut conversations 12..20 out, and its count agrees with its answer: the
    # listing cannot tell, so a clock more than CLOCK_SLACK ahead loses them (documented).
    assert [c.id for c in result] == list(range(1, 12))


# ---- one conversation, and 404s --------------------------------------------------------------


def test_get_conversation_reads_the_show_answer():
    server = ConversationServer()
    server.add(7, T0, labels=["vip"])
    c = run_flow(get_conversation_flow(1, "7"), server)
    assert (c.id, c.labels, c.last_activity_at) == (7, ("vip",), T0)
    wrapped, _ = drive(
        get_conversation_flow(1, 7),
        [answer({"payload": conversation(7, last_activity_at=T0, labels=["vip"])})],
    )
    assert wrapped == c


def test_a_bad_conversation_id_is_refused_before_anything_is_sent():
    with pytest.raises(DotoConfigError, match="conversation_id"):
        drive(get_conversation_flow(1, "seven"), [])


def test_a_missing_conversation_is_not_found():
    with pytest.raises(DotoNotFoundError, match=r"conversation 7 of account 1 does not exist") as caught:
        drive(get_conversation_flow(1, 7), [answer(DOTO_404, 404)])
    assert caught.value.status == 404 and BASE in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"<!DOCTYPE html><html><body>The page you were looking for doesn't exist.</body></html>", RAILS_404],
    ids=["html", "rails-json"],
)
@pytest.mark.parametrize("flow", ["list", "get"])
def test_a_404_from_the_router_says_the_server_has_no_conversation_list(body, flow):
    made = list_conversations_flow(1) if flow == "list" else get_conversation_flow(1, 7)
    with pytest.raises(DotoNotFoundError, match="has no conversation list") as caught:
        drive(made, [answer(body, 404)])
    assert BASE in str(caught.value) and caught.value.status == 404


def test_doto_own_404_on_the_list_is_a_missing_account():
    with pytest.raises(DotoNotFoundError, match="account 1 does not exist"):
        drive(list_conversations_flow(1), [answer(DOTO_404, 404)])
    with pytest.raises(DotoNotFoundError, match="account 1 or its team 9 does not exist"):
        drive(list_conversations_flow(1, ConversationQuery(team_id=9)), [answer(DOTO_404, 404)])


# ---- the fake server answers as Chatwoot's OpenAPI file says ---------------------------------


def test_the_fake_servers_answers_match_the_openapi_response_schema():
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is not here")
    import jsonschema

    spec = json.loads(OPENAPI.read_text())

    def schema(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}

    server = ConversationServer()
    server.add(7, T0, labels=["vip"])
    listed_body = json.loads(server(conversation_list_request(1, ConversationQuery())).body)
    shown_body = json.loads(server(DotoRequest("GET", "/api/v1/accounts/1/conversations/7")).body)
    jsonschema.validate(listed_body, schema("conversation_list"))
    jsonschema.validate(shown_body, schema("conversation_show"))
    item = spec["components"]["schemas"]["conversation"]["properties"]
    assert set(conversation(7, last_activity_at=T0)) - {"meta"} <= set(item)


def test_a_window_answer_without_updated_at_is_kept_by_activity():
    since = NOW - 600
    body = {
        "data": {
            "payload": [
                {"id": 1, "last_activity_at": since + 5},
                {"id": 2, "last_activity_at": since - 5},  # nothing says it was updated since: dropped
            ]
        }
    }
    result, sent = drive(
        list_conversations_flow(1, ConversationQuery(active_since=since), now=NOW), [answer(body)]
    )
    assert [c.id for c in result] == [1] and len(sent) == 1


def test_chatwoots_contact_has_no_type_and_is_a_contact():
    c = parse_conversation({"id": 1, "last_activity_at": T0, "meta": {"sender": {"id": 4, "name": "Jane"}}})
    assert c.contact == api.Sender(4, "Jane", "contact")


def test_a_request_without_parameters_has_no_query_and_repeats_a_tuple():
    assert DotoRequest("GET", "/x").query() is None
    assert DotoRequest("GET", "/x", {"a": 1, "b[]": ("x", "y")}).query() == [
        ("a", 1),
        ("b[]", "x"),
        ("b[]", "y"),
    ]


@given(
    activity=st.lists(st.integers(0, 400).map(lambda m: NOW - 2 * m), max_size=120),
    since_back=st.integers(0, 800),
    honours=st.booleans(),
    counts=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_active_since_finds_exactly_the_conversations_active_since_then(
    activity, since_back, honours, counts
):
    """Any history, either server: every conversation active after the time, once, newest first
    (times even, the time odd: ``updated_at`` and ``last_activity_at`` agree on which side they lie)."""
    server = ConversationServer(honours_window=honours, counts=counts)
    for cid, at in enumerate(activity, start=1):
        server.add(cid, at)
    since = NOW - 2 * since_back - 1
    result = listed(server, ConversationQuery(active_since=since))
    expected = sorted(
        (r for r in server.rows if r["last_activity_at"] > since), key=lambda r: -r["last_activity_at"]
    )
    assert [c.id for c in result] == [r["id"] for r in expected]
    if honours:
        assert len(server.calls) <= 1 + math.ceil((len(expected) + 1) / PAGE_SIZE)
