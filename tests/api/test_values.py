"""``_values``: timestamps, ids and a message to send, checked."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._flows import send_message_flow
from airflow_provider_doto.api._http import send_request
from airflow_provider_doto.api._values import (
    MAX_CONTENT_LENGTH,
    to_id,
    validate_content,
    validate_options,
    validate_send,
)
from airflow_provider_doto.exceptions import DotoConfigError

from ._support import T0, _assert_doto_or_result


class TestToTimestamp:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (T0, T0),
            (T0 + 0.9, T0),
            (0, 0),
            (dt.datetime(2024, 4, 1, 19, 50, tzinfo=dt.UTC), 1712001000),
            (dt.datetime(2024, 4, 1, 19, 50), 1712001000),  # naive is UTC
            (dt.datetime(2024, 4, 1, 21, 50, tzinfo=dt.timezone(dt.timedelta(hours=2))), 1712001000),
            (pendulum.datetime(2024, 4, 1, 19, 50, tz="UTC"), 1712001000),
            (pendulum.datetime(2024, 4, 1, 15, 50, tz="America/New_York"), 1712001000),
            ("2024-04-01T19:50:00Z", 1712001000),
            ("2024-04-01T19:50:00+00:00", 1712001000),
            ("2024-04-01T21:50:00+02:00", 1712001000),
            ("2024-04-01T19:50:00", 1712001000),
            (" 2024-04-01 19:50:00 ", 1712001000),
            ("1712001000", 1712001000),
            ("1712001000.7", 1712001000),
            ("-5", -5),
            ("9" * 30, int("9" * 30)),
        ],
    )
    def test_accepts(self, value, expected):
        assert api.to_timestamp(value) == expected

    @pytest.mark.parametrize(
        "value",
        [True, False, None, "yesterday", "", "1e400", float("nan"), float("inf"), dt.date(2024, 4, 1), [1]],
    )
    def test_rejects_with_the_argument_name(self, value):
        with pytest.raises(DotoConfigError, match=r"^before must be"):
            api.to_timestamp(value, name="before")


class TestToId:
    @pytest.mark.parametrize(("value", "expected"), [(5, 5), ("5", 5), (" 42 ", 42), (10**12, 10**12)])
    def test_accepts(self, value, expected):
        assert to_id(value, name="conversation_id") == expected

    @pytest.mark.parametrize("value", [0, -1, True, False, "abc", "", "-3", 5.0, None, "4.2", "²", "٣", "0"])
    def test_rejects_with_the_argument_name(self, value):
        with pytest.raises(DotoConfigError, match=r"^message_id must be a positive integer"):
            to_id(value, name="message_id")

    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=12) | st.integers() | st.floats() | st.none() | st.booleans())
    @example("²")
    def test_never_raises_bare(self, value):
        result = _assert_doto_or_result(lambda: to_id(value, name="message_id"))
        assert result is None or (isinstance(result, int) and result > 0)


class TestValidateSend:
    def test_valid(self):
        validate_send("hi", "outgoing", False, "text", None)
        validate_send("hi", "incoming", False, "input_select", {"items": []})
        validate_send("note", "outgoing", True, "text", {})

    @pytest.mark.parametrize(
        ("args", "match"),
        [
            (("", "outgoing", False, "text", None), "content must be a non-empty string"),
            (("   ", "outgoing", False, "text", None), "content must be a non-empty string"),
            ((None, "outgoing", False, "text", None), "content must be a non-empty string"),
            ((5, "outgoing", False, "text", None), "content must be a non-empty string"),
            (("hi", "activity", False, "text", None), "message_type must be one of outgoing, incoming"),
            (("hi", 1, False, "text", None), "message_type must be one of"),
            (("hi", None, False, "text", None), "message_type must be one of"),
            (("hi", "outgoing", "yes", "text", None), "private must be True or False"),
            (("hi", "outgoing", 1, "text", None), "private must be True or False"),
            (("hi", "incoming", True, "text", None), "private=True is only for outgoing"),
            (("hi", "outgoing", False, "", None), "content_type must be a non-empty string"),
            (("hi", "outgoing", False, None, None), "content_type must be a non-empty string"),
            (("hi", "outgoing", False, "text", ["a"]), "content_attributes must be a dict, got list"),
            (("hi", "outgoing", False, "text", "x"), "content_attributes must be a dict, got str"),
        ],
    )
    def test_invalid(self, args, match):
        with pytest.raises(DotoConfigError, match=match):
            validate_send(*args)

    def test_send_request_validates_before_building(self):
        with pytest.raises(DotoConfigError):
            send_request(1, 2, "")


class TestContentLimit:
    def test_at_the_limit_is_fine(self):
        request = send_request(1, 42, "x" * MAX_CONTENT_LENGTH)
        assert len(request.json["content"]) == 150_000

    def test_over_the_limit_is_refused_before_sending(self):
        with pytest.raises(DotoConfigError, match=r"150,001 characters.*at most 150,000"):
            validate_send("x" * 150_001, "outgoing", False, "text", None)
        flow = send_message_flow(1, 42, "y" * 200_000)
        with pytest.raises(DotoConfigError, match=r"200,000 characters"):
            next(flow)


class TestRobustness:
    @settings(max_examples=200, deadline=None)
    @example(value="9" * 400)
    @example(value=float("nan"))
    @given(
        value=st.text(max_size=40)
        | st.floats()
        | st.integers()
        | st.datetimes(timezones=st.none() | st.timezones())
    )
    def test_to_timestamp_never_raises_bare(self, value):
        result = _assert_doto_or_result(lambda: api.to_timestamp(value))
        assert result is None or isinstance(result, int)


class TestValidateContentAndOptions:
    """validate_send is these two: options are checked before a template's text is known."""

    def test_options_without_content(self):
        validate_options("outgoing", True, "text", {"a": 1})
        with pytest.raises(DotoConfigError, match="private=True is only for outgoing"):
            validate_options("incoming", True, "text", None)
        with pytest.raises(DotoConfigError, match="content_attributes must be a dict"):
            validate_options("outgoing", False, "text", "x")

    def test_content_alone(self):
        validate_content("hi")
        with pytest.raises(DotoConfigError, match="content must be a non-empty string"):
            validate_content(" ")
        with pytest.raises(DotoConfigError, match=r"150,001 characters"):
            validate_content("x" * 150_001)
