"""The emulator's rack-attack throttle: the window arithmetic, the answer over real HTTP, the knobs."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_doto.testing.emulator import DotoEmulator
from airflow_provider_doto.testing.emulator.__main__ import _parser
from airflow_provider_doto.testing.emulator.throttle import Throttle, ThrottleRule

T0 = 1_800_000_000.0  # a multiple of 5 and of 60


def test_a_fixed_window_per_client_aligned_to_the_epoch() -> None:
    throttle = Throttle(ThrottleRule(3, 5))
    assert [throttle.admit("a", T0 + t) for t in (0.0, 1.0, 2.0, 4.9)] == [True, True, True, False]
    assert throttle.admit("b", T0 + 4.9)  # another client counts apart
    assert throttle.admit("a", T0 + 5.0)  # the boundary, whatever the client did before
    assert (throttle.allowed, throttle.throttled) == (5, 1)


def test_refused_requests_count_too() -> None:
    """rack-attack increments its counter for every request, so hammering never reopens a window."""
    throttle = Throttle(ThrottleRule(1, 60))
    assert throttle.admit("a", T0)
    assert not any(throttle.admit("a", T0 + i) for i in range(1, 60))
    assert throttle.admit("a", T0 + 60)


@pytest.mark.parametrize(
    ("text", "rule"),
    [("3000/60", ThrottleRule(3000, 60)), ("60/5", ThrottleRule(60, 5)), ("10", ThrottleRule(10, 60))],
)
def test_the_command_line_form(text: str, rule: ThrottleRule) -> None:
    assert ThrottleRule.parse(text) == rule
    assert _parser().parse_args(["--throttle", text]).throttle == rule


@pytest.mark.parametrize("bad", ["0/60", "x/60", "60/0", "60/-1", "60/inf"])
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        ThrottleRule.parse(bad)


def test_the_emulator_answers_like_rack_attack(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    cid = emu.add_conversation()
    emu.set_throttle(2, 3600)
    assert emu.throttle == (2, 3600)
    url, headers = emu.messages_url(cid), {"api_access_token": emu.token}
    answers = [requests.get(url, headers=headers, timeout=10) for _ in range(4)]
    # (An hour's window: only a run straddling the hour could see it turn, and then the 4th passes.)
    assert [a.status_code for a in answers[:3]] == [200, 200, 429]
    refused = answers[2]
    assert refused.content == b"Retry later\n"
    assert refused.headers["content-type"] == "text/plain"
    assert "retry-after" not in {k.lower() for k in refused.headers}
    assert emu.throttled_requests >= 1
    # Before the token or the route is looked at: rack-attack sits in front of Rails.
    assert requests.get(url, headers={"api_access_token": "wrong"}, timeout=10).status_code in (429, 401)
    assert len(emu.requests) == 5  # refused requests are recorded like any other


def test_reset_turns_the_throttle_off(doto_emulator: DotoEmulator) -> None:
    emu = doto_emulator
    emu.set_throttle(1, 60)
    emu.reset()
    assert emu.throttle is None and emu.throttled_requests == 0


@pytest.mark.doto_throttle(1, 3600)
def test_the_fixture_marker_turns_it_on(doto_emulator: DotoEmulator) -> None:
    assert doto_emulator.throttle == (1, 3600)
