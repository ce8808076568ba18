"""DotoHook over requests, against requests-mock: connection, every method, errors, retries, paging."""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import logging
import re

import pendulum
import pytest
import requests
import requests_mock
import tenacity
import urllib3.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._http import DotoRequest
from airflow_provider_doto.api._retry_policy import is_retryable
from airflow_provider_doto.api._settings import DEFAULT_BASE_URL
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
from airflow_provider_doto.hooks.doto import DotoHook

TOKEN = "tok-SECRET-3f9a7c"
BASE = "https://doto.example.test"
CONN_ID = "doto_test"
PATH = "/api/v1/accounts/1/conversations/42/messages"
LIST_URL = BASE + PATH
T0 = 1_712_001_000


def msg(mid: int, ts: int = T0, message_type="incoming", **extra) -> dict:
    return {"id": mid, "content": f"message {mid}", "message_type": message_type, "created_at": ts, **extra}


def set_conn(monkeypatch, conn_id: str = CONN_ID, value: str | dict | None = None, **extra) -> None:
    """Define a connection through AIRFLOW_CONN_<ID> (no metadata DB): JSON for dicts, URI for str."""
    if value is None:
        # requests-mock answers every list alike, so these tests pin Doto's reading (timestamps). They
        # are about one request's retries and errors: pacing is off (it has tests/hooks/test_pacing.py).
        extra = {"flavor": "doto", "max_requests_per_minute": 0, **extra}
        value = {"conn_type": "doto", "host": BASE, "password": TOKEN, "extra": {"account_id": 1, **extra}}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", value if isinstance(value, str) else json.dumps(value)
    )


@pytest.fixture
def conn(monkeypatch):
    set_conn(monkeypatch)


@pytest.fixture
def sleeps(monkeypatch):
    """Record the waits tenacity asks for instead of sleeping (tenacity sleeps through time.sleep)."""
    waits: list[float] = []
    monkeypatch.setattr(tenacity.nap.time, "sleep", waits.append)
    return waits


def close_session(hook: DotoHook) -> None:
    """Close the hook's keep-alive session if it made one (a worker's task process just exits)."""
    if "session" in hook.__dict__:
        hook.session.close()


@pytest.fixture
def hook(conn, sleeps):
    hook = DotoHook(CONN_ID, retry_policy=api.RetryPolicy(attempts=3, backoff=0.001))
    yield hook
    close_session(hook)


@pytest.fixture
def one_shot(conn):
    """A hook that never retries: the first failure is the answer."""
    hook = DotoHook(CONN_ID, retry_policy=api.RetryPolicy(attempts=1))
    yield hook
    close_session(hook)


def connect_refused() -> requests.ConnectionError:
    """What requests raises when the TCP connection cannot be opened."""
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, PATH, reason=reason))


def connection_dropped() -> requests.ConnectionError:
    """What requests raises when the server closes the connection before answering."""
    return requests.ConnectionError(
        urllib3.exceptions.ProtocolError(
            "Connection aborted.",
            http.client.RemoteDisconnected("Remote end closed connection without response"),
        )
    )


def assert_clean(error: BaseException | None) -> None:
    """Errors never carry the token, in their text or anywhere in their cause chain."""
    while error is not None:
        assert TOKEN not in str(error) and TOKEN not in repr(error)
        error = error.__cause__ or error.__context__


# --------------------------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------------------------


