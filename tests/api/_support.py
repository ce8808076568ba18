"""Helpers shared by the pure core's tests: canned answers and fake servers (no network)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from airflow_provider_doto import api
from airflow_provider_doto.api._flows import run_flow
from airflow_provider_doto.api._http import DotoRequest, DotoResponse, list_request
from airflow_provider_doto.api._listing import list_messages_flow
from airflow_provider_doto.exceptions import DotoError

T0 = 1_712_001_000
T2026 = 1_795_000_000  # a Unix time in late 2026 (the flavor tests)
BIG_IDS = 2_000_000_000  # a large server's ids: above any Unix timestamp of this century
BASE = "https://doto.example.test/chat"
TOKEN = "tok-SECRET-3f9a7c"
RAILS_404 = {"status": 404, "error": "Not Found"}
BOT_401 = {"error": "Access to this endpoint is not authorized for bots"}
DOTO_404 = {"error": "Resource could not be found"}
REQ = list_request(1, 42)


def msg(mid: int, ts: int, message_type="incoming", **extra) -> dict:
    """A message payload shaped like Chatwoot's."""
    return {
        "id": mid,
        "content": extra.pop("content", f"message {mid}"),
        "message_type": message_type,
        "created_at": ts,
        "private": extra.pop("private", False),
        **extra,
    }


def ok(payload, status: int = 200, headers: dict | None = None) -> DotoResponse:
    return DotoResponse(status, headers or {}, json.dumps(payload).encode())


def capped_server(messages, *, cap_after=100, cap_before=20, tie_seed=0, ignore_params=False):
    """A Chatwoot-like list endpoint: with ``after`` the oldest ``cap_after`` messages after it,
    otherwise the newest ``cap_before`` before ``before``. Both bounds strict. Order inside one
    second is the server's own (a fixed shuffle), not necessarily by id."""
    rng = random.Random(tie_seed)
    tie = {m["id"]: rng.random() for m in messages}
    calls: list[dict] = []

    def send(request: DotoRequest) -> DotoResponse:
        assert request.method == "GET"
        calls.append(dict(request.params))
        after = None if ignore_params else request.params.get("after")
        before = None if ignore_params else request.params.get("before")
        window = sorted(
            (
                m
                for m in messages
                if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
            ),
            key=lambda m: (m["created_at"], tie[m["id"]]),
        )
        if not ignore_params:
            window = window[:cap_after] if after is not None else window[-cap_before:]
        return ok({"payload": window, "meta": {"labels": []}})

    send.calls = calls
    return send


def list_all(messages, **kwargs):
    server_kwargs = {
        k: kwargs.pop(k) for k in ("cap_after", "cap_before", "tie_seed", "ignore_params") if k in kwargs
    }
    server = capped_server(messages, **server_kwargs)
    kwargs.setdefault("flavor", "doto")  # a timestamp server: no probe in the counted calls
    result = run_flow(list_messages_flow(1, 42, **kwargs), server)
    return result, server.calls


def _assert_doto_or_result(call):
    """The call's result, or None if it raised a DotoError; any other exception fails the test."""
    try:
        return call()
    except DotoError:
        return None
    except Exception as err:
        pytest.fail(f"bare {type(err).__name__}: {err}")


def ids(messages) -> list[int]:
    return [m.id for m in messages]


