"""The pure, sans-I/O module: values, requests, responses, paging, retries, polling, de-duplication."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import random

import pendulum
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoError,
    DotoHTTPError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
    DotoValidationError,
)

T0 = 1_712_001_000


def msg(mid: int, ts: int, message_type="incoming", **extra) -> dict:
    """A message payload shaped like Chatwoot's."""
    return {
        "id": mid,
        "content": extra.pop("content", f"message {mid}"),
        "message_type": message_type,
        "created_at": ts,
        "private": extra.pop("private", False),
        **extra,
    }


def ok(payload, status: int = 200, headers: dict | None = None) -> api.DotoResponse:
    return api.DotoResponse(status, headers or {}, json.dumps(payload).encode())


def capped_server(messages, *, cap_after=100, cap_before=20, tie_seed=0, ignore_params=False):
    """A Chatwoot-like list endpoint: with ``after`` the oldest ``cap_after`` messages after it,
    otherwise the newest ``cap_before`` before ``before``. Both bounds strict. Order inside one
    second is the server's own (a fixed shuffle), not necessarily by id."""
    rng = random.Random(tie_seed)
    tie = {m["id"]: rng.random() for m in messages}
    calls: list[dict] = []

    def send(request: api.DotoRequest) -> api.DotoResponse:
        assert request.method == "GET"
        calls.append(dict(request.params))
        after = None if ignore_params else request.params.get("after")
        before = None if ignore_params else request.params.get("before")
        window = sorted(
            (
                m
                for m in messages
                if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
            ),
            key=lambda m: (m["created_at"], tie[m["id"]]),
        )
        if not ignore_params:
            window = window[:cap_after] if after is not None else window[-cap_before:]
        return ok({"payload": window, "meta": {"labels": []}})

    send.calls = calls
    return send


def list_all(messages, **kwargs):
    server_kwargs = {
        k: kwargs.pop(k) for k in ("cap_after", "cap_before", "tie_seed", "ignore_params") if k in kwargs
    }
    server = capped_server(messages, **server_kwargs)
    result = api.run_flow(api.list_messages_flow(1, 42, **kwargs), server)
    return result, server.calls


def _assert_doto_or_result(call):
    """The call's result, or None if it raised a DotoError; any other exception fails the test."""
    try:
        return call()
    except DotoError:
        return None
    except Exception as err:
        pytest.fail(f"bare {type(err).__name__}: {err}")


def ids(messages) -> list[int]:
    return [m.id for m in messages]


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


class TestToTimestamp:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (T0, T0),
            (T0 + 0.9, T0),
            (0, 0),
            (dt.datetime(2024, 4, 1, 19, 50, tzinfo=dt.UTC), 1712001000),
            (dt.datetime(2024, 4, 1, 19, 50), 1712001000),  # naive is UTC
            (dt.datetime(2024, 4, 1, 21, 50, tzinfo=dt.timezone(dt.timedelta(hours=2))), 1712001000),
            (pendulum.datetime(2024, 4, 1, 19, 50, tz="UTC"), 1712001000),
            (pendulum.datetime(2024, 4, 1, 15, 50, tz="America/New_York"), 1712001000),
            ("2024-04-01T19:50:00Z", 1712001000),
            ("2024-04-01T19:50:00+00:00", 1712001000),
            ("2024-04-01T21:50:00+02:00", 1712001000),
            ("2024-04-01T19:50:00", 1712001000),
            (" 2024-04-01 19:50:00 ", 1712001000),
            ("1712001000", 1712001000),
            ("1712001000.7", 1712001000),
            ("-5", -5),
            ("9" * 30, int("9" * 30)),
        ],
    )
    def test_accepts(self, value, expected):
        assert api.to_timestamp(value) == expected

    @pytest.mark.parametrize(
        "value",
        [True, False, None, "yesterday", "", "1e400", float("nan"), float("inf"), dt.date(2024, 4, 1), [1]],
    )
    def test_rejects_with_the_argument_name(self, value):
        with pytest.raises(DotoConfigError, match=r"^before must be"):
            api.to_timestamp(value, name="before")


