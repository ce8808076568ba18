"""Faults the emulator injects into the next N matching requests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal, get_args

FaultKind = Literal["status", "delay", "drop_before", "drop_after", "malformed"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass
class Fault:
    """One injected fault; ``hits`` counts the requests it has already spoiled."""

    kind: FaultKind
    times: int = 1
    method: str | None = None
    path_contains: str | None = None
    status: int | None = None
    retry_after: int | str | None = None
    delay: float | None = None
    body: bytes | None = None
    content_type: str | None = None  # the answer's Content-Type (default: guessed from the body)
    hits: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.kind == "status" and self.status is None:
            self.status = 500
        if self.kind == "delay" and (self.delay is None or self.delay < 0):
            raise ValueError("a 'delay' fault needs delay=<seconds>")
        if self.method is not None:
            self.method = self.method.upper()
        if isinstance(self.body, str):
            self.body = self.body.encode()

    @property
    def remaining(self) -> int:
        """How many more matching requests this fault will spoil."""
        return self.times - self.hits

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path is one this fault targets."""
        if self.method is not None and self.method != method.upper():
            return False
        return self.path_contains is None or self.path_contains in path


class FaultBook:
    """Pending faults, consumed first-injected-first by matching requests (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Spend one hit of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.remaining <= 0:
                        self._pending.remove(fault)
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
