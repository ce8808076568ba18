"""The pacer (api._pacing) with a fake clock: the pace, the shared pause after a 429, AIMD, the budget."""

from __future__ import annotations

import itertools

import pytest

from airflow_provider_doto.api._http import DotoRequest, DotoResponse, retry_after_seconds
from airflow_provider_doto.api._pacing import (
    MIN_SHARE,
    REGROW_WINDOWS,
    Pacer,
    PaceSettings,
    Slot,
    throttle_exhausted,
)
from airflow_provider_doto.api._retry_policy import is_retryable
from airflow_provider_doto.exceptions import DotoRateLimitError

T0 = 1_800_000_000.0  # a minute boundary (divisible by 60)
OK = DotoResponse(status=200, headers={}, body=b"{}")
THROTTLED = DotoResponse(status=429, headers={"content-type": "text/plain"}, body=b"Retry later\n")


def send_all(pacer: Pacer, n: int, now: float) -> list[float]:
    """When each of ``n`` requests asked at ``now`` may go (each reserved in turn, none throttled)."""
    return [now + pacer.reserve(now).wait for _ in range(n)]


def test_defaults_stay_under_chatwoots_limit_and_off_means_off() -> None:
    settings = PaceSettings()
    assert settings.per_minute == 2_700 and settings.on
    assert settings.per_minute + settings.burst <= 3_000  # any minute, however the clocks align
    assert (settings.wait, settings.window) == (300.0, 60.0)
    assert not PaceSettings(per_minute=0).on


def test_a_burst_goes_at_once_then_requests_are_spaced_at_the_pace() -> None:
    pacer = Pacer(PaceSettings(per_minute=600))  # 10 a second, a burst of 6
    times = send_all(pacer, 26, T0)
    assert times[:6] == [T0] * 6
    gaps = [b - a for a, b in itertools.pairwise(times[5:])]
    assert gaps == pytest.approx([0.1] * 20, abs=1e-6)