class TestToId:
    @pytest.mark.parametrize(("value", "expected"), [(5, 5), ("5", 5), (" 42 ", 42), (10**12, 10**12)])
    def test_accepts(self, value, expected):
        assert api.to_id(value, name="conversation_id") == expected

    @pytest.mark.parametrize("value", [0, -1, True, False, "abc", "", "-3", 5.0, None, "4.2", "²", "٣", "0"])
    def test_rejects_with_the_argument_name(self, value):
        with pytest.raises(DotoConfigError, match=r"^message_id must be a positive integer"):
            api.to_id(value, name="message_id")

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=12) | st.integers() | st.floats() | st.none() | st.booleans())
    @example("²")
    def test_never_raises_bare(self, value):
        result = _assert_doto_or_result(lambda: api.to_id(value, name="message_id"))
        assert result is None or (isinstance(result, int) and result > 0)


class TestValidateSend:
    def test_valid(self):
        api.validate_send("hi", "outgoing", False, "text", None)
        api.validate_send("hi", "incoming", False, "input_select", {"items": []})
        api.validate_send("note", "outgoing", True, "text", {})

    @pytest.mark.parametrize(
        ("args", "match"),
        [
            (("", "outgoing", False, "text", None), "content must be a non-empty string"),
            (("   ", "outgoing", False, "text", None), "content must be a non-empty string"),
            ((None, "outgoing", False, "text", None), "content must be a non-empty string"),
            ((5, "outgoing", False, "text", None), "content must be a non-empty string"),
            (("hi", "activity", False, "text", None), "message_type must be one of outgoing, incoming"),
            (("hi", 1, False, "text", None), "message_type must be one of"),
            (("hi", None, False, "text", None), "message_type must be one of"),
            (("hi", "outgoing", "yes", "text", None), "private must be True or False"),
            (("hi", "outgoing", 1, "text", None), "private must be True or False"),
            (("hi", "incoming", True, "text", None), "private=True is only for outgoing"),
            (("hi", "outgoing", False, "", None), "content_type must be a non-empty string"),
            (("hi", "outgoing", False, None, None), "content_type must be a non-empty string"),
            (("hi", "outgoing", False, "text", ["a"]), "content_attributes must be a dict, got list"),
            (("hi", "outgoing", False, "text", "x"), "content_attributes must be a dict, got str"),
        ],
    )
    def test_invalid(self, args, match):
        with pytest.raises(DotoConfigError, match=match):
            api.validate_send(*args)

    def test_send_request_validates_before_building(self):
        with pytest.raises(DotoConfigError):
            api.send_request(1, 2, "")


class TestNormaliseBaseUrl:
    @pytest.mark.parametrize(
        ("host", "kwargs", "expected"),
        [
            (None, {}, "https://app.usendoto.com"),
            ("", {}, "https://app.usendoto.com"),
            ("   ", {}, "https://app.usendoto.com"),
            ("doto.example.test", {}, "https://doto.example.test"),
            ("doto.example.test", {"port": 8443}, "https://doto.example.test:8443"),
            ("doto.example.test", {"schema": "https"}, "https://doto.example.test"),
            ("doto.example.test", {"schema": "some_db_schema"}, "https://doto.example.test"),
            ("https://doto.example.test/", {}, "https://doto.example.test"),
            ("https://doto.example.test/base/", {}, "https://doto.example.test/base"),
            ("HTTPS://Doto.Example.TEST:8443", {}, "https://doto.example.test:8443"),
            ("https://[2001:db8::1]:8443/", {}, "https://[2001:db8::1]:8443"),
            ("http://127.0.0.1:8080", {}, "http://127.0.0.1:8080"),
            ("http://127.4.5.6", {}, "http://127.4.5.6"),
            ("http://localhost:3000/", {}, "http://localhost:3000"),
            ("http://[::1]:3000", {}, "http://[::1]:3000"),
            ("127.0.0.1", {"schema": "http", "port": 8080}, "http://127.0.0.1:8080"),
            ("http://doto.internal", {"allow_insecure": True}, "http://doto.internal"),
        ],
    )
    def test_accepts(self, host, kwargs, expected):
        assert api.normalise_base_url("my_doto", host, **kwargs) == expected

    @pytest.mark.parametrize(
        "host",
        [
            "ftp://doto.example.test",
            "https://",
            "https://:443",
            "not a url",
            "https://doto example.test",
            "https://doto.example.test\n.evil",
            "https://doto.example.test:99999",
            "https://doto.example.test:port",
            "http://[::1",
            "https://[not-an-ip]/",
            "://doto.example.test",
        ],
    )
    def test_rejects_what_is_not_a_url(self, host):
        with pytest.raises(
            DotoConfigError, match=r"Doto connection 'my_doto': Base URL .* is not an http\(s\) URL"
        ):
            api.normalise_base_url("my_doto", host)

    @pytest.mark.parametrize(
        "host",
        [
            "http://doto.example.test",
            "http://10.0.0.5:3000",
            "http://localhost.evil.test",
            "http://127.0.0.1.nip.io",
        ],
    )
    def test_plain_http_refused_for_non_loopback(self, host):
        with pytest.raises(DotoConfigError, match=r"'my_doto'.*plain http.*allow_insecure_http"):
            api.normalise_base_url("my_doto", host)
        assert api.normalise_base_url("my_doto", host, allow_insecure=True).startswith("http://")

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("localhost", True),
            ("LOCALHOST", True),
            ("127.0.0.1", True),
            ("127.255.0.9", True),
            ("::1", True),
            ("10.0.0.1", False),
            ("0.0.0.0", False),
            ("example.com", False),
            ("localhost.com", False),
        ],
    )
    def test_is_loopback(self, name, expected):
        assert api.is_loopback(name) is expected


