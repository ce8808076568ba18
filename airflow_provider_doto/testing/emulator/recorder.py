"""The log of requests that reached the emulator, with the token masked."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MASK = "***"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it, before any fault or auth check."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    body: bytes = b""
    authorized: bool = False  # whether the api_access_token header carried the right token
    at: float = field(default_factory=time.time)  # when it arrived (epoch seconds)


class RequestLog:
    """A bounded, thread-safe list of recorded requests (bounded so long benchmarks don't grow forever)."""

    def __init__(self, maxlen: int | None = 100_000) -> None:
        self._lock = threading.Lock()
        self._items: deque[RecordedRequest] = deque(maxlen=maxlen)

    def append(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def mask_headers(headers: dict[str, str], token: str) -> dict[str, str]:
    """Hide the access token wherever it appears, and the auth header's value in any case."""
    masked = {}
    for name, value in headers.items():
        if name == "api_access_token" or (token and token in value):
            value = MASK
        masked[name] = value
    return masked