class TestConnection:
    def test_json_form(self, monkeypatch):
        set_conn(monkeypatch, timeout=12.5)
        settings = DotoHook(CONN_ID).settings
        assert (
            settings.base_url,
            settings.token,
            settings.account_id,
            settings.timeout,
            settings.conn_id,
        ) == (
            BASE,
            TOKEN,
            1,
            12.5,
            CONN_ID,
        )

    @pytest.mark.parametrize(
        ("uri", "base_url", "account_id"),
        [
            ("doto://:tok-SECRET-3f9a7c@doto.example.test/?account_id=1", "https://doto.example.test", 1),
            (
                "doto://:tok-SECRET-3f9a7c@doto.example.test:8443/?account_id=7",
                "https://doto.example.test:8443",
                7,
            ),
            (
                "doto://:tok-SECRET-3f9a7c@https%3A%2F%2Fdoto.example.test%2Fdoto%2F/?account_id=1",
                "https://doto.example.test/doto",
                1,
            ),
            ("doto://:tok-SECRET-3f9a7c@127.0.0.1:8080/http?account_id=1", "http://127.0.0.1:8080", 1),
            ("doto://:tok-SECRET-3f9a7c@/?account_id=1", "https://app.usendoto.com", 1),
        ],
    )
    def test_uri_form(self, monkeypatch, uri, base_url, account_id):
        set_conn(monkeypatch, value=uri)
        settings = DotoHook(CONN_ID).settings
        assert (settings.base_url, settings.token, settings.account_id) == (base_url, TOKEN, account_id)

    def test_uri_form_request_goes_to_the_right_url(self, monkeypatch, requests_mock):
        set_conn(monkeypatch, value="doto://:tok-SECRET-3f9a7c@doto.example.test/?account_id=1")
        requests_mock.get(LIST_URL, json={"payload": [msg(1)]})
        assert [m.id for m in DotoHook(CONN_ID).list_messages(42)] == [1]
        assert requests_mock.last_request.headers["api_access_token"] == TOKEN

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            (
                {"conn_type": "doto", "host": BASE, "password": TOKEN},
                r"'doto_test' has no Account ID .*'account_id'",
            ),
            (
                {"conn_type": "doto", "host": BASE, "extra": {"account_id": 1}},
                r"'doto_test' has no API Token \(the connection's password\)",
            ),
            ("doto://doto.example.test/?account_id=1", r"'doto_test' has no API Token"),
            ("doto://:tok-SECRET-3f9a7c@doto.example.test/", r"'doto_test' has no Account ID"),
            (
                {"conn_type": "doto", "host": BASE, "password": TOKEN, "extra": {"account_id": "one"}},
                r"'doto_test': Account ID must be an integer",
            ),
            (
                {
                    "conn_type": "doto",
                    "host": "ftp://doto.example.test",
                    "password": TOKEN,
                    "extra": {"account_id": 1},
                },
                r"'doto_test': Base URL 'ftp://doto.example.test' is not an http\(s\) URL",
            ),
            (
                {"conn_type": "doto", "host": "https://[bad", "password": TOKEN, "extra": {"account_id": 1}},
                r"'doto_test': Base URL .* is not an http\(s\) URL",
            ),
            (
                {
                    "conn_type": "doto",
                    "host": "http://doto.example.test",
                    "password": TOKEN,
                    "extra": {"account_id": 1},
                },
                r"'doto_test': .*plain http.*allow_insecure_http",
            ),
        ],
    )
    def test_config_errors_name_the_connection_and_field(self, monkeypatch, requests_mock, value, match):
        set_conn(monkeypatch, value=value)
        hook = DotoHook(CONN_ID)
        with pytest.raises(DotoConfigError, match=match) as info:
            hook.list_messages(42)
        assert_clean(info.value)
        assert requests_mock.call_count == 0

    def test_unknown_conn_id(self, requests_mock):
        hook = DotoHook("doto_nowhere")  # constructing reads nothing
        with pytest.raises(DotoConfigError, match=r"'doto_nowhere' could not be loaded"):
            hook.send_message(42, "hi")
        assert requests_mock.call_count == 0

    def test_connection_is_read_lazily(self, monkeypatch, requests_mock):
        hook = DotoHook("doto_later")
        set_conn(monkeypatch, "doto_later")  # defined after the hook was built
        requests_mock.get(LIST_URL, json={"payload": []})
        assert hook.list_messages(42) == []

    @pytest.mark.parametrize(
        ("host", "extra"),
        [
            pytest.param(
                "http://doto.internal:3000", {"allow_insecure_http": True}, id="insecure-when-asked"
            ),
            pytest.param("http://127.0.0.1:8089", {}, id="loopback"),
        ],
    )
    def test_plain_http_allowed(self, monkeypatch, requests_mock, host, extra):
        value = {"conn_type": "doto", "host": host, "password": TOKEN, "extra": {"account_id": 1, **extra}}
        set_conn(monkeypatch, value=value)
        requests_mock.get(host + PATH, json={"payload": [msg(1)]})
        assert len(DotoHook(CONN_ID).list_messages(42)) == 1

    def test_timeouts_reach_requests(self, monkeypatch, requests_mock):
        set_conn(monkeypatch, timeout="4")
        requests_mock.get(LIST_URL, json={"payload": []})
        DotoHook(CONN_ID).list_messages(42)
        DotoHook(CONN_ID, timeout=0.5).list_messages(42)
        assert [r.timeout for r in requests_mock.request_history] == [4.0, 0.5]

    def test_conversation_url(self, conn):
        assert DotoHook(CONN_ID).conversation_url("42") == f"{BASE}/app/accounts/1/conversations/42"

    def test_hook_metadata(self):
        assert (
            DotoHook.conn_type,
            DotoHook.conn_name_attr,
            DotoHook.default_conn_name,
            DotoHook.hook_name,
        ) == (
            "doto",
            "doto_conn_id",
            "doto_default",
            "Doto",
        )
        assert DotoHook().doto_conn_id == "doto_default"


# --------------------------------------------------------------------------------------------
# The API methods
# --------------------------------------------------------------------------------------------


class TestListMessages:
    @pytest.mark.parametrize(
        "value",
        [
            1712001000,
            1712001000.4,
            dt.datetime(2024, 4, 1, 19, 50, tzinfo=dt.UTC),
            dt.datetime(2024, 4, 1, 19, 50),
            pendulum.datetime(2024, 4, 1, 21, 50, tz="Europe/Paris"),
            "2024-04-01T19:50:00Z",
            "2024-04-01T21:50:00+02:00",
            "1712001000",
        ],
    )
    def test_before_and_after_forms(self, hook, requests_mock, value):
        requests_mock.get(LIST_URL, json={"payload": []})
        hook.list_messages(42, after=value)
        hook.list_messages(42, before=value)
        hook.list_messages("42", after=value, before=value)
        assert [r.qs for r in requests_mock.request_history] == [
            {"after": ["1712001000"]},
            {"before": ["1712001000"]},
            {"after": ["1712001000"], "before": ["1712001000"]},
        ]

    def test_returns_messages_oldest_first_normalised(self, hook, requests_mock):
        requests_mock.get(
            LIST_URL,
            json={
                "payload": [msg(3, T0 + 2, 1), msg(1, T0, 0), msg(2, T0, "outgoing"), msg(4, T0 + 3, 2)],
                "meta": {},
            },
        )
        result = hook.list_messages(42)
        assert [(m.id, m.message_type) for m in result] == [
            (1, "incoming"),
            (2, "outgoing"),
            (3, "outgoing"),
            (4, "activity"),
        ]
        assert all(isinstance(m, api.Message) for m in result)
        assert requests_mock.last_request.qs == {}

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"after": "last tuesday"}, "^after must be"),
            ({"before": True}, "^before must be"),
            ({"conversation_id": 0}, "^conversation_id must be a positive integer"),
            ({"conversation_id": "forty-two"}, "^conversation_id must be a positive integer"),
        ],
    )
    def test_bad_arguments_fail_before_sending(self, hook, requests_mock, kwargs, match):
        kwargs.setdefault("conversation_id", 42)
        with pytest.raises(DotoConfigError, match=match):
            hook.list_messages(**kwargs)
        assert requests_mock.call_count == 0