class FakeServer:
    """One conversation; ``visible=False`` messages are committed late (not yet listed).

    With a ``tie_seed`` the messages of one second come in a fixed shuffled order rather than by
    id: Chatwoot orders by a ``created_at`` finer than the whole seconds it shows.
    """

    def __init__(self, flavor: str, tie_seed: int | None = None):
        self.flavor = flavor
        self.messages: list[dict] = []
        self.calls: list[dict] = []
        self._tie = None if tie_seed is None else random.Random(tie_seed)

    def add(self, mid: int, ts: int, *, visible: bool = True, **extra) -> dict:
        message = {"id": mid, "content": f"m{mid}", "message_type": 0, "created_at": ts, **extra}
        message["_visible"] = visible
        message["_tie"] = mid if self._tie is None else self._tie.random()
        self.messages.append(message)
        return message

    def reveal(self, mid: int) -> None:
        next(m for m in self.messages if m["id"] == mid)["_visible"] = True

    def __call__(self, request: DotoRequest) -> DotoResponse:
        params = dict(request.params)
        self.calls.append(params)
        rows = [m for m in self.messages if m["_visible"]]
        rows = self._chatwoot(rows, params) if self.flavor == "chatwoot" else self._doto(rows, params)
        body = {"payload": [{k: v for k, v in m.items() if not k.startswith("_")} for m in rows]}
        return DotoResponse(200, {}, json.dumps(body).encode())

    @staticmethod
    def _doto(rows: list[dict], params: dict) -> list[dict]:
        after, before = params.get("after"), params.get("before")
        rows = [
            m
            for m in rows
            if (after is None or m["created_at"] > after) and (before is None or m["created_at"] < before)
        ]
        return sorted(rows, key=lambda m: (m["created_at"], m["_tie"]))

    @staticmethod
    def _chatwoot(rows: list[dict], params: dict) -> list[dict]:
        def by_time(ms, reverse=False):
            return sorted(ms, key=lambda m: (m["created_at"], m["_tie"]), reverse=reverse)

        after, before = params.get("after"), params.get("before")
        if after is not None and before is not None:
            return by_time([m for m in rows if after <= m["id"] < before])[:1000]
        if before is not None:
            return list(reversed(by_time([m for m in rows if m["id"] < before], reverse=True)[:20]))
        if after is not None:
            return by_time([m for m in rows if m["id"] > after])[:100]
        if "before_timestamp" in params:
            older = [m for m in rows if m["created_at"] < params["before_timestamp"]]
            return list(reversed(by_time(older, reverse=True)[:20]))
        return list(reversed(by_time(rows, reverse=True)[:20]))


def history(server: FakeServer, n: int, *, first_id: int, start: int, step: int = 1) -> list[int]:
    """``n`` messages, one a second from ``start``, ids ``first_id``, ``first_id + step``, ..."""
    return [server.add(first_id + i * step, start + i)["id"] for i in range(n)]


# Seconds by which ids and ``created_at`` disagree on a busy server (concurrent inserts take them
# in different orders); the pager's ID_ORDER_SLACK is meant to cover this much.
ID_DISORDER = 2


def busy_history(per_second: list[int], renumbered: list[tuple[int, int]], start: int) -> list[int]:
    """The ``created_at`` of a busy conversation's messages, in the order the server numbered them.

    ``per_second[i]`` messages are created in second ``start + i``. Each ``(k, delay)`` in
    ``renumbered`` gives message ``k`` (modulo the count, in creation order) its id ``delay``
    seconds late, after the messages created then: ids out of time order by up to ``delay``.
    """
    created = [start + second for second, count in enumerate(per_second) for _ in range(count)]
    delay = [0] * len(created)
    for k, late in renumbered:
        if created:
            delay[k % len(created)] = late
    numbered = sorted(range(len(created)), key=lambda i: (created[i] + delay[i], delay[i], i))
    return [created[i] for i in numbered]


def busy_seconds(max_seconds: int) -> st.SearchStrategy[list[int]]:
    """Messages per second for :func:`busy_history`: quiet, or busy enough that a page of 100 fits
    in the id-order slack, up to more than a page in one second."""
    return st.lists(st.integers(0, 6) | st.integers(34, 130), min_size=1, max_size=max_seconds)


# The ``renumbered`` of :func:`busy_history`: a few messages numbered up to ID_DISORDER seconds late.
RENUMBERED = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, ID_DISORDER)), max_size=8)
# Issue 26's conversation: 2 a second for 20 s, then 40, 41 and 40 in three seconds; the middle
# second's last message (index 40 + 40 + 40 in creation order) is numbered after the third second's.
ISSUE_26 = {"per_second": [2] * 20 + [40, 41, 40], "renumbered": [(120, 1)]}
# The properties over HTTP draw a new conversation per example on the emulator their fixture reset.
OVER_HTTP = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def seed_busy(emu, per_second: list[int], renumbered: list[tuple[int, int]], start: int) -> int:
    """A new conversation of :func:`busy_history` in a ``DotoEmulator`` (the hook and operator
    tests): stored in id order, each with its ``created_at``. Returns its id."""
    cid = emu.add_conversation()
    for i, created_at in enumerate(busy_history(per_second, renumbered, start)):
        emu.add_message(cid, f"busy {i}", created_at=created_at)
    return cid


def answer(payload, status: int = 200, base_url: str | None = BASE) -> DotoResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return DotoResponse(status, {}, body, base_url=base_url)


def doto_settings(account_id: int = 1) -> api.DotoSettings:
    return api.DotoSettings(base_url=BASE, token=TOKEN, account_id=account_id)


def drive(flow, answers):
    """Run a flow against a list of canned answers; returns (result, requests sent)."""
    sent: list[DotoRequest] = []
    pending = list(answers)

    def send(request):
        sent.append(request)
        return pending.pop(0)

    return run_flow(flow, send), sent