@pytest.mark.parametrize("offset", [0.0, 0.3, 17.9, 59.99])
def test_no_server_window_ever_sees_more_than_the_pace_and_the_burst(offset: float) -> None:
    """However the server's epoch-aligned minute falls, it counts at most pace + burst requests."""
    settings = PaceSettings(per_minute=2_700)
    times = send_all(Pacer(settings), 9_000, T0 + offset)
    windows: dict[int, int] = {}
    for t in times:
        windows[int(t // 60)] = windows.get(int(t // 60), 0) + 1
    assert max(windows.values()) <= settings.per_minute + settings.burst
    assert max(windows.values()) <= 3_000


def test_requests_asked_after_a_quiet_spell_are_not_held_back() -> None:
    pacer = Pacer(PaceSettings(per_minute=60))
    send_all(pacer, 5, T0)
    assert pacer.reserve(T0 + 3600).wait == 0.0


def test_a_429_without_retry_after_pauses_everyone_until_the_window_turns() -> None:
    pacer = Pacer(PaceSettings(per_minute=600, window=60))
    queued = pacer.reserve(T0 + 10)  # a request waiting for its slot when the 429 comes
    assert pacer.answered(THROTTLED, T0 + 12.5, jitter=0.5) is True
    # The next boundary (T0 + 60) plus half of the 2 s jitter.
    assert pacer.paused_until == T0 + 61.0
    assert not pacer.current(queued)  # void: it reserves again, after the pause
    slot = pacer.reserve(T0 + 13)
    assert slot.wait == pytest.approx(48.0) and slot.exhausted is None
    assert pacer.current(slot)


def test_a_short_windows_jitter_is_a_twentieth_of_it() -> None:
    pacer = Pacer(PaceSettings(per_minute=600, window=5))
    pacer.answered(THROTTLED, T0 + 1.2, jitter=1.0)
    assert pacer.paused_until == pytest.approx(T0 + 5.25)


def test_retry_after_is_honoured_when_the_server_gives_it() -> None:
    pacer = Pacer(PaceSettings(per_minute=600))
    pacer.answered(DotoResponse(status=429, headers={"retry-after": "7"}, body=b""), T0 + 1)
    assert pacer.paused_until == T0 + 8
    assert retry_after_seconds("7", now=None) == 7  # the same reading as a DotoRateLimitError's


def test_only_the_first_429_of_a_pause_slows_down() -> None:
    """Ten requests in flight all come back 429: one pause, one decrease, not ten halvings."""
    pacer = Pacer(PaceSettings(per_minute=1_000))
    for i in range(10):
        pacer.answered(THROTTLED, T0 + 1 + i / 100)
    assert pacer.pauses == 1 and pacer.throttles == 10
    assert pacer.rate(T0 + 2) == 500  # halved once


def test_the_rate_halves_then_grows_back_linearly_to_the_pace() -> None:
    settings = PaceSettings(per_minute=1_000, window=10)
    pacer = Pacer(settings)
    pacer.answered(THROTTLED, T0 + 1)  # pause until T0 + 10
    assert pacer.rate(T0 + 10) == 500
    # Back to the full pace over REGROW_WINDOWS windows of growth from the floor.
    assert pacer.rate(T0 + 10 + settings.window) == pytest.approx(500 + 1_000 / REGROW_WINDOWS)
    assert pacer.rate(T0 + 10 + 10 * settings.window) == 1_000
    # Slower after the pause: requests right after it are spaced at the halved rate.
    times = send_all(pacer, settings.burst + 3, T0 + 10)
    assert times[-1] - times[-2] == pytest.approx(60 / 500, rel=0.05)


def test_the_rate_never_falls_below_its_floor() -> None:
    pacer = Pacer(PaceSettings(per_minute=1_600, window=1))
    now = T0
    for _ in range(10):
        pacer.answered(THROTTLED, now + 0.1)
        now = pacer.paused_until
    assert pacer.rate(now) == pytest.approx(1_600 * MIN_SHARE)


def test_a_throttle_outlasting_the_budget_fails_the_waiting_requests() -> None:
    pacer = Pacer(PaceSettings(per_minute=600, wait=100, window=60))
    pacer.answered(THROTTLED, T0 + 30)  # pause to T0 + 60: 30 s, within the budget
    assert pacer.reserve(T0 + 31).exhausted is None
    pacer.answered(THROTTLED, T0 + 60.5)  # to T0 + 120: 90 s since the first 429
    assert pacer.reserve(T0 + 61).exhausted is None
    pacer.answered(THROTTLED, T0 + 120.5)  # to T0 + 180: 150 s, past the 100 s budget
    slot = pacer.reserve(T0 + 121)
    assert slot.exhausted == pytest.approx(91) and slot.wait == pytest.approx(59)
    assert pacer.reserve(T0 + 150).exhausted == pytest.approx(120)  # every request still waiting


def test_a_success_after_the_pause_ends_the_throttle_and_its_budget() -> None:
    pacer = Pacer(PaceSettings(per_minute=600, wait=100, window=60))
    pacer.answered(THROTTLED, T0 + 30)
    pacer.answered(OK, T0 + 61)
    assert pacer.throttled_since is None
    pacer.answered(THROTTLED, T0 + 150)  # a new throttle, a new budget
    assert pacer.throttled_since == T0 + 150
    assert pacer.reserve(T0 + 151).exhausted is None


def test_an_answer_to_a_request_sent_before_the_pause_does_not_end_the_throttle() -> None:
    pacer = Pacer(PaceSettings(per_minute=600, wait=100, window=60))
    pacer.answered(THROTTLED, T0 + 30)
    pacer.answered(OK, T0 + 30.1)  # sent before the 429 came back
    assert pacer.throttled_since == T0 + 30


def test_other_statuses_leave_the_pace_alone() -> None:
    pacer = Pacer(PaceSettings(per_minute=600))
    for status in (200, 422, 500, 503):
        assert pacer.answered(DotoResponse(status=status, headers={}, body=b""), T0) is False
    assert pacer.pauses == 0 and pacer.paused_until == 0.0


def test_the_exhausted_error_names_the_limit_and_the_time_waited_and_is_final() -> None:
    request = DotoRequest("POST", "/api/v1/accounts/1/conversations/7/messages", json={"content": "hi"})
    slot = Slot(48.0, 3, exhausted=312.4)
    error = throttle_exhausted(request, PaceSettings(per_minute=2_700, wait=300), slot)
    assert isinstance(error, DotoRateLimitError)
    text = str(error)
    for part in (
        "POST /api/v1/accounts/1/conversations/7/messages",
        "HTTP 429",
        "for 312 s",
        "48 s more",
        "rate_limit_wait_seconds (300 s)",
        "(300 s)",
        "2,700",
    ):
        assert part in text
    assert (error.status, error.waited, error.retry_after) == (429, 312.4, None)
    assert not is_retryable(request, error)  # the budget is spent: the retry policy must not go on
    assert is_retryable(request, DotoRateLimitError("429", status=429))  # an ordinary 429 still is