class TestDotoSettings:
    def fields(self, **overrides):
        base = {
            "host": "https://doto.example.test",
            "password": "tok-SECRET-1234",
            "extra": {"account_id": 7},
        }
        base.update(overrides)
        return base

    def test_valid(self):
        settings = api.DotoSettings.from_connection_fields("c1", **self.fields())
        assert settings == api.DotoSettings("https://doto.example.test", "tok-SECRET-1234", 7, 30.0, "c1")
        assert "tok-SECRET-1234" not in repr(settings)
        assert settings.conversation_url(9) == "https://doto.example.test/app/accounts/7/conversations/9"

    @pytest.mark.parametrize(
        ("extra", "account_id", "timeout"),
        [
            ({"account_id": "12"}, 12, 30.0),
            ({"account_id": " 12 ", "timeout": "7.5"}, 12, 7.5),
            ({"account_id": 3, "timeout": 5}, 3, 5.0),
            ({"account_id": 3, "timeout": None}, 3, 30.0),
            ({"account_id": 3, "timeout": ""}, 3, 30.0),
        ],
    )
    def test_extra_coercion(self, extra, account_id, timeout):
        settings = api.DotoSettings.from_connection_fields("c1", **self.fields(extra=extra))
        assert (settings.account_id, settings.timeout) == (account_id, timeout)

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"password": None}, "'c1' has no API Token"),
            ({"password": ""}, "'c1' has no API Token"),
            ({"extra": {}}, "'c1' has no Account ID .*'account_id'"),
            ({"extra": None}, "'c1' has no Account ID"),
            ({"extra": {"account_id": ""}}, "'c1' has no Account ID"),
            ({"extra": {"account_id": "abc"}}, "'c1': Account ID must be an integer, got 'abc'"),
            ({"extra": {"account_id": 1, "timeout": "soon"}}, "'c1': timeout must be a number"),
            ({"extra": {"account_id": 1, "timeout": 0}}, "'c1': timeout must be positive"),
            ({"extra": {"account_id": 1, "timeout": -3}}, "'c1': timeout must be positive"),
            ({"extra": {"account_id": 1, "timeout": [1]}}, "'c1': timeout must be a number"),
            ({"host": "http://doto.example.test"}, "'c1'.*plain http"),
            (
                {
                    "host": "http://doto.example.test",
                    "extra": {"account_id": 1, "allow_insecure_http": "false"},
                },
                "'c1'.*plain http",
            ),
        ],
    )
    def test_problems_name_the_connection_and_field(self, overrides, match):
        with pytest.raises(DotoConfigError, match=match) as info:
            api.DotoSettings.from_connection_fields("c1", **self.fields(**overrides))
        assert "tok-SECRET-1234" not in str(info.value)

    @pytest.mark.parametrize("flag", [True, "true", "True", "1", "yes", "on"])
    def test_allow_insecure_http(self, flag):
        fields = self.fields(
            host="http://doto.internal:3000", extra={"account_id": 1, "allow_insecure_http": flag}
        )
        assert api.DotoSettings.from_connection_fields("c1", **fields).base_url == "http://doto.internal:3000"


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


