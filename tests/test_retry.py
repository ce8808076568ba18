"""``_retry``: the tenacity settings both hooks apply to one request, driven by a real ``tenacity.Retrying``."""

from __future__ import annotations

import logging

import pytest
import tenacity

from airflow_provider_doto import api
from airflow_provider_doto._retry import raise_if_retryable, retry_settings
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.exceptions import (
    DotoConnectError,
    DotoConnectionLostError,
    DotoRateLimitError,
    DotoServerError,
    DotoValidationError,
)

GET = DotoRequest("GET", "/api/v1/accounts/1/conversations/7/messages")
POST = DotoRequest("POST", "/api/v1/accounts/1/conversations/7/messages", json={"content": "hi"})
QUICK = api.RetryPolicy(attempts=4, backoff=0.0, max_wait=0.0, total=60.0)
LOG = logging.getLogger("tests.retry")


def attempts_until(request: DotoRequest, errors: list[BaseException], policy: api.RetryPolicy = QUICK) -> int:
    """Call a function failing with ``errors`` in turn (then succeeding) under the settings; count calls."""
    calls = 0

    def call() -> str:
        nonlocal calls
        calls += 1
        if calls <= len(errors):
            raise errors[calls - 1]
        return "ok"

    settings = retry_settings(request, policy, LOG)
    assert tenacity.Retrying(sleep=lambda _: None, **settings)(call) == "ok"
    return calls


def server_error(status: int = 503) -> DotoServerError:
    return DotoServerError("unavailable", status=status)


def test_a_read_is_retried_until_it_succeeds() -> None:
    assert attempts_until(GET, [server_error(), DotoConnectionLostError("reset")]) == 3


def test_a_post_that_may_have_been_committed_is_not_retried() -> None:
    with pytest.raises(DotoConnectionLostError):
        attempts_until(POST, [DotoConnectionLostError("reset after the body was sent")])
    with pytest.raises(DotoServerError):
        attempts_until(POST, [server_error(502)])


def test_a_post_that_created_nothing_is_retried() -> None:
    refused = DotoRateLimitError("slow down", status=429, retry_after=0)
    assert attempts_until(POST, [DotoConnectError("refused"), refused]) == 3


def test_a_client_error_is_never_retried() -> None:
    with pytest.raises(DotoValidationError):
        attempts_until(GET, [DotoValidationError("bad", status=422)])


def test_retries_stop_after_the_policy_s_attempts_and_raise_the_last_error() -> None:
    errors: list[BaseException] = [server_error(503)] * (QUICK.attempts - 1) + [server_error(504)]
    with pytest.raises(DotoServerError) as raised:
        attempts_until(GET, errors)
    assert raised.value.status == 504


def test_the_wait_is_the_policy_s_and_honours_retry_after() -> None:
    policy = api.RetryPolicy(attempts=3, backoff=2.0, max_wait=30.0, total=600.0)
    slept: list[float] = []
    errors = iter([server_error(), DotoRateLimitError("slow down", status=429, retry_after=7)])

    def call() -> str:
        error = next(errors, None)
        if error is not None:
            raise error
        return "ok"

    settings = retry_settings(GET, policy, LOG)
    assert tenacity.Retrying(sleep=slept.append, **settings)(call) == "ok"
    assert slept == [2.0, 7.0]


def test_each_retry_is_logged_by_method_and_path_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        attempts_until(POST, [DotoConnectError("refused")])
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == f"Doto {POST.describe()}: DotoConnectError; retry 1 of {QUICK.attempts - 1} in 0.0 s"
    assert "hi" not in line


@pytest.mark.parametrize(
    ("request_", "status", "raised"),
    [
        (GET, 503, DotoServerError),
        (GET, 429, DotoRateLimitError),
        (POST, 429, DotoRateLimitError),
    ],
)
def test_raise_if_retryable_raises_a_retryable_status(
    request_: DotoRequest, status: int, raised: type[Exception]
) -> None:
    with pytest.raises(raised):
        raise_if_retryable(request_, DotoResponse(status, {}, b"{}"))


@pytest.mark.parametrize(("request_", "status"), [(GET, 200), (GET, 404), (GET, 422), (POST, 503)])
def test_raise_if_retryable_passes_anything_else_through(request_: DotoRequest, status: int) -> None:
    response = DotoResponse(status, {}, b"{}")
    assert raise_if_retryable(request_, response) is response
