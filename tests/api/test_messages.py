"""``_messages``: payloads into typed Messages, list and single answers."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._flows import delete_message_flow, run_flow
from airflow_provider_doto.api._http import DotoResponse, error_for_status, send_request
from airflow_provider_doto.api._messages import (
    parse_message,
    parse_message_list,
    parse_single_message,
    sort_messages,
)
from airflow_provider_doto.exceptions import DotoResponseError

from ._support import REQ, T0, _assert_doto_or_result, ids, msg, ok


class TestParseMessage:
    def test_full_payload(self):
        payload = msg(
            101,
            T0,
            content="Hi",
            status="read",
            content_type="text",
            content_attributes={"k": "v"},
            sender={"id": 10, "name": "Jane Doe", "type": "Contact"},
            attachments=[{"id": 1, "file_type": "image"}],
            conversation_id=42,
        )
        m = parse_message(payload)
        assert m == api.Message(
            id=101,
            content="Hi",
            message_type="incoming",
            created_at=T0,
            private=False,
            status="read",
            content_type="text",
            content_attributes={"k": "v"},
            sender=api.Sender(10, "Jane Doe", "Contact"),
            attachments=(api.Attachment(id=1, file_type="image"),),
        )
        assert m.raw == payload
        assert m.raw["conversation_id"] == 42  # keys the model does not know stay reachable
        assert m.sender_type == "Contact"

    def test_defaults_for_missing_optional_keys(self):
        m = parse_message({"id": 1, "created_at": T0, "message_type": "outgoing"})
        assert (m.content, m.private, m.status, m.content_type) == (None, False, None, "text")
        assert (m.content_attributes, m.sender, m.attachments, m.sender_type) == ({}, None, (), None)
        assert not m.is_deleted

    def test_null_and_wrong_typed_optional_keys(self):
        m = parse_message(
            {
                "id": 1,
                "created_at": T0,
                "message_type": 0,
                "content": 5,
                "private": "true",
                "status": 3,
                "content_type": None,
                "content_attributes": [1],
                "sender": "bot",
                "attachments": [1, {"id": 2}],
            }
        )
        assert (m.content, m.private, m.status, m.content_type) == ("5", False, None, "text")
        assert (m.content_attributes, m.sender, m.attachments) == ({}, None, (api.Attachment(id=2),))

    def test_partial_sender(self):
        m = parse_message(msg(1, T0, sender={"id": True, "name": 5, "type": "User"}))
        assert m.sender == api.Sender(None, None, "User")

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (0, "incoming"),
            (1, "outgoing"),
            (2, "activity"),
            (3, "template"),
            ("incoming", "incoming"),
            ("outgoing", "outgoing"),
            ("template", "template"),
        ],
    )
    def test_message_type_normalised(self, raw, expected):
        assert parse_message(msg(1, T0, message_type=raw)).message_type == expected

    @pytest.mark.parametrize(
        ("created_at", "expected"),
        [(T0, T0), (T0 + 0.99, T0), (str(T0), T0), ("2024-04-01T19:50:00Z", 1712001000)],
    )
    def test_created_at_forms(self, created_at, expected):
        assert parse_message(msg(1, created_at)).created_at == expected

    @pytest.mark.parametrize(
        ("payload", "match"),
        [
            ([1], "expected an object, got list"),
            (None, "expected an object, got NoneType"),
            ({"created_at": T0, "message_type": 0}, "'id' must be an integer, got NoneType"),
            (msg("1", T0), "'id' must be an integer, got str"),
            (msg(True, T0), "'id' must be an integer, got bool"),
            (msg(1, None), "'created_at' must be a Unix timestamp, got NoneType"),
            (msg(1, True), "'created_at' must be a Unix timestamp, got bool"),
            (msg(1, "yesterday"), "'created_at' is not a timestamp"),
            (msg(1, float("nan")), "'created_at' nan is out of range"),
            (msg(1, float("inf")), "'created_at' inf is out of range"),
            (msg(1, 10**20), "'created_at' 100000000000000000000 is out of range"),
            (msg(1, T0, message_type=9), "unknown 'message_type' 9"),
            (msg(1, T0, message_type=True), "unknown 'message_type' True"),
            (msg(1, T0, message_type=""), "unknown 'message_type' ''"),
            (msg(1, T0, message_type=None), "unknown 'message_type' None"),
        ],
    )
    def test_invalid(self, payload, match):
        with pytest.raises(DotoResponseError, match=f"not a valid message: {match}"):
            parse_message(payload)

    def test_created_at_datetime_is_pendulum_utc(self):
        m = parse_message(msg(1, 1712001000))
        assert isinstance(m.created_at_datetime, pendulum.DateTime)
        assert m.created_at_datetime == pendulum.datetime(2024, 4, 1, 19, 50, tz="UTC")
        assert m.created_at_datetime.utcoffset() == dt.timedelta(0)

    def test_deleted(self):
        assert parse_message(msg(1, T0, content_attributes={"deleted": True})).is_deleted
        assert not parse_message(msg(1, T0, content_attributes={"deleted": False})).is_deleted

    def test_to_dict_is_json_safe_and_round_trips(self):
        m = parse_message(
            msg(
                7,
                T0,
                message_type=1,
                private=True,
                status="sent",
                content_type="input_email",
                content_attributes={"airflow_delivery_key": "k", "nested": {"a": [1, 2]}},
                sender={"id": 3, "name": "Bot", "type": "agent_bot"},
                attachments=[{"id": 1}],
                extra_key="x",
            )
        )
        data = json.loads(json.dumps(m.to_dict()))
        assert data == m.to_dict()
        assert "extra_key" not in data and "raw" not in data
        again = api.Message.from_dict(data)
        assert again == m
        assert again.to_dict() == m.to_dict()
        assert again.created_at_datetime == m.created_at_datetime

    def test_external_error_from_content_attributes(self):
        why = "Template not found or invalid template name"
        m = parse_message(msg(7, T0, status="failed", content_attributes={"external_error": why}))
        assert (m.status, m.external_error) == ("failed", why)
        data = json.loads(json.dumps(m.to_dict()))
        assert data["external_error"] == why
        assert api.Message.from_dict(data) == m

    @pytest.mark.parametrize("attributes", [{}, {"external_error": ""}, {"external_error": 3}])
    def test_no_external_error_keeps_the_xcom_shape(self, attributes):
        m = parse_message(msg(7, T0, status="sent", content_attributes=attributes))
        assert m.external_error is None
        assert "external_error" not in m.to_dict()

    def test_to_dict_round_trip_without_sender(self):
        m = parse_message({"id": 1, "created_at": T0, "message_type": 2})
        assert api.Message.from_dict(json.loads(json.dumps(m.to_dict()))) == m

    def test_raw_is_not_compared(self):
        a = parse_message(msg(1, T0, extra="a"))
        b = parse_message(msg(1, T0, extra="b"))
        assert a == b and a.raw != b.raw


class TestParseLists:
    def test_payload_and_meta(self):
        page = parse_message_list(REQ, ok({"meta": {"contact": {}}, "payload": [msg(1, T0), msg(2, T0, 1)]}))
        assert ids(page) == [1, 2]
        assert page[1].message_type == "outgoing"

    def test_bare_list(self):
        assert ids(parse_message_list(REQ, ok([msg(3, T0)]))) == [3]

    @pytest.mark.parametrize(
        "payload", [{"payload": None}, {"data": []}, {"payload": {"id": 1}}, "text", 5, None]
    )
    def test_no_payload_list(self, payload):
        with pytest.raises(DotoResponseError, match=r"returned no 'payload' list") as info:
            parse_message_list(REQ, ok(payload))
        assert info.value.path == REQ.path

    def test_bad_item_names_the_request(self):
        with pytest.raises(
            DotoResponseError, match=r"message in GET /api/v1/accounts/1/conversations/42/messages"
        ):
            parse_message_list(REQ, ok({"payload": [msg(1, T0), {"id": 2}]}))

    def test_single_message_plain_and_wrapped(self):
        post = send_request(1, 42, "hi")
        assert parse_single_message(post, ok(msg(5, T0, 1))).id == 5
        assert parse_single_message(post, ok({"payload": msg(6, T0, 1)})).id == 6
        with pytest.raises(DotoResponseError, match=r"answer to POST"):
            parse_single_message(post, ok({"payload": [msg(6, T0, 1)]}))

    def test_sort_messages_oldest_first_ids_break_ties(self):
        messages = [parse_message(msg(i, ts)) for i, ts in [(5, T0), (2, T0 + 1), (3, T0), (1, T0 + 1)]]
        assert ids(sort_messages(messages)) == [3, 5, 1, 2]


# --------------------------------------------------------------------------------------------
# Robustness: whatever the server sends, a result or a DotoError
# --------------------------------------------------------------------------------------------


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_ish = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["id", "payload", "error"]), children, max_size=4
        )
    ),
    max_leaves=12,
)
KEYS = [
    "id",
    "content",
    "message_type",
    "created_at",
    "private",
    "status",
    "content_type",
    "content_attributes",
    "sender",
    "attachments",
]
plausible_values = {
    "id": st.integers(1, 10**6),
    "created_at": st.integers(0, 2**31) | st.sampled_from(["2024-04-01T19:50:00Z", "1712001000"]),
    "message_type": st.integers(-1, 4) | st.sampled_from(["incoming", "outgoing", ""]),
}
message_ish = st.fixed_dictionaries(
    {},
    optional={k: (plausible_values.get(k, st.nothing()) | json_ish) for k in KEYS},
)
payload_ish = (
    json_ish
    | message_ish
    | st.builds(lambda items: {"payload": items}, st.lists(message_ish | json_ish, max_size=4))
)

VALID_BODY = json.dumps(
    {"payload": [msg(1, T0, sender={"id": 1, "name": "A", "type": "contact"}), msg(2, T0, 1)]}
)
bodies = (
    st.binary(max_size=200)
    | payload_ish.map(lambda p: json.dumps(p).encode())
    | st.integers(0, len(VALID_BODY)).map(lambda n: VALID_BODY[:n].encode())
    | st.sampled_from(
        [
            b"<!DOCTYPE html><html><head><title>Login</title></head><body>Sign in</body></html>",
            b"\xef\xbb\xbf{}",
            b'{"payload": [{"id": 1, "created_at": NaN, "message_type": 0}]}',
            b'{"payload": [{"id": 1, "created_at": -Infinity, "message_type": 0}]}',
            b"[" * 50_000,
            b'{"payload": "' + b"\\ud800" + b'"}',
            '{"payload": []}'.encode("utf-16"),
        ]
    )
)


class TestRobustness:
    @settings(max_examples=200, deadline=None)
    @given(payload=payload_ish)
    def test_parse_message_on_arbitrary_payloads(self, payload):
        m = _assert_doto_or_result(lambda: parse_message(payload))
        if m is not None:
            assert isinstance(m.message_type, str) and m.message_type
            assert isinstance(m.created_at, int) and isinstance(m.created_at_datetime, pendulum.DateTime)
            json.dumps(m.to_dict())
            assert api.Message.from_dict(m.to_dict()) == m

    @settings(max_examples=200, deadline=None)
    @given(
        body=bodies,
        status=st.sampled_from([200, 200, 200, 201, 204, 302, 400, 401, 404, 422, 429, 500, 502, 503]),
        retry_after=st.none() | st.text(max_size=30),
    )
    def test_parsers_on_arbitrary_bodies(self, body, status, retry_after):
        response = DotoResponse(status, {} if retry_after is None else {"retry-after": retry_after}, body)
        error = error_for_status(REQ, response)
        assert (error is None) == (200 <= status < 300)
        page = _assert_doto_or_result(lambda: parse_message_list(REQ, response))
        assert page is None or all(isinstance(m, api.Message) for m in page)
        post = send_request(1, 42, "hi")
        single = _assert_doto_or_result(lambda: parse_single_message(post, response))
        assert single is None or isinstance(single, api.Message)
        deleted = _assert_doto_or_result(lambda: run_flow(delete_message_flow(1, 42, 1), lambda r: response))
        assert deleted in (None, True)


def test_bad_created_at_keeps_its_cause_clipped():
    # The cause names the value (the outer message does not), clipped so a server cannot fill a log.
    with pytest.raises(DotoResponseError, match="'created_at' is not a timestamp") as info:
        parse_message(msg(1, "yesterday"))
    assert "got 'yesterday'" in str(info.value.__cause__)
    with pytest.raises(DotoResponseError) as info:
        parse_message(msg(1, "y" * 10_000))
    assert f"got '{'y' * 40}...'" in str(info.value.__cause__)
    assert len(str(info.value.__cause__)) < 200
