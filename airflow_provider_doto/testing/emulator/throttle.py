"""A rack-attack throttle: a fixed window of requests per client IP, the window aligned to the epoch.

Chatwoot's ``config/initializers/rack_attack.rb`` throttles every request per client IP (3,000 a
minute by default, ``RACK_ATTACK_LIMIT``); rack-attack counts the requests of each period in a cache
key named after ``now / period``, so the window resets on the period's boundary (the minute) whatever
the client does, and every request counts, refused ones too. Over the limit it answers 429
``text/plain`` ``Retry later`` with no ``Retry-After`` header.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

BODY = b"Retry later\n"
CONTENT_TYPE = b"text/plain"


@dataclass(frozen=True)
class ThrottleRule:
    """``limit`` requests per client in each ``period`` seconds (windows start at multiples of it)."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError("the throttle's limit must be a positive int")
        if not self.period > 0 or math.isinf(self.period):
            raise ValueError("the throttle's period must be a positive number of seconds")

    @classmethod
    def parse(cls, text: str) -> ThrottleRule:
        """``LIMIT/PERIOD`` as the command line takes it, e.g. ``3000/60`` or ``60/5``."""
        limit, sep, period = text.partition("/")
        try:
            return cls(int(limit), float(period) if sep else 60.0)
        except ValueError as err:
            raise ValueError(f"a throttle is LIMIT/PERIOD (e.g. 3000/60), got {text!r}: {err}") from None


class Throttle:
    """Counts each client's requests per window; thread-safe (the server's loop and test threads)."""

    def __init__(self, rule: ThrottleRule) -> None:
        self.rule = rule
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self.allowed = 0
        self.throttled = 0

    def admit(self, client: str, now: float) -> bool:
        """Count a request of ``client`` at ``now`` (Unix seconds); False if it is over the limit."""
        window = math.floor(now / self.rule.period)
        with self._lock:
            if len(self._counts) > 1024:  # old windows are never asked again
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((client, window), 0) + 1
            self._counts[(client, window)] = count
            if count > self.rule.limit:
                self.throttled += 1
                return False
            self.allowed += 1
            return True
