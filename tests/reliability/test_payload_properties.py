"""Arbitrary server answers through whole flows: a normal result or a DotoError, never a bare error.

``tests/api/test_messages.py`` already throws arbitrary bodies (wrong JSON types, missing and null fields,
an HTML page with status 200, truncated bodies) at each parser. This adds what it does not: whole
multi-request flows (paging list, the sensor/trigger poll, send, delete) fed a *sequence* of
arbitrary answers, and absurdly long numbers in timestamp strings (``int()`` refuses more than
4,300 digits with a bare ``ValueError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._flows import delete_message_flow, run_flow, send_message_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse
from airflow_provider_doto.api._listing import list_messages_flow
from airflow_provider_doto.api._messages import parse_message
from airflow_provider_doto.exceptions import DotoError

T0 = 1_790_000_000
scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
long_digits = st.integers(4_000, 6_000).map(lambda n: "9" * n)
message = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(-2, 10**6) | json_value,
        "created_at": st.integers(T0 - 20, T0 + 20)
        | long_digits
        | st.sampled_from(["2026-01-01T00:00:00Z", "x"])
        | json_value,
        "message_type": st.sampled_from([0, 1, 2, 3, 4, "incoming", "outgoing", "", None]),
        "content": json_value,
        "private": json_value,
        "content_attributes": json_value,
        "sender": json_value,
        "attachments": json_value,
    },
)
good = {"id": 1, "created_at": T0, "message_type": "incoming", "content": "hi"}
page = st.lists(message | st.just(good), max_size=25).map(lambda items: {"payload": items})
body = (
    page.map(lambda p: json.dumps(p).encode())
    | json_value.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=60)
    | st.just(b"<html><body>Sign in</body></html>")
    | st.integers(0, 200).map(lambda n: json.dumps({"payload": [good] * 30}).encode()[:n])
)
answer = st.builds(
    DotoResponse,
    status=st.sampled_from([200, 200, 200, 200, 201, 204, 302, 401, 404, 422, 429, 500, 503]),
    headers=st.sampled_from([{}, {"retry-after": "1"}, {"retry-after": "²"}, {"content-type": "text/html"}]),
    body=body,
)


def drive(flow: Any, answers: list[DotoResponse]) -> Any:
    replies: Iterator[DotoResponse] = iter(answers * 50)  # a paging flow may ask many times

    def send(request: DotoRequest) -> DotoResponse:
        return next(replies)

    return run_flow(flow, send)


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except DotoError as err:
        assert str(err)  # a typed error with a message
        return err


@settings(max_examples=150, deadline=None)
@given(answers=st.lists(answer, min_size=1, max_size=4))
@example(
    answers=[DotoResponse(200, {}, json.dumps({"payload": [{**good, "created_at": "9" * 5000}]}).encode())]
)
def test_every_flow_on_arbitrary_answer_sequences(answers: list[DotoResponse]) -> None:
    listed = outcome(lambda: drive(list_messages_flow(7, 1, after=T0 - 10), answers))
    assert isinstance(listed, DotoError) or all(isinstance(m, api.Message) for m in listed)
    if not isinstance(listed, DotoError):
        assert len({m.id for m in listed}) == len(listed)  # each message once
    watch = api.MessageWatch(start=T0 - 30)
    polled = outcome(lambda: drive(watch.poll_flow(7, 1), answers))
    assert polled is None or isinstance(polled, DotoError | list)
    json.dumps(watch.to_state())  # the cursor stays JSON whatever came back
    sent = outcome(lambda: drive(send_message_flow(7, 1, "hi"), answers))
    assert isinstance(sent, DotoError | api.Message)
    deleted = outcome(lambda: drive(delete_message_flow(7, 1, 2), answers))
    assert deleted is True or isinstance(deleted, DotoError)


@given(digits=long_digits, sign=st.sampled_from(["", "-"]), fraction=st.sampled_from(["", ".5"]))
def test_huge_timestamp_strings_are_typed_errors(digits: str, sign: str, fraction: str) -> None:
    text = sign + digits + fraction
    assert isinstance(outcome(lambda: api.to_timestamp(text, name="after")), DotoError)
    assert isinstance(outcome(lambda: parse_message({**good, "created_at": text})), DotoError)
