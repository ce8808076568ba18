"""The retry policy: which failures may be retried without risking a duplicate, and how long to wait.

Rule: it decides, it never sleeps or reads a clock; the transports apply it with tenacity
(``airflow_provider_doto/_retry.py``). A POST is retried only when it certainly created nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_doto.api._http import DotoRequest
from airflow_provider_doto.exceptions import (
    DotoConnectError,
    DotoConnectionLostError,
    DotoHTTPError,
    DotoRateLimitError,
    DotoTimeoutError,
)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def is_retryable(request: DotoRequest, error: BaseException) -> bool:
    """Whether ``error`` on ``request`` may be retried without risking a duplicate.

    Reads and deletes are idempotent: retried on connection errors, timeouts, 429 and
    502/503/504. A POST is retried only when it certainly created nothing: the connection never
    opened, or the server refused it with 429 before doing anything. After a timeout, a dropped
    connection or a 5xx, a POST may have been committed, so it is never blindly re-sent.
    A rate limit a paced connection already waited out for its whole budget (``waited`` set) is final.
    """
    if isinstance(error, DotoRateLimitError):
        return error.waited is None
    if isinstance(error, DotoConnectError):
        return True
    if not request.safe_to_resend:
        return False
    if isinstance(error, DotoTimeoutError | DotoConnectionLostError):
        return True
    return isinstance(error, DotoHTTPError) and error.status in RETRYABLE_STATUS


def retry_wait(error: BaseException | None) -> float | None:
    """The server's own wait (429 Retry-After), or None to use exponential backoff."""
    return error.retry_after if isinstance(error, DotoRateLimitError) else None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for automatic retries of one request."""

    attempts: int = 5  # including the first
    backoff: float = 1.0  # first wait in seconds; doubles each time
    max_wait: float = 60.0  # cap on one wait, Retry-After included
    total: float = 120.0  # give up once this much time has passed since the first attempt

    def wait_for(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        server_wait = retry_wait(error)
        if server_wait is not None:
            return min(server_wait, self.max_wait)
        return min(self.backoff * 2 ** (attempt - 1), self.max_wait)