class TestRequests:
    def test_list_request(self):
        assert api.list_request(1, 42) == api.DotoRequest(
            "GET", "/api/v1/accounts/1/conversations/42/messages"
        )
        request = api.list_request(1, 42, before=20, after=10)
        assert dict(request.params) == {"before": 20, "after": 10}
        assert dict(api.list_request(1, 42, after=0).params) == {"after": 0}
        assert request.url("https://h") == "https://h/api/v1/accounts/1/conversations/42/messages"
        assert request.describe() == "GET /api/v1/accounts/1/conversations/42/messages"

    def test_send_request_body(self):
        request = api.send_request(
            1,
            42,
            "Pick one",
            message_type="incoming",
            content_type="input_select",
            content_attributes={"items": [{"title": "A", "value": "a"}]},
        )
        assert request.method == "POST"
        assert request.path == "/api/v1/accounts/1/conversations/42/messages"
        assert request.json == {
            "content": "Pick one",
            "message_type": "incoming",
            "private": False,
            "content_type": "input_select",
            "content_attributes": {"items": [{"title": "A", "value": "a"}]},
        }
        assert not request.safe_to_resend

    def test_send_request_defaults(self):
        assert api.send_request(1, 42, "hi").json == {
            "content": "hi",
            "message_type": "outgoing",
            "private": False,
            "content_type": "text",
        }

    def test_delete_request(self):
        request = api.delete_request(1, 42, 9)
        assert (request.method, request.path) == ("DELETE", "/api/v1/accounts/1/conversations/42/messages/9")
        assert request.safe_to_resend

    def test_headers(self):
        assert api.headers("tok-SECRET") == {"api_access_token": "tok-SECRET", "Accept": "application/json"}


# --------------------------------------------------------------------------------------------
# Responses and errors
# --------------------------------------------------------------------------------------------

REQ = api.list_request(1, 42)


class TestErrorForStatus:
    @pytest.mark.parametrize("status", [200, 201, 204, 299])
    def test_success_is_none(self, status):
        assert api.error_for_status(REQ, api.DotoResponse(status, {}, b"")) is None

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (401, DotoAuthError),
            (403, DotoAuthError),
            (404, DotoNotFoundError),
            (422, DotoValidationError),
            (429, DotoRateLimitError),
            (500, DotoServerError),
            (502, DotoServerError),
            (503, DotoServerError),
            (504, DotoServerError),
            (400, DotoHTTPError),
            (302, DotoHTTPError),
            (418, DotoHTTPError),
        ],
    )
    def test_class_and_message(self, status, cls):
        error = api.error_for_status(REQ, ok({"error": "Something specific"}, status=status))
        assert type(error) is cls
        assert (error.method, error.path, error.status, error.doto_error) == (
            "GET",
            "/api/v1/accounts/1/conversations/42/messages",
            status,
            "Something specific",
        )
        text = str(error)
        assert f"Doto GET /api/v1/accounts/1/conversations/42/messages failed with HTTP {status}" in text
        assert text.count("Something specific") == 1

    def test_auth_error_says_check_the_token(self):
        error = api.error_for_status(REQ, ok({"error": "Invalid Access Token"}, status=401))
        assert "Invalid Access Token" in str(error) and "API Token" in str(error)

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (b'{"error": "Resource could not be found"}', "Resource could not be found"),
            (b'{"message": "Bad thing"}', "Bad thing"),
            (b'{"errors": ["a is bad", "b is bad"]}', "a is bad; b is bad"),
            (b'{"errors": {"content": ["blank"]}}', None),
            (b'{"error": 5}', None),
            (b"[1, 2]", None),
            (b"<html><body>Bad gateway secret-internal-detail</body></html>", None),
            (b"", None),
            (b"\xff\xfe\x00garbage", None),
            (b"[" * 100_000, None),
        ],
    )
    def test_doto_error_text_only_from_json(self, body, expected):
        error = api.error_for_status(REQ, api.DotoResponse(502, {}, body))
        assert error.doto_error == expected
        assert "secret-internal-detail" not in str(error)
        assert str(error).endswith(f"HTTP 502: {expected}" if expected else "HTTP 502")

    def test_doto_error_text_is_bounded(self):
        error = api.error_for_status(REQ, ok({"error": "x" * 5000}, status=422))
        assert len(error.doto_error) == 300

    def test_rate_limit_retry_after(self):
        assert (
            api.error_for_status(REQ, ok({}, status=429, headers={"retry-after": "17"})).retry_after == 17.0
        )
        assert api.error_for_status(REQ, ok({}, status=429)).retry_after is None
        assert api.error_for_status(REQ, ok({}, status=429, headers={"retry-after": "²"})).retry_after is None
        future = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90), usegmt=True)
        wait = api.error_for_status(REQ, ok({}, status=429, headers={"retry-after": future})).retry_after
        assert 85 <= wait <= 90

    def test_parse_json_non_json_success(self):
        with pytest.raises(
            DotoResponseError, match=r"GET /api/v1/accounts/1/conversations/42/messages.*HTTP 200"
        ) as info:
            api.parse_json(REQ, api.DotoResponse(200, {}, b"<html>login page</html>"))
        assert (info.value.method, info.value.path) == ("GET", REQ.path)
        assert "login page" not in str(info.value)

    def test_parse_json_raises_typed_error_first(self):
        with pytest.raises(DotoNotFoundError):
            api.parse_json(REQ, ok({"error": "Resource could not be found"}, status=404))


