"""``_http``: requests as data, and the mapping of responses onto typed errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import json
import pickle
import traceback

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._http import (
    DotoRequest,
    DotoResponse,
    delete_request,
    error_for_status,
    headers,
    list_request,
    parse_json,
    retry_after_seconds,
    send_request,
    tls_error,
)
from airflow_provider_doto.api._retry_policy import is_retryable
from airflow_provider_doto.exceptions import (
    DotoAuthError,
    DotoHTTPError,
    DotoNotFoundError,
    DotoRateLimitError,
    DotoResponseError,
    DotoServerError,
    DotoValidationError,
)
from airflow_provider_doto.triggers.doto import FATAL_ERRORS

from ._support import BASE, BOT_401, DOTO_404, RAILS_404, REQ, answer, ok

POST = send_request(1, 42, "hello")
GET = list_request(1, 42)


class TestRequests:
    def test_list_request(self):
        assert list_request(1, 42) == DotoRequest("GET", "/api/v1/accounts/1/conversations/42/messages")
        request = list_request(1, 42, before=20, after=10)
        assert dict(request.params) == {"before": 20, "after": 10}
        assert dict(list_request(1, 42, after=0).params) == {"after": 0}
        assert request.url("https://h") == "https://h/api/v1/accounts/1/conversations/42/messages"
        assert request.describe() == "GET /api/v1/accounts/1/conversations/42/messages"

    def test_send_request_body(self):
        request = send_request(
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
        assert send_request(1, 42, "hi").json == {
            "content": "hi",
            "message_type": "outgoing",
            "private": False,
            "content_type": "text",
        }

    def test_delete_request(self):
        request = delete_request(1, 42, 9)
        assert (request.method, request.path) == ("DELETE", "/api/v1/accounts/1/conversations/42/messages/9")
        assert request.safe_to_resend

    def test_headers(self):
        assert headers("tok-SECRET") == {"api_access_token": "tok-SECRET", "Accept": "application/json"}


class TestErrorForStatus:
    @pytest.mark.parametrize("status", [200, 201, 204, 299])
    def test_success_is_none(self, status):
        assert error_for_status(REQ, DotoResponse(status, {}, b"")) is None

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
        error = error_for_status(REQ, ok({"error": "Something specific"}, status=status))
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
        error = error_for_status(REQ, ok({"error": "Invalid Access Token"}, status=401))
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
        error = error_for_status(REQ, DotoResponse(502, {}, body))
        assert error.doto_error == expected
        assert "secret-internal-detail" not in str(error)
        assert str(error).endswith(f"HTTP 502: {expected}" if expected else "HTTP 502")

    def test_doto_error_text_is_bounded(self):
        error = error_for_status(REQ, ok({"error": "x" * 5000}, status=422))
        assert len(error.doto_error) == 300

    def test_rate_limit_retry_after(self):
        assert error_for_status(REQ, ok({}, status=429, headers={"retry-after": "17"})).retry_after == 17.0
        assert error_for_status(REQ, ok({}, status=429)).retry_after is None
        assert error_for_status(REQ, ok({}, status=429, headers={"retry-after": "²"})).retry_after is None

    def test_rate_limit_retry_after_date_counts_from_when_the_response_arrived(self):
        received = dt.datetime(2024, 4, 1, 12, 0, 0, tzinfo=dt.UTC)
        later = email.utils.format_datetime(received + dt.timedelta(seconds=90), usegmt=True)
        response = ok({}, status=429, headers={"retry-after": later})
        stamped = dataclasses.replace(response, received_at=received)
        assert error_for_status(REQ, stamped).retry_after == 90.0
        # Not stamped: the core reads no clock, so a date cannot be counted (the policy backs off).
        assert error_for_status(REQ, response).retry_after is None

    def test_parse_json_non_json_success(self):
        with pytest.raises(
            DotoResponseError, match=r"GET /api/v1/accounts/1/conversations/42/messages.*HTTP 200"
        ) as info:
            parse_json(REQ, DotoResponse(200, {}, b"<html>login page</html>"))
        assert (info.value.method, info.value.path) == ("GET", REQ.path)
        assert "login page" not in str(info.value)

    @pytest.mark.parametrize(
        ("body", "complaint"),
        [
            (
                b'{"token": "s3cret-body", ',
                "JSONDecodeError: Expecting property name enclosed in double quotes",
            ),
            (b'"s3cret-body \xff"', "UnicodeDecodeError: utf-8 invalid start byte at byte 13"),
            (b"[" * 100_000 + b'"s3cret-body"', "RecursionError: nested too deeply"),
        ],
    )
    def test_parse_json_keeps_the_complaint_not_the_body(self, body, complaint):
        # The decoder's own error holds the whole body (JSONDecodeError.doc, UnicodeDecodeError.object):
        # the cause names what went wrong and where, and the decoder's error is not reachable at all.
        with pytest.raises(DotoResponseError) as info:
            parse_json(REQ, DotoResponse(200, {}, body))
        cause = info.value.__cause__
        assert type(cause) is ValueError and str(cause).startswith(complaint)
        assert info.value.__context__ is None and cause.__context__ is None
        logged = "".join(traceback.format_exception(info.value)) + repr(cause) + repr(vars(cause))
        assert "s3cret-body" not in logged

    def test_parse_json_raises_typed_error_first(self):
        with pytest.raises(DotoNotFoundError):
            parse_json(REQ, ok({"error": "Resource could not be found"}, status=404))


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
        assert retry_after_seconds(value, now=self.NOW) == expected

    def test_a_date_needs_now_but_seconds_do_not(self):
        assert retry_after_seconds("Mon, 01 Apr 2024 12:00:30 GMT", now=None) is None
        assert retry_after_seconds("7", now=None) == 7.0
        naive = self.NOW.replace(tzinfo=None)  # naive means UTC
        assert retry_after_seconds("Mon, 01 Apr 2024 12:00:30 GMT", now=naive) == 30.0

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40))
    @example("²")
    @example("Mon, 01 Apr 99999 12:00:30 GMT")
    def test_never_raises(self, value):
        result = retry_after_seconds(value, now=self.NOW)
        assert result is None or (isinstance(result, float) and result >= 0)


# --------------------------------------------------------------------------------------------
# Server differences: the flood guard, bot tokens, 404s that are not Doto's
# --------------------------------------------------------------------------------------------


class TestFloodGuard:
    def test_is_rate_limiting(self):
        error = error_for_status(POST, answer({"error": "Too many messages"}, 422))
        assert type(error) is DotoRateLimitError
        assert (error.status, error.retry_after, error.doto_error) == (422, 15.0, "Too many messages")
        assert "flood guard" in str(error) and "HTTP 422" in str(error)

    def test_other_422s_stay_validation_errors(self):
        error = error_for_status(
            POST, answer({"error": "Incoming messages are only allowed in Api inboxes"}, 422)
        )
        assert type(error) is DotoValidationError

    def test_retried_even_for_a_post(self):
        error = error_for_status(POST, answer({"error": "Validation failed: Too many messages"}, 422))
        assert is_retryable(POST, error)
        policy = api.RetryPolicy(backoff=1.0)
        # No Retry-After from Chatwoot: a quarter of its one-minute window each time, so the
        # default budget's four waits see the window slide (capped by the policy's max_wait).
        assert [policy.wait_for(n, error) for n in (1, 2, 3)] == [15.0, 15.0, 15.0]
        assert api.RetryPolicy(max_wait=5).wait_for(1, error) == 5

    def test_not_fatal_for_the_trigger(self):
        assert not issubclass(DotoRateLimitError, DotoValidationError)
        error = error_for_status(POST, answer({"error": "Too many messages"}, 422))
        assert not isinstance(error, FATAL_ERRORS)

    def test_survives_pickling(self):
        error = error_for_status(POST, answer({"error": "Too many messages"}, 422))
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again), again.status) == (DotoRateLimitError, str(error), 422)


class TestBotToken:
    def test_named_as_a_bot_token(self):
        error = error_for_status(GET, answer(BOT_401, 401))
        assert type(error) is DotoAuthError and error.status == 401
        text = str(error)
        assert "agent bot" in text and "only send" in text and "user's) access token" in text

    def test_wrong_token_still_points_at_the_token(self):
        error = error_for_status(GET, answer({"error": "Invalid Access Token"}, 401))
        assert "check the connection's API Token" in str(error) and "bot" not in str(error)


class TestNotFound:
    def test_doto_404_names_the_base_url(self):
        error = error_for_status(GET, answer(DOTO_404, 404))
        assert type(error) is DotoNotFoundError
        assert str(error).endswith(f"Resource could not be found (at {BASE})")
        assert "no Doto API" not in str(error)

    @pytest.mark.parametrize("body", [RAILS_404, b"<html><h1>Not Found</h1></html>", b"", {}])
    def test_a_404_that_is_not_doto_means_a_wrong_base_url(self, body):
        error = error_for_status(GET, answer(body, 404))
        assert type(error) is DotoNotFoundError and error.status == 404
        assert f"no Doto API at {BASE}: check the Base URL (its path)" in str(error)
        assert "<html>" not in str(error)

    def test_without_a_base_url(self):
        response = DotoResponse(404, {}, json.dumps(RAILS_404).encode())  # old constructor call
        assert "no Doto API at this Base URL" in str(error_for_status(GET, response))


class TestTlsError:
    def test_names_the_transports_hint_in_one_sentence(self):
        err = tls_error(REQ, BASE, OSError("boom"), hint="the certificate expired")
        assert str(err) == (
            f"Doto {REQ.describe()}: TLS handshake failed with {BASE} (OSError), so nothing reached Doto, "
            "likely because the certificate expired"
        )
        assert (err.method, err.path) == (REQ.method, REQ.path)

    def test_without_a_hint_names_both_usual_causes(self):
        text = str(tls_error(REQ, BASE))
        assert text.count("likely because") == 1
        assert "not speaking https" in text and "certificate is not trusted" in text