class TestSendMessage:
    def test_all_kwargs_and_the_body_sent(self, hook, requests_mock):
        created = msg(
            77,
            T0,
            1,
            private=True,
            content_type="input_select",
            content_attributes={"items": [{"title": "A"}]},
        )
        requests_mock.post(LIST_URL, json=created)
        result = hook.send_message(
            "42",
            "Pick one",
            message_type="outgoing",
            private=True,
            content_type="input_select",
            content_attributes={"items": [{"title": "A"}]},
        )
        assert requests_mock.last_request.json() == {
            "content": "Pick one",
            "message_type": "outgoing",
            "private": True,
            "content_type": "input_select",
            "content_attributes": {"items": [{"title": "A"}]},
        }
        assert requests_mock.last_request.headers["Content-Type"] == "application/json"
        assert (result.id, result.message_type, result.private, result.content_type) == (
            77,
            "outgoing",
            True,
            "input_select",
        )
        assert result.content_attributes == {"items": [{"title": "A"}]}

    def test_defaults(self, hook, requests_mock):
        requests_mock.post(LIST_URL, json=msg(5, T0, "outgoing"))
        hook.send_message(42, "Hello")
        assert requests_mock.last_request.json() == {
            "content": "Hello",
            "message_type": "outgoing",
            "private": False,
            "content_type": "text",
        }

    def test_incoming(self, hook, requests_mock):
        requests_mock.post(LIST_URL, json=msg(6, T0, "incoming"))
        assert hook.send_message(42, "From the customer", message_type="incoming").message_type == "incoming"
        assert requests_mock.last_request.json()["message_type"] == "incoming"

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"content": ""},
            {"message_type": "activity"},
            {"private": "no"},
            {"message_type": "incoming", "private": True},
            {"content_attributes": ["x"]},
        ],
    )
    def test_invalid_fails_before_sending(self, hook, requests_mock, kwargs):
        kwargs = {"content": "hi", **kwargs}
        with pytest.raises(DotoConfigError):
            hook.send_message(42, **kwargs)
        assert requests_mock.call_count == 0

    def test_server_validation_error(self, hook, requests_mock):
        requests_mock.post(
            LIST_URL, status_code=422, json={"error": "Incoming messages are only allowed in Api inboxes"}
        )
        with pytest.raises(DotoValidationError, match="only allowed in Api inboxes") as info:
            hook.send_message(42, "hi", message_type="incoming")
        assert info.value.status == 422
        assert requests_mock.call_count == 1


class TestDeleteMessage:
    URL = LIST_URL + "/9"

    def test_deleted(self, hook, requests_mock):
        requests_mock.delete(self.URL, json={})
        assert hook.delete_message(42, "9") is True
        assert requests_mock.last_request.method == "DELETE"

    def test_missing_ok(self, hook, requests_mock):
        requests_mock.delete(self.URL, status_code=404, json={"error": "Resource could not be found"})
        requests_mock.get(LIST_URL, json={"payload": []})  # the conversation exists
        assert hook.delete_message(42, 9, missing_ok=True) is False
        with pytest.raises(
            DotoNotFoundError, match=r"DELETE .*/messages/9 failed with HTTP 404: Resource could"
        ):
            hook.delete_message(42, 9)
        with pytest.raises(DotoNotFoundError):
            hook.delete_message(42, 9, missing_ok=False)
        assert requests_mock.call_count == 4  # a 404 is an answer, not retried (+1 list check)

    def test_bad_message_id(self, hook, requests_mock):
        with pytest.raises(DotoConfigError, match=r"^message_id"):
            hook.delete_message(42, -9)
        assert requests_mock.call_count == 0


