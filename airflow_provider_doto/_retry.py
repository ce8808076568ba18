"""Tenacity settings for one request, shared by the sync hook and the async hook."""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_doto import api
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, error_for_status
from airflow_provider_doto.api._retry_policy import is_retryable


def retry_settings(request: DotoRequest, policy: api.RetryPolicy, log: logging.Logger) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` / ``tenacity.AsyncRetrying``."""
    import tenacity

    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.wait_for(state.attempt_number, error)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "Doto %s: %s; retry %d of %d in %.1f s",
            request.describe(),
            type(error).__name__ if error else "?",
            state.attempt_number,
            policy.attempts - 1,
            state.upcoming_sleep,
        )

    return {
        "retry": tenacity.retry_if_exception(lambda err: is_retryable(request, err)),
        "stop": tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_before_delay(policy.total),
        "wait": wait,
        "before_sleep": before_sleep,
        "reraise": True,
    }


def raise_if_retryable(request: DotoRequest, response: DotoResponse) -> DotoResponse:
    """Turn a retryable error status into an exception for tenacity; pass anything else through."""
    error = error_for_status(request, response)
    if error is not None and is_retryable(request, error):
        raise error
    return response
