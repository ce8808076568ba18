"""Pacing: how fast a process may send on one connection, and what a 429 does to everyone waiting.

Rule: a value that decides, never sleeps and never reads a clock: every method takes ``now``
(Unix seconds, epoch-aligned like the server's window) from the hook that owns the pacer, and
jitter as a number in [0, 1) the hook draws. The hooks keep one :class:`Pacer` per process for each
(connection, Base URL), shared by every hook instance, and drive it around each exchange.

Chatwoot throttles with rack-attack: a fixed window (3,000 requests a minute per client IP by
default) that resets on the minute whatever the client does, answered 429 ``text/plain`` with no
``Retry-After``. So the pacer

* spaces requests (a token bucket, GCRA form) at ``max_requests_per_minute`` with a small burst,
  below the server's limit, so the server never has to refuse: any window of the server's length
  sees at most the pace plus the burst, whatever the clocks' alignment;
* on a 429 pauses *every* request of the pacer together: for ``Retry-After`` when the server gave
  one, else until the window can have turned (its next epoch-aligned boundary plus jitter); then
  resumes at half the rate and grows back linearly (AIMD) to the full pace over a few windows;
* spends a time budget on rate limits, not a count of attempts: a throttle that lasts longer than
  ``rate_limit_wait_seconds`` since its first 429 makes every request still waiting fail with
  :class:`DotoRateLimitError` naming the pace and the time waited (:func:`throttle_exhausted`).

A token bucket rather than a client-side copy of the server's fixed window: a window-aligned burst
lands in the server's previous window when the two clocks differ by a second, the bucket's
spacing does not care. Hand-written (~100 lines) rather than a library: the limiters on PyPI
(``limits``, ``aiolimiter``, ``pyrate-limiter``) read the clock and sleep themselves, which the core
may not, and none pauses a whole pool on an answer or decreases and regrows its rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_doto.exceptions import DotoRateLimitError

if TYPE_CHECKING:  # (``_settings`` imports this module: it stays as light as the settings)
    from airflow_provider_doto.api._http import DotoRequest, DotoResponse

DEFAULT_MAX_REQUESTS_PER_MINUTE = 2_700  # 90% of Chatwoot's default RACK_ATTACK_LIMIT (3,000)
DEFAULT_RATE_LIMIT_WAIT = 300.0  # seconds a throttle may last before the waiting requests fail
DEFAULT_RATE_LIMIT_WINDOW = 60.0  # rack-attack's period: the minute, aligned to the epoch
DECREASE = 0.5  # the rate after a 429, as a share of the rate before it
MIN_SHARE = 1 / 16  # the rate never falls below this share of the pace
REGROW_WINDOWS = 5.0  # windows from the floor back to the full pace without another 429
MAX_JITTER = 2.0  # seconds, at most, added to a window's boundary (or 5% of the window if less)


@dataclass(frozen=True)
class PaceSettings:
    """A connection's pacing extras, checked (``api._settings``). ``per_minute`` 0 turns pacing off."""

    per_minute: int = DEFAULT_MAX_REQUESTS_PER_MINUTE
    wait: float = DEFAULT_RATE_LIMIT_WAIT
    window: float = DEFAULT_RATE_LIMIT_WINDOW

    @property
    def on(self) -> bool:
        return self.per_minute > 0

    @property
    def burst(self) -> int:
        """Requests that may go at once after a quiet spell: 1% of the pace (at least 1)."""
        return max(1, self.per_minute // 100)


@dataclass(frozen=True)
class Slot:
    """When a request may go: ``wait`` seconds from now, unless a pause began since (``generation``).

    ``exhausted`` (seconds throttled so far) says the request must not wait at all: waiting ``wait``
    more seconds would outlast the budget, so it fails (:func:`throttle_exhausted`).
    """

    wait: float
    generation: int
    exhausted: float | None = None


@dataclass
class Pacer:
    """The pace of one connection in one process: a token bucket, a shared pause and an AIMD rate.

    The hook asks :meth:`reserve` before each exchange, sleeps ``slot.wait``, checks :meth:`current`
    (a pause since voids the slot: reserve again), sends, and tells :meth:`answered` what came back.
    """

    settings: PaceSettings = field(default_factory=PaceSettings)
    tat: float = 0.0  # GCRA's theoretical arrival time: the bucket is full when tat <= now
    paused_until: float = 0.0  # no request goes before this (a 429's pause)
    generation: int = 0  # pauses so far: a slot given before the latest pause is void
    low_rate: float | None = None  # requests a minute right after the last decrease (None: full pace)
    regrow_from: float = 0.0  # when the rate started growing back from ``low_rate``
    throttled_since: float | None = None  # the first 429 of the current throttle (None: not throttled)
    last_throttled: float = 0.0
    throttles: int = 0  # 429s seen (a figure for logs and tests)
    pauses: int = 0  # pauses begun

    def rate(self, now: float) -> float:
        """Requests a minute allowed at ``now``: the pace, or on its way back to it after a 429."""
        full = float(self.settings.per_minute)
        if self.low_rate is None:
            return full
        grown = self.low_rate + full * (now - self.regrow_from) / (REGROW_WINDOWS * self.settings.window)
        return min(full, max(self.low_rate, grown))

    def reserve(self, now: float) -> Slot:
        """A slot for one request: wait until the pause (if any) is over and the bucket holds a token."""
        if self.paused_until > now and self.throttled_since is not None:
            waited = now - self.throttled_since
            if self.paused_until - self.throttled_since > self.settings.wait:
                return Slot(self.paused_until - now, self.generation, exhausted=waited)
        interval = 60.0 / self.rate(now)
        start = max(now, self.paused_until)
        at = max(start, self.tat - (self.settings.burst - 1) * interval)
        self.tat = max(self.tat, at) + interval
        return Slot(at - now, self.generation)

    def current(self, slot: Slot) -> bool:
        """Whether ``slot`` still holds: no pause began since it was given."""
        return slot.generation == self.generation

    def answered(self, response: DotoResponse, now: float, jitter: float = 0.0) -> bool:
        """Take in an answer; True if it was a throttle (429): the caller reserves again and resends.

        The first 429 after the pause ended pauses everyone (for ``Retry-After``, else to the next
        window boundary plus ``jitter`` of a few seconds) and halves the rate; 429s of requests
        already in flight during that pause only extend it if the server asks for longer.
        """
        if response.status != 429:
            if now >= self.paused_until:  # (not an answer to a request sent before the pause)
                self.throttled_since = None
            return False
        self.throttles += 1
        if (
            self.throttled_since is None
            or now - self.last_throttled > self.settings.wait + self.settings.window
        ):
            self.throttled_since = now  # a new throttle (or one so old it says nothing about this one)
        self.last_throttled = now
        from airflow_provider_doto.api._http import retry_after_seconds

        server_wait = retry_after_seconds(response.headers.get("retry-after"), now=response.received_at)
        until = now + server_wait if server_wait is not None else self.window_end(now, jitter)
        if until <= self.paused_until:
            return True  # an answer to a request sent before the pause began
        if self.paused_until <= now:  # a new pause: slow down (multiplicative decrease)
            full = self.settings.per_minute
            self.low_rate = max(full * MIN_SHARE, self.rate(now) * DECREASE)
            self.pauses += 1
        self.regrow_from = until
        self.paused_until = until
        self.tat = until  # resume with a burst: the server's count starts again at the boundary
        self.generation += 1
        return True

    def window_end(self, now: float, jitter: float) -> float:
        """When the server's fixed window can have turned: its next epoch-aligned boundary, plus
        ``jitter`` (0-1) of up to 2 s (5% of a short window) so paused processes do not all return at once."""
        window = self.settings.window
        boundary = (math.floor(now / window) + 1) * window
        return boundary + jitter * min(MAX_JITTER, window / 20)


def throttle_exhausted(request: DotoRequest, settings: PaceSettings, slot: Slot) -> DotoRateLimitError:
    """The error of a request whose wait would outlast the connection's budget for a throttle."""
    waited = slot.exhausted or 0.0
    return DotoRateLimitError(
        f"Doto {request.describe()} failed with HTTP 429: throttled for {waited:.0f} s, and waiting "
        f"{slot.wait:.0f} s more for the server's window would pass rate_limit_wait_seconds "
        f"({settings.wait:g} s); paced at {settings.per_minute:,} a minute (max_requests_per_minute). "
        "Lower max_requests_per_minute if other clients share the server's limit (Chatwoot counts "
        "requests per client IP), or raise rate_limit_wait_seconds",
        method=request.method,
        path=request.path,
        status=429,
        waited=waited,
    )
