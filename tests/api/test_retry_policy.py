"""``_retry_policy``: what may be retried without a duplicate, and how long to wait."""

from __future__ import annotations

import pytest

from airflow_provider_doto import api
from airflow_provider_doto.api._http import delete_request, error_for_status, list_request, send_request
from airflow_provider_doto.api._retry_policy import is_retryable, retry_wait
from airflow_provider_doto.exceptions import (
    DotoConfigError,
    DotoConnectError,
    DotoConnectionLostError,
    DotoHTTPError,
    DotoResponseError,
    DotoServerError,
    DotoTimeoutError,
)

from ._support import ok

GET = list_request(1, 42)
DELETE = delete_request(1, 42, 9)
POST = send_request(1, 42, "hi")


def http_error(status: int, retry_after: float | None = None) -> DotoHTTPError:
    error = error_for_status(
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
    assert is_retryable(request_, ERRORS[error_name]) is (error_name in RETRIED[request_.method])


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
        assert retry_wait(http_error(429, retry_after=5)) == 5
        assert retry_wait(http_error(503)) is None
        assert retry_wait(None) is None

    def test_defaults(self):
        policy = api.RetryPolicy()
        assert (policy.attempts, policy.backoff, policy.max_wait, policy.total) == (5, 1.0, 60.0, 120.0)