class TestTestConnection:
    URL = BASE + "/api/v1/profile"
    PROFILE = {"id": 5, "name": "Ada", "accounts": [{"id": 1, "name": "Acme", "role": "administrator"}]}

    def test_ok(self, conn, requests_mock):
        requests_mock.get(self.URL, json=self.PROFILE)
        assert DotoHook(CONN_ID).test_connection() == (
            True,
            f"Connected to Doto at {BASE} as Ada, account 1 (administrator).",
        )
        assert requests_mock.last_request.headers["api_access_token"] == TOKEN

    def test_wrong_account(self, conn, requests_mock):
        requests_mock.get(self.URL, json={**self.PROFILE, "accounts": [{"id": 7, "name": "Beta"}]})
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok
        assert "does not belong to account 1" in message and "7 (Beta)" in message

    def test_server_without_profile_falls_back_to_the_list_probe(self, conn, requests_mock):
        requests_mock.get(self.URL, status_code=404, json={"error": "Resource could not be found"})
        requests_mock.get(
            re.compile(re.escape(BASE + "/api/v1/accounts/1/conversations/") + r"\d+/messages"),
            status_code=404,
            json={"error": "Resource could not be found"},
        )
        ok, message = DotoHook(CONN_ID).test_connection()
        assert ok, message
        assert f"Connected to Doto at {BASE} (account 1;" in message

    def test_bad_token(self, conn, requests_mock):
        requests_mock.get(self.URL, status_code=401, json={"error": "Invalid Access Token"})
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok
        assert "HTTP 401" in message and "Invalid Access Token" in message and "API Token" in message
        assert TOKEN not in message

    def test_unreachable(self, conn, requests_mock):
        requests_mock.get(self.URL, exc=connect_refused())
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok
        assert f"could not connect to {BASE}" in message
        assert requests_mock.call_count == 1  # a test is one attempt, not a retry loop

    def test_timeout(self, conn, requests_mock):
        requests_mock.get(self.URL, exc=requests.ReadTimeout("read timed out"))
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok and "no answer within 30 s" in message

    @pytest.mark.parametrize("status", [200, 404])
    def test_some_other_web_server_is_not_doto(self, conn, requests_mock, status):
        requests_mock.get(self.URL, status_code=status, text="<html><body>Welcome to nginx</body></html>")
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok, message
        assert "nginx" not in message

    def test_server_error(self, conn, requests_mock):
        requests_mock.get(self.URL, status_code=503, text="upstream down")
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok and "HTTP 503" in message

    def test_bad_connection(self, monkeypatch, requests_mock):
        set_conn(monkeypatch, value={"conn_type": "doto", "host": BASE, "password": TOKEN})
        ok, message = DotoHook(CONN_ID).test_connection()
        assert not ok and "'doto_test' has no Account ID" in message
        assert requests_mock.call_count == 0


def test_poll_reports_new_messages(hook, requests_mock):
    requests_mock.get(
        LIST_URL, json={"payload": [msg(1, T0 - 5), msg(2, T0 + 1), msg(3, T0 + 2, "outgoing")]}
    )
    watch = api.MessageWatch(start=T0)
    assert [m.id for m in hook.poll(watch, 42)] == [2]
    assert hook.poll(watch, 42) is None
    assert [r.qs for r in requests_mock.request_history] == [
        {"after": [str(T0 - 11)]},
        {"after": [str(T0 - 8)]},
    ]


# --------------------------------------------------------------------------------------------
# Errors: class, text, no token
# --------------------------------------------------------------------------------------------


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "body", "cls", "text"),
        [
            (401, {"error": "Invalid Access Token"}, DotoAuthError, "Invalid Access Token"),
            (403, {"error": "Forbidden"}, DotoAuthError, "Forbidden"),
            (404, {"error": "Resource could not be found"}, DotoNotFoundError, "Resource could not be found"),
            (422, {"error": "Content can't be blank"}, DotoValidationError, "Content can't be blank"),
            (429, {"error": "Too many requests"}, DotoRateLimitError, "Too many requests"),
            (500, {"error": "Internal server error"}, DotoServerError, "Internal server error"),
            (502, {"error": "Bad gateway"}, DotoServerError, "Bad gateway"),
            (503, {"error": "Service unavailable"}, DotoServerError, "Service unavailable"),
            (400, {"errors": ["bad before"]}, DotoHTTPError, "bad before"),
        ],
    )
    def test_http_errors(self, one_shot, requests_mock, status, body, cls, text):
        requests_mock.get(LIST_URL, status_code=status, json=body)
        with pytest.raises(cls) as info:
            one_shot.list_messages(42)
        error = info.value
        assert type(error) is cls
        assert (error.method, error.path, error.status, error.doto_error) == ("GET", PATH, status, text)
        assert str(error).startswith(f"Doto GET {PATH} failed with HTTP {status}: {text}")
        assert_clean(error)

    def test_rate_limit_retry_after_seconds(self, one_shot, requests_mock):
        requests_mock.get(LIST_URL, status_code=429, headers={"Retry-After": "17"}, json={})
        with pytest.raises(DotoRateLimitError) as info:
            one_shot.list_messages(42)
        assert info.value.retry_after == 17.0

    def test_rate_limit_retry_after_http_date(self, one_shot, requests_mock):
        when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=45), usegmt=True)
        requests_mock.get(LIST_URL, status_code=429, headers={"Retry-After": when}, json={})
        with pytest.raises(DotoRateLimitError) as info:
            one_shot.list_messages(42)
        assert 40 <= info.value.retry_after <= 45

    def test_rate_limit_without_retry_after(self, one_shot, requests_mock):
        requests_mock.get(LIST_URL, status_code=429, text="")
        with pytest.raises(DotoRateLimitError) as info:
            one_shot.list_messages(42)
        assert info.value.retry_after is None and info.value.doto_error is None

    @pytest.mark.parametrize(
        ("exc", "cls", "text"),
        [
            (
                requests.ReadTimeout("HTTPSConnectionPool: Read timed out"),
                DotoTimeoutError,
                "no answer within 30 s",
            ),
            (requests.ConnectTimeout("connect timed out"), DotoConnectError, "could not connect within 30 s"),
            (connect_refused(), DotoConnectError, f"could not connect to {BASE}"),
            (connection_dropped(), DotoConnectionLostError, "the connection broke before an answer arrived"),
            (
                requests.exceptions.ChunkedEncodingError("broken"),
                DotoConnectionLostError,
                "the connection broke before an answer arrived (ChunkedEncodingError)",
            ),
        ],
    )
    def test_transport_errors(self, one_shot, requests_mock, exc, cls, text):
        requests_mock.get(LIST_URL, exc=exc)
        with pytest.raises(cls) as info:
            one_shot.list_messages(42)
        assert (info.value.method, info.value.path) == ("GET", PATH)
        assert str(info.value).startswith(f"Doto GET {PATH}: {text}")
        assert_clean(info.value)

    @pytest.mark.parametrize(
        "body",
        [
            b"<!DOCTYPE html><html><body>Sign in to continue</body></html>",
            b'{"payload": [',
            b"",
            b'{"payload": [{"id": "x"}]}',
            b'{"data": []}',
        ],
    )
    def test_non_json_or_wrong_shape_200(self, one_shot, requests_mock, body):
        requests_mock.get(LIST_URL, status_code=200, content=body, headers={"Content-Type": "text/html"})
        with pytest.raises(DotoResponseError, match=f"GET {PATH}") as info:
            one_shot.list_messages(42)
        assert "Sign in" not in str(info.value)
        assert_clean(info.value)

    def test_non_json_on_send(self, one_shot, requests_mock):
        requests_mock.post(LIST_URL, status_code=200, text="OK")
        with pytest.raises(
            DotoResponseError, match=f"POST {PATH} returned HTTP 200 with a body that is not JSON"
        ):
            one_shot.send_message(42, "hi")

    def test_odd_retry_after_header_is_not_a_crash(self, one_shot, requests_mock):
        requests_mock.get(LIST_URL, status_code=429, headers={"Retry-After": "\u00b2"}, json={})
        with pytest.raises(DotoRateLimitError) as info:
            one_shot.list_messages(42)
        assert info.value.retry_after is None

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        status=st.sampled_from([200, 200, 201, 204, 301, 400, 401, 404, 422, 429, 500, 502]),
        body=st.binary(max_size=120)
        | st.sampled_from(
            [b"<html>Sign in</html>", b'{"payload": [{"id": 1, "created_at": NaN}]}', b"[" * 5000]
        ),
        retry_after=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20),
    )
    def test_any_answer_is_a_result_or_a_doto_error(self, one_shot, status, body, retry_after):
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        with requests_mock.Mocker() as mock:
            mock.get(LIST_URL, status_code=status, content=body, headers=headers)
            try:
                result = one_shot.list_messages(42)
            except DotoError as err:
                assert_clean(err)
            else:
                assert 200 <= status < 300 and isinstance(result, list)


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