class TestRetryAfterSeconds:
    NOW = dt.datetime(2024, 4, 1, 12, 0, 0, tzinfo=dt.UTC)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 3 ", 3.0),
            ("0", 0.0),
            ("Mon, 01 Apr 2024 12:00:30 GMT", 30.0),
            ("Mon, 01 Apr 2024 11:59:00 GMT", 0.0),  # in the past: no wait
            ("Mon, 01 Apr 2024 12:00:30 -0000", 30.0),
            (None, None),
            ("", None),
            ("soon", None),
            ("-5", None),
            ("1.5", None),
            ("²", None),  # a digit to str.isdigit(), not to float()
            ("٣", None),
        ],
    )
    def test_values(self, value, expected):
        assert api.retry_after_seconds(value, now=self.NOW) == expected

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40))
    @example("²")
    @example("Mon, 01 Apr 99999 12:00:30 GMT")
    def test_never_raises(self, value):
        result = api.retry_after_seconds(value, now=self.NOW)
        assert result is None or (isinstance(result, float) and result >= 0)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


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
        m = api.parse_message(payload)
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
            attachments=({"id": 1, "file_type": "image"},),
        )
        assert m.raw == payload
        assert m.raw["conversation_id"] == 42  # keys the model does not know stay reachable
        assert m.sender_type == "Contact"

    def test_defaults_for_missing_optional_keys(self):
        m = api.parse_message({"id": 1, "created_at": T0, "message_type": "outgoing"})
        assert (m.content, m.private, m.status, m.content_type) == (None, False, None, "text")
        assert (m.content_attributes, m.sender, m.attachments, m.sender_type) == ({}, None, (), None)
        assert not m.is_deleted

    def test_null_and_wrong_typed_optional_keys(self):
        m = api.parse_message(
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
        assert (m.content_attributes, m.sender, m.attachments) == ({}, None, ({"id": 2},))

    def test_partial_sender(self):
        m = api.parse_message(msg(1, T0, sender={"id": True, "name": 5, "type": "User"}))
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
        assert api.parse_message(msg(1, T0, message_type=raw)).message_type == expected

    @pytest.mark.parametrize(
        ("created_at", "expected"),
        [(T0, T0), (T0 + 0.99, T0), (str(T0), T0), ("2024-04-01T19:50:00Z", 1712001000)],
    )
    def test_created_at_forms(self, created_at, expected):
        assert api.parse_message(msg(1, created_at)).created_at == expected

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
            api.parse_message(payload)

    def test_created_at_datetime_is_pendulum_utc(self):
        m = api.parse_message(msg(1, 1712001000))
        assert isinstance(m.created_at_datetime, pendulum.DateTime)
        assert m.created_at_datetime == pendulum.datetime(2024, 4, 1, 19, 50, tz="UTC")
        assert m.created_at_datetime.utcoffset() == dt.timedelta(0)

    def test_deleted(self):
        assert api.parse_message(msg(1, T0, content_attributes={"deleted": True})).is_deleted
        assert not api.parse_message(msg(1, T0, content_attributes={"deleted": False})).is_deleted

    def test_to_dict_is_json_safe_and_round_trips(self):
        m = api.parse_message(
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

    def test_to_dict_round_trip_without_sender(self):
        m = api.parse_message({"id": 1, "created_at": T0, "message_type": 2})
        assert api.Message.from_dict(json.loads(json.dumps(m.to_dict()))) == m

    def test_raw_is_not_compared(self):
        a = api.parse_message(msg(1, T0, extra="a"))
        b = api.parse_message(msg(1, T0, extra="b"))
        assert a == b and a.raw != b.raw


class TestParseLists:
    def test_payload_and_meta(self):
        page = api.parse_message_list(
            REQ, ok({"meta": {"contact": {}}, "payload": [msg(1, T0), msg(2, T0, 1)]})
        )
        assert ids(page) == [1, 2]
        assert page[1].message_type == "outgoing"

    def test_bare_list(self):
        assert ids(api.parse_message_list(REQ, ok([msg(3, T0)]))) == [3]

    @pytest.mark.parametrize(
        "payload", [{"payload": None}, {"data": []}, {"payload": {"id": 1}}, "text", 5, None]
    )
    def test_no_payload_list(self, payload):
        with pytest.raises(DotoResponseError, match=r"returned no 'payload' list") as info:
            api.parse_message_list(REQ, ok(payload))
        assert info.value.path == REQ.path

    def test_bad_item_names_the_request(self):
        with pytest.raises(
            DotoResponseError, match=r"message in GET /api/v1/accounts/1/conversations/42/messages"
        ):
            api.parse_message_list(REQ, ok({"payload": [msg(1, T0), {"id": 2}]}))

    def test_single_message_plain_and_wrapped(self):
        post = api.send_request(1, 42, "hi")
        assert api.parse_single_message(post, ok(msg(5, T0, 1))).id == 5
        assert api.parse_single_message(post, ok({"payload": msg(6, T0, 1)})).id == 6
        with pytest.raises(DotoResponseError, match=r"answer to POST"):
            api.parse_single_message(post, ok({"payload": [msg(6, T0, 1)]}))

    def test_sort_messages_oldest_first_ids_break_ties(self):
        messages = [api.parse_message(msg(i, ts)) for i, ts in [(5, T0), (2, T0 + 1), (3, T0), (1, T0 + 1)]]
        assert ids(api.sort_messages(messages)) == [3, 5, 1, 2]


# --------------------------------------------------------------------------------------------
# Flows
# --------------------------------------------------------------------------------------------


class TestFlowsByHand:
    def test_list_flow_driven_by_hand(self):
        flow = api.list_messages_flow(1, 42, after=T0)
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
        flow = api.list_messages_flow(1, 42, before=T0 + 100)
        assert dict(next(flow).params) == {"before": T0 + 100}
        page = [msg(i, T0 + 50 + i) for i in range(1, 21)]  # newest 20 before the bound
        second = flow.send(ok({"payload": page}))
        assert dict(second.params) == {"before": T0 + 51 + 1}
        with pytest.raises(StopIteration) as done:
            flow.send(ok({"payload": [msg(0, T0), page[0]]}))
        assert ids(done.value.value) == list(range(21))

    def test_list_flow_drops_messages_outside_a_strict_window(self):
        flow = api.list_messages_flow(1, 42, after=T0, before=T0 + 10)
        next(flow)
        with pytest.raises(StopIteration) as done:
            flow.send(ok({"payload": [msg(1, T0), msg(2, T0 + 1), msg(3, T0 + 9), msg(4, T0 + 10)]}))
        assert ids(done.value.value) == [2, 3]

    def test_list_flow_propagates_errors(self):
        flow = api.list_messages_flow(1, 42)
        next(flow)
        with pytest.raises(DotoAuthError):
            flow.send(ok({"error": "Invalid Access Token"}, status=401))

    def test_send_flow(self):
        flow = api.send_message_flow(1, 42, "hi", private=True)
        request = next(flow)
        assert request.json["private"] is True
        with pytest.raises(StopIteration) as done:
            flow.send(ok(msg(9, T0, "outgoing", private=True)))
        assert done.value.value.id == 9

    @pytest.mark.parametrize(
        ("status", "missing_ok", "outcome"),
        [
            (200, False, True),
            (204, True, True),
            (404, True, False),
            (404, False, DotoNotFoundError),
            (500, True, DotoServerError),
            (401, True, DotoAuthError),
        ],
    )
    def test_delete_flow(self, status, missing_ok, outcome):
        flow = api.delete_message_flow(1, 42, 9, missing_ok=missing_ok)
        assert next(flow).path.endswith("/messages/9")
        response = ok({"error": "Resource could not be found"}, status=status)
        if isinstance(outcome, bool):
            with pytest.raises(StopIteration) as done:
                check = flow.send(response)
                # missing_ok: one list request tells a missing message from a missing conversation
                assert (check.method, check.params) == ("GET", {"after": 2**31 - 1})
                flow.send(ok({"payload": []}))
            assert done.value.value is outcome
        else:
            with pytest.raises(outcome):
                flow.send(response)

    def test_run_flow_returns_the_value(self):
        sent = []

        def send(request):
            sent.append(request)
            return ok(msg(1, T0, 1))

        assert api.run_flow(api.send_message_flow(1, 42, "x"), send).id == 1
        assert [r.method for r in sent] == ["POST"]


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

        assert ids(api.run_flow(api.list_messages_flow(1, 42), send)) == [1, 2]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        per_second=st.lists(st.integers(0, 45), min_size=1, max_size=12),
        caps=st.sampled_from([(100, 20), (20, 20), (100, 100), (30, 20)]),
        window=st.tuples(st.none() | st.integers(-1, 12), st.none() | st.integers(0, 13)),
        tie_seed=st.integers(0, 1000),
    )
    def test_property_every_message_exactly_once(self, per_second, caps, window, tie_seed):
        cap_after, cap_before = caps
        messages, next_id = [], 1
        for second, count in enumerate(per_second):
            for _ in range(min(count, cap_after)):  # at most a forward page per second: all reachable
                messages.append(msg(next_id, T0 + second))
                next_id += 1
        random.Random(tie_seed).shuffle(messages)
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
# Retry policy
# --------------------------------------------------------------------------------------------

GET = api.list_request(1, 42)
DELETE = api.delete_request(1, 42, 9)
POST = api.send_request(1, 42, "hi")


def http_error(status: int, retry_after: float | None = None) -> DotoHTTPError:
    error = api.error_for_status(
        GET, ok({}, status=status, headers={"retry-after": str(retry_after)} if retry_after else {})
    )
    assert error is not None
    return error


ERRORS = {
    "connect": DotoConnectError("x"),
    "timeout": DotoTimeoutError("x"),
    "lost": DotoConnectionLostError("x"),
    "429": http_error(429),
    "500": http_error(500),
    "502": http_error(502),
    "503": http_error(503),
    "504": http_error(504),
    "401": http_error(401),
    "404": http_error(404),
    "422": http_error(422),
    "400": http_error(400),
    "not-json": DotoResponseError("x"),
    "config": DotoConfigError("x"),
    "other": RuntimeError("x"),
}
RETRIED = {
    "GET": {"connect", "timeout", "lost", "429", "502", "503", "504"},
    "DELETE": {"connect", "timeout", "lost", "429", "502", "503", "504"},
    # A POST is re-sent only when it certainly created nothing.
    "POST": {"connect", "429"},
}


@pytest.mark.parametrize("error_name", list(ERRORS))
@pytest.mark.parametrize("request_", [GET, DELETE, POST], ids=lambda r: r.method)
def test_is_retryable_table(request_, error_name):
    assert api.is_retryable(request_, ERRORS[error_name]) is (error_name in RETRIED[request_.method])


class TestRetryPolicy:
    def test_exponential_backoff_capped(self):
        policy = api.RetryPolicy(backoff=1.0, max_wait=10.0)
        assert [policy.wait_for(n, DotoServerError("x", status=503)) for n in range(1, 7)] == [
            1,
            2,
            4,
            8,
            10,
            10,
        ]
        assert policy.wait_for(1, None) == 1

    def test_retry_after_wins_and_is_capped(self):
        policy = api.RetryPolicy(backoff=0.001, max_wait=60.0)
        assert policy.wait_for(1, http_error(429, retry_after=7)) == 7
        assert policy.wait_for(4, http_error(429, retry_after=7)) == 7
        assert policy.wait_for(1, http_error(429, retry_after=3600)) == 60
        assert policy.wait_for(2, http_error(429)) == 0.002  # no Retry-After: back off

    def test_retry_wait(self):
        assert api.retry_wait(http_error(429, retry_after=5)) == 5
        assert api.retry_wait(http_error(503)) is None
        assert api.retry_wait(None) is None

    def test_defaults(self):
        policy = api.RetryPolicy()
        assert (policy.attempts, policy.backoff, policy.max_wait, policy.total) == (5, 1.0, 60.0, 120.0)


def test_describe_error_never_leaks_foreign_messages():
    assert (
        api.describe_error(DotoAuthError("Doto GET /x failed", status=401))
        == "DotoAuthError: Doto GET /x failed"
    )
    assert api.describe_error(RuntimeError("https://u:tok-SECRET@h")) == "RuntimeError"


# --------------------------------------------------------------------------------------------
# MessageWatch
# --------------------------------------------------------------------------------------------


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
        result = api.run_flow(watch.poll_flow(1, 42), server)
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
        watch.feed([api.parse_message(msg(1, T0 + 10))])
        watch.feed([api.parse_message(msg(2, T0 + 3))])
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
# Duplicate-safe sending
# --------------------------------------------------------------------------------------------


class TestDelivery:
    def test_delivery_key_stable_and_distinct(self):
        key = api.delivery_key("dag", "task", "run", 0, 42)
        assert key == api.delivery_key("dag", "task", "run", 0, 42)
        assert len(key) == 24 and int(key, 16) >= 0
        others = {
            api.delivery_key("dag2", "task", "run", 0, 42),
            api.delivery_key("dag", "task2", "run", 0, 42),
            api.delivery_key("dag", "task", "run2", 0, 42),
            api.delivery_key("dag", "task", "run", 1, 42),
            api.delivery_key("dag", "task", "run", 0, 43),
            api.delivery_key("da", "gtask", "run", 0, 42),
        }
        assert key not in others and len(others) == 6

    def test_find_delivered_by_key(self):
        key = api.delivery_key("d", "t", "r")
        messages = [
            api.parse_message(msg(1, T0, "outgoing", content="hi")),
            api.parse_message(
                msg(2, T0, "outgoing", content="other", content_attributes={"airflow_delivery_key": key})
            ),
        ]
        assert api.find_delivered(messages, key, "hi", "outgoing", False).id == 2

    def test_find_delivered_skips_deleted_and_other_keys(self):
        key = api.delivery_key("d", "t", "r")
        messages = [
            api.parse_message(
                msg(
                    1,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": key, "deleted": True},
                )
            ),
            api.parse_message(
                msg(
                    2,
                    T0,
                    "outgoing",
                    content="hi",
                    content_attributes={"airflow_delivery_key": "someone-else"},
                )
            ),
        ]
        assert api.find_delivered(messages, key, "hi", "outgoing", False) is None

    def test_find_delivered_by_content_when_attributes_not_echoed(self):
        messages = [
            api.parse_message(msg(1, T0, "outgoing", content="hi", private=True)),
            api.parse_message(msg(2, T0, "incoming", content="hi")),
            api.parse_message(msg(3, T0, "outgoing", content="hi")),
        ]
        assert api.find_delivered(messages, "k", "hi", "outgoing", False).id == 3
        assert api.find_delivered(messages, "k", "bye", "outgoing", False) is None
        assert api.find_delivered([], "k", "hi", "outgoing", False) is None


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
        m = _assert_doto_or_result(lambda: api.parse_message(payload))
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
        response = api.DotoResponse(status, {} if retry_after is None else {"retry-after": retry_after}, body)
        error = api.error_for_status(REQ, response)
        assert (error is None) == (200 <= status < 300)
        page = _assert_doto_or_result(lambda: api.parse_message_list(REQ, response))
        assert page is None or all(isinstance(m, api.Message) for m in page)
        post = api.send_request(1, 42, "hi")
        single = _assert_doto_or_result(lambda: api.parse_single_message(post, response))
        assert single is None or isinstance(single, api.Message)
        deleted = _assert_doto_or_result(
            lambda: api.run_flow(api.delete_message_flow(1, 42, 1), lambda r: response)
        )
        assert deleted in (None, True)

    @settings(max_examples=200, deadline=None)
    @example(value="9" * 400)
    @example(value=float("nan"))
    @given(
        value=st.text(max_size=40)
        | st.floats()
        | st.integers()
        | st.datetimes(timezones=st.none() | st.timezones())
    )
    def test_to_timestamp_never_raises_bare(self, value):
        result = _assert_doto_or_result(lambda: api.to_timestamp(value))
        assert result is None or isinstance(result, int)

    @settings(max_examples=200, deadline=None)
    @given(
        host=st.text(max_size=40)
        | st.builds(
            lambda s, h: f"{s}://{h}", st.sampled_from(["http", "https", "ftp"]), st.text(max_size=30)
        ),
        port=st.none() | st.integers(-5, 70000),
    )
    @example(host="http://[::1", port=None)
    @example(host="https://[zz]/", port=None)
    def test_normalise_base_url_never_raises_bare(self, host, port):
        result = _assert_doto_or_result(lambda: api.normalise_base_url("c", host, port=port))
        assert result is None or result.startswith(("https://", "http://"))