def ok_list(mid: int = 1) -> dict:
    return {"json": {"payload": [msg(mid)]}, "status_code": 200}


class TestRetries:
    @pytest.mark.parametrize("status", [429, 502, 503, 504])
    def test_get_retried_on_status(self, hook, requests_mock, sleeps, status):
        requests_mock.get(LIST_URL, [{"status_code": status, "json": {"error": "busy"}}, ok_list()])
        assert [m.id for m in hook.list_messages(42)] == [1]
        assert requests_mock.call_count == 2
        assert sleeps == [0.001]

    @pytest.mark.parametrize(
        "exc",
        [
            connect_refused,
            connection_dropped,
            lambda: requests.ReadTimeout("slow"),
            lambda: requests.ConnectTimeout(),
        ],
        ids=["refused", "dropped", "read-timeout", "connect-timeout"],
    )
    def test_get_retried_on_connection_errors(self, hook, requests_mock, sleeps, exc):
        requests_mock.get(LIST_URL, [{"exc": exc()}, {"exc": exc()}, ok_list()])
        assert [m.id for m in hook.list_messages(42)] == [1]
        assert requests_mock.call_count == 3
        assert sleeps == [0.001, 0.002]  # exponential backoff

    def test_get_retries_are_bounded(self, hook, requests_mock, sleeps):
        requests_mock.get(LIST_URL, status_code=503, json={"error": "down"})
        with pytest.raises(DotoServerError, match="HTTP 503: down"):
            hook.list_messages(42)
        assert requests_mock.call_count == 3  # RetryPolicy(attempts=3)
        assert len(sleeps) == 2

    def test_get_transport_retries_are_bounded(self, hook, requests_mock, sleeps):
        requests_mock.get(LIST_URL, exc=connect_refused())
        with pytest.raises(DotoConnectError):
            hook.list_messages(42)
        assert requests_mock.call_count == 3

    @pytest.mark.parametrize("status", [500, 400, 401, 403, 404, 422])
    def test_get_not_retried(self, hook, requests_mock, sleeps, status):
        requests_mock.get(LIST_URL, [{"status_code": status, "json": {"error": "no"}}, ok_list()])
        with pytest.raises(DotoHTTPError) as info:
            hook.list_messages(42)
        assert info.value.status == status
        assert requests_mock.call_count == 1
        assert sleeps == []

    def test_non_json_200_not_retried(self, hook, requests_mock, sleeps):
        requests_mock.get(LIST_URL, [{"text": "<html>", "status_code": 200}, ok_list()])
        with pytest.raises(DotoResponseError):
            hook.list_messages(42)
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize(
        ("exc", "cls"),
        [
            (lambda: requests.ReadTimeout("slow"), DotoTimeoutError),
            (connection_dropped, DotoConnectionLostError),
        ],
        ids=["read-timeout", "dropped"],
    )
    def test_post_not_resent_after_ambiguous_failure(self, hook, requests_mock, sleeps, exc, cls):
        requests_mock.post(LIST_URL, [{"exc": exc()}, {"json": msg(1, T0, 1), "status_code": 200}])
        with pytest.raises(cls):
            hook.send_message(42, "hi")
        assert requests_mock.call_count == 1
        assert sleeps == []

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_post_not_resent_after_5xx(self, hook, requests_mock, status):
        requests_mock.post(LIST_URL, [{"status_code": status, "json": {}}, {"json": msg(1, T0, 1)}])
        with pytest.raises(DotoServerError):
            hook.send_message(42, "hi")
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize(
        "exc",
        [connect_refused, lambda: requests.ConnectTimeout("connect")],
        ids=["refused", "connect-timeout"],
    )
    def test_post_retried_after_connect_error(self, hook, requests_mock, sleeps, exc):
        requests_mock.post(LIST_URL, [{"exc": exc()}, {"json": msg(5, T0, 1), "status_code": 200}])
        assert hook.send_message(42, "hi").id == 5
        assert requests_mock.call_count == 2
        assert [r.json() for r in requests_mock.request_history] == [
            {"content": "hi", "message_type": "outgoing", "private": False, "content_type": "text"}
        ] * 2

    def test_post_retried_after_429(self, hook, requests_mock, sleeps):
        requests_mock.post(
            LIST_URL, [{"status_code": 429, "headers": {"Retry-After": "3"}}, {"json": msg(5, T0, 1)}]
        )
        assert hook.send_message(42, "hi").id == 5
        assert requests_mock.call_count == 2
        assert sleeps == [3.0]

    @pytest.mark.parametrize(
        "failure",
        [{"status_code": 503}, {"status_code": 429}, {"exc": requests.ReadTimeout("slow")}],
        ids=["503", "429", "read-timeout"],
    )
    def test_delete_retried(self, hook, requests_mock, sleeps, failure):
        requests_mock.delete(LIST_URL + "/9", [failure, {"json": {}, "status_code": 200}])
        assert hook.delete_message(42, 9) is True
        assert requests_mock.call_count == 2

    def test_delete_404_after_retry_is_missing_ok(self, hook, requests_mock, sleeps):
        # The first DELETE may have worked before the connection broke; the retry then sees 404.
        requests_mock.delete(
            LIST_URL + "/9",
            [
                {"exc": connection_dropped()},
                {"status_code": 404, "json": {"error": "Resource could not be found"}},
            ],
        )
        requests_mock.get(LIST_URL, json={"payload": []})  # the conversation exists
        assert hook.delete_message(42, 9, missing_ok=True) is False
        assert requests_mock.call_count == 3

    def test_retry_after_is_waited_out(self, hook, requests_mock, sleeps):
        requests_mock.get(
            LIST_URL, [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": {}}, ok_list()]
        )
        hook.list_messages(42)
        assert sleeps == [7.0]

    def test_retry_after_http_date_is_waited_out(self, hook, requests_mock, sleeps):
        when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20), usegmt=True)
        requests_mock.get(LIST_URL, [{"status_code": 429, "headers": {"Retry-After": when}}, ok_list()])
        hook.list_messages(42)
        assert len(sleeps) == 1 and 15 <= sleeps[0] <= 20

    def test_retry_after_is_capped(self, conn, requests_mock, sleeps):
        hook = DotoHook(CONN_ID, retry_policy=api.RetryPolicy(attempts=2, backoff=0.001, max_wait=5))
        requests_mock.get(LIST_URL, [{"status_code": 429, "headers": {"Retry-After": "3600"}}, ok_list()])
        hook.list_messages(42)
        assert sleeps == [5]

    def test_429_without_retry_after_backs_off(self, hook, requests_mock, sleeps):
        requests_mock.get(LIST_URL, [{"status_code": 429}, {"status_code": 429}, ok_list()])
        hook.list_messages(42)
        assert sleeps == [0.001, 0.002]

    def test_really_waits_retry_after(self, conn, requests_mock, monkeypatch):
        """Once, for real: a 1-second Retry-After is slept through the real time.sleep (the call is
        recorded, not timed: a wall-clock bound would be flaky on a busy machine)."""
        real_sleep = tenacity.nap.time.sleep
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            real_sleep(seconds)

        monkeypatch.setattr(tenacity.nap.time, "sleep", sleep)
        hook = DotoHook(CONN_ID, retry_policy=api.RetryPolicy(attempts=2, backoff=0.001))
        requests_mock.get(LIST_URL, [{"status_code": 429, "headers": {"Retry-After": "1"}}, ok_list()])
        hook.list_messages(42)
        assert slept == [1]
        assert requests_mock.call_count == 2

    def test_retries_log_without_the_token(self, hook, requests_mock, sleeps, caplog):
        requests_mock.get(LIST_URL, [{"status_code": 503, "json": {"error": "down"}}, ok_list()])
        with caplog.at_level(logging.DEBUG):
            hook.list_messages(42)
        assert any("retry 1 of 2" in r.getMessage() for r in caplog.records)
        assert TOKEN not in caplog.text


# --------------------------------------------------------------------------------------------
# Paging against a capped server
# --------------------------------------------------------------------------------------------


class CappedDoto:
    """Chatwoot paging semantics for requests-mock: with ``after`` the oldest ``cap_after`` messages
    after it, otherwise the newest ``cap_before`` before ``before`` (both bounds strict)."""

    def __init__(self, messages, cap_after=100, cap_before=20):
        self.messages, self.cap_after, self.cap_before = messages, cap_after, cap_before

    def __call__(self, request, context):
        assert request.headers["api_access_token"] == TOKEN
        after = int(request.qs["after"][0]) if "after" in request.qs else None
        before = int(request.qs["before"][0]) if "before" in request.qs else None
        window = sorted(
            (
                m
                for m in self.messages
                if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
            ),
            # Within one second Chatwoot's order is not by id: reverse it to make sure nothing relies on it.
            key=lambda m: (m["created_at"], -m["id"]),
        )
        page = window[: self.cap_after] if after is not None else window[-self.cap_before :]
        return {"payload": page, "meta": {}}


class TestPaging:
    def expected(self, messages, after=None, before=None):
        return sorted(
            (m["created_at"], m["id"])
            for m in messages
            if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
        )

    def test_backwards_with_crowded_seconds(self, hook, requests_mock):
        messages = (
            [msg(i, T0 + i) for i in range(1, 41)]  # 40 one per second
            + [msg(i, T0 + 100) for i in range(41, 101)]  # 60 in the newest second
            + [msg(i, T0 + 50) for i in range(101, 131)]  # 30 in one second in the middle
        )
        requests_mock.get(LIST_URL, json=CappedDoto(messages))
        result = hook.list_messages(42)
        assert [(m.created_at, m.id) for m in result] == self.expected(messages)
        assert requests_mock.call_count < 30

    def test_forwards_with_crowded_seconds(self, hook, requests_mock):
        messages = [msg(i, T0 + i // 40) for i in range(1, 401)] + [msg(i, T0 + 3) for i in range(401, 461)]
        requests_mock.get(LIST_URL, json=CappedDoto(messages))
        result = hook.list_messages(42, after=T0 - 1)
        assert [(m.created_at, m.id) for m in result] == self.expected(messages, after=T0 - 1)

    def test_window_both_bounds(self, hook, requests_mock):
        messages = [msg(i, T0 + i // 5) for i in range(1, 501)]
        requests_mock.get(LIST_URL, json=CappedDoto(messages))
        after, before = (
            pendulum.from_timestamp(T0 + 10),
            (dt.datetime.fromtimestamp(T0 + 90, dt.UTC)).isoformat(),
        )
        result = hook.list_messages(42, after=after, before=before)
        assert [(m.created_at, m.id) for m in result] == self.expected(
            messages, after=T0 + 10, before=T0 + 90
        )

    def test_single_cap_server(self, hook, requests_mock):
        messages = [msg(i, T0 + i // 20) for i in range(1, 201)]
        requests_mock.get(LIST_URL, json=CappedDoto(messages, cap_after=20, cap_before=20))
        assert [m.id for m in hook.list_messages(42)] == list(range(1, 201))
        assert [m.id for m in hook.list_messages(42, after=0)] == list(range(1, 201))

    def test_paging_survives_a_transient_error(self, hook, requests_mock, sleeps):
        messages = [msg(i, T0 + i) for i in range(1, 61)]
        server = CappedDoto(messages)
        calls = []

        def flaky(request, context):
            calls.append(1)
            if len(calls) == 2:
                context.status_code = 502
                return {"error": "Bad gateway"}
            return server(request, context)

        requests_mock.get(LIST_URL, json=flaky)
        assert [m.id for m in hook.list_messages(42)] == list(range(1, 61))


# --------------------------------------------------------------------------------------------
# Security: the token and redirects
# --------------------------------------------------------------------------------------------


class TestSecurity:
    def test_token_only_in_its_header(self, hook, requests_mock):
        requests_mock.get(LIST_URL, json={"payload": [msg(1)]})
        requests_mock.post(LIST_URL, json=msg(2, T0, 1))
        requests_mock.delete(LIST_URL + "/2", json={})
        hook.list_messages(42, after=T0 - 5)
        hook.send_message(42, "hi", content_attributes={"k": "v"})
        hook.delete_message(42, 2)
        assert requests_mock.call_count == 3
        for request in requests_mock.request_history:
            assert request.headers["api_access_token"] == TOKEN
            others = {k: v for k, v in request.headers.items() if k.lower() != "api_access_token"}
            assert TOKEN not in json.dumps(others)
            assert "Authorization" not in request.headers
            assert TOKEN not in request.url
            assert request.body is None or TOKEN.encode() not in (
                request.body if isinstance(request.body, bytes) else request.body.encode()
            )

    def test_token_not_in_repr(self, hook):
        assert TOKEN not in repr(hook.settings)

    @pytest.mark.parametrize("method", ["list", "send", "delete"])
    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirects_not_followed(self, hook, requests_mock, method, status):
        evil = requests_mock.register_uri("GET", "https://evil.example.test/x", json={})
        for verb in ("GET", "POST", "DELETE"):
            requests_mock.register_uri(
                verb,
                re.compile(re.escape(LIST_URL)),
                status_code=status,
                headers={"Location": "https://evil.example.test/x"},
            )
        with pytest.raises(DotoHTTPError) as info:
            if method == "list":
                hook.list_messages(42)
            elif method == "send":
                hook.send_message(42, "hi")
            else:
                hook.delete_message(42, 1)
        assert info.value.status == status
        assert evil.call_count == 0
        assert requests_mock.call_count == 1
        assert all(r.hostname == "doto.example.test" for r in requests_mock.request_history)
        assert_clean(info.value)

    def test_session_reused(self, hook, requests_mock):
        requests_mock.get(LIST_URL, json={"payload": []})
        hook.list_messages(42)
        session = hook.session
        hook.list_messages(42)
        assert hook.session is session


# --------------------------------------------------------------------------------------------
# Connection form
# --------------------------------------------------------------------------------------------


def test_get_ui_field_behaviour_shape():
    behaviour = DotoHook.get_ui_field_behaviour()
    assert set(behaviour) == {"hidden_fields", "relabeling", "placeholders"}
    assert {"schema", "port", "login"} <= set(behaviour["hidden_fields"])
    assert not {"host", "password"} & set(behaviour["hidden_fields"])
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Token"}
    assert behaviour["placeholders"]["host"] == DEFAULT_BASE_URL
    assert set(behaviour["placeholders"]) <= {"host", "password", "account_id", "timeout"}
    assert all(isinstance(v, str) for v in behaviour["placeholders"].values())


def test_get_connection_form_widgets_shape():
    pytest.importorskip("flask_appbuilder")
    pytest.importorskip("wtforms")
    from airflow_provider_doto.get_provider_info import CONN_FIELDS

    widgets = DotoHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    assert widgets["timeout"].kwargs["default"] == 30
    assert widgets["max_upload_mb"].kwargs["default"] == 40  # api._uploads.DEFAULT_MAX_UPLOAD_MB


# --------------------------------------------------------------------------------------------
# Against the emulator: no token at DEBUG, TLS failures (mutation-checked, scripts/mutants.py)
# --------------------------------------------------------------------------------------------


def debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """Root and the provider's loggers (and the HTTP clients') at DEBUG, all captured."""
    caplog.set_level(logging.DEBUG)
    for name in ("airflow_provider_doto", "urllib3", "requests", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)


def assert_token_nowhere(token: str, caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    """Neither in any captured record (message, raw args, formatted text) nor in console output."""
    assert caplog.records, "nothing was logged: the DEBUG capture is not working"
    for record in caplog.records:
        seen = f"{record.getMessage()} {record.msg!r} {record.args!r} {record.exc_text or ''}"
        assert token not in seen, f"token in a log record of {record.name}: {record.levelname} {record.msg!r}"
    assert token not in caplog.text
    for text in texts:
        assert token not in text


@pytest.mark.doto_flavor("chatwoot")  # auto detection's probe and the id lookups log too
def test_no_token_in_debug_logs(doto_emulator, monkeypatch, caplog, capfd):
    """Every DEBUG record of a whole sync session (connection load, session set-up, requests, a
    retried 503, a 404, a wrong token, test_connection) is scanned for the token."""
    debug_everywhere(caplog)
    token = doto_emulator.token
    cid = doto_emulator.add_conversation()
    doto_emulator.add_message(cid, "hello")
    hook = DotoHook(retry_policy=api.RetryPolicy(attempts=3, backoff=0.01))
    assert hook.settings.token == token  # connection loaded
    hook.session  # noqa: B018  (session set up)
    assert [m.content for m in hook.list_messages(cid)] == ["hello"]
    sent = hook.send_message(cid, "reply")
    doto_emulator.inject("status", status=503, method="GET")
    hook.list_messages(cid)  # retried, logged
    hook.delete_message(cid, sent.id)
    with pytest.raises(DotoNotFoundError):
        hook.list_messages(cid + 1000)
    assert hook.test_connection()[0] is True
    monkeypatch.setenv(
        "AIRFLOW_CONN_WRONG",
        json.dumps({**json.loads(doto_emulator.connection_json()), "password": token + "-wrong"}),
    )
    with pytest.raises(DotoAuthError):
        DotoHook("wrong").list_messages(cid)
    close_session(hook)
    out, err = capfd.readouterr()
    assert_token_nowhere(token, caplog, out, err)
    assert_token_nowhere(token + "-wrong", caplog, out, err)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)


def tls_mismatch_hook(doto_emulator, monkeypatch, policy: api.RetryPolicy) -> DotoHook:
    """A connection saying https to the emulator, which speaks plain http: the handshake fails."""
    base = doto_emulator.base_url.replace("http://", "https://", 1)
    conn = {**json.loads(doto_emulator.connection_json(flavor="doto")), "host": base}
    monkeypatch.setenv("AIRFLOW_CONN_DOTO_TLS", json.dumps(conn))
    return DotoHook("doto_tls", retry_policy=policy)


@pytest.mark.doto_flavor("doto")
@pytest.mark.parametrize("method", ["list", "send"])
def test_tls_handshake_failure_is_a_connect_error_never_sent(doto_emulator, monkeypatch, caplog, method):
    """https spoken to a plain-http server: DotoConnectError (never sent), naming the likely cause,
    chaining requests' SSLError, and retried even for a POST (nothing reached the application)."""
    caplog.set_level(logging.INFO, logger="airflow_provider_doto")
    cid = doto_emulator.add_conversation()
    hook = tls_mismatch_hook(doto_emulator, monkeypatch, api.RetryPolicy(attempts=2, backoff=0.01))
    call = (lambda: hook.list_messages(cid)) if method == "list" else (lambda: hook.send_message(cid, "hi"))
    with pytest.raises(DotoConnectError) as info:
        call()
    err = info.value
    assert not isinstance(err, DotoConnectionLostError)
    assert "TLS handshake failed" in str(err)
    assert "likely because the server is not speaking https (it answered in plain http)" in str(err)
    assert isinstance(err.__cause__, requests.exceptions.SSLError)
    request = DotoRequest("POST" if method == "send" else "GET", err.path or "")
    assert err.method == request.method
    assert is_retryable(request, err)  # a POST too: it never reached Doto
    assert "retry 1 of" in caplog.text  # and the hook did retry it
    assert doto_emulator.messages(cid) == []
    assert doto_emulator.token not in str(err)
    close_session(hook)
