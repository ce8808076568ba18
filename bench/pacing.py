"""A batch against a rack-attack-style throttle: paced (the default connection) vs today's batch.

Chatwoot throttles 3,000 requests a minute per client IP in a fixed window aligned to the epoch,
429 ``text/plain`` without ``Retry-After``. Here the same ratio scaled down (300 requests per 6 s
window: 3,000 a minute) against N messages (500: as 5,000 at the real scale), one
``DotoAsyncHook.send_messages`` batch at 10 in flight, fresh conversations, same emulator process:

* ``paced``: the connection's defaults (``max_requests_per_minute`` 2,700, 90% of the limit) with
  ``rate_limit_window_seconds`` set to the server's 6 s window;
* ``unpaced``: ``max_requests_per_minute: 0``, i.e. the batch as it was before pacing: each
  request retries a 429 on its own with the default retry policy (1, 2, 4, 8 s).

Every time constant is scaled with the window (60 s -> 6 s: a tenth): the retry policy's backoff,
its caps, and ``rate_limit_wait_seconds``; unscaled, today's 1-2-4-8 s backoff would span two of
the short windows, which at the real scale it never does (15 s inside one minute).

Each side starts at a fresh window (the previous side's count does not leak in). The limit's
minimum is N / limit windows (N / 3,000 minutes at the real scale); the targets: every message
sent exactly once, wall time <= 1.15x that minimum, throttled answers <= 2% of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import proc_cpu_seconds

SIDES = ("paced", "unpaced")


def _wait_for_fresh_window(period: float) -> None:
    """Sleep to just past the server's next window boundary (the epoch-aligned one)."""
    now = time.time()
    time.sleep((math.floor(now / period) + 1) * period - now + 0.05)


def _side(emu: EmulatorProcess, name: str, n: int, limit: int, period: float) -> dict[str, Any]:
    from airflow_provider_doto import api
    from airflow_provider_doto.api._pacing import PaceSettings
    from airflow_provider_doto.hooks import _pacing
    from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

    scale = period / 60  # every time constant shrinks with the window (60 s -> period)
    extra: dict[str, Any] = {
        "flavor": emu.flavor,
        "rate_limit_window_seconds": period,
        "rate_limit_wait_seconds": 300 * scale,
        # paced: the connection's default pace; unpaced: off, the batch as it was before pacing
        "max_requests_per_minute": PaceSettings().per_minute if name == "paced" else 0,
    }
    default = api.RetryPolicy()
    policy = api.RetryPolicy(
        attempts=default.attempts,
        backoff=default.backoff * scale,
        max_wait=default.max_wait * scale,
        total=default.total * scale,
    )
    os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(**extra)
    _pacing.forget_pacers()
    cids = emu.call("add_conversations", n)
    items = [api.BatchItem(cid, f"Hi #{cid}, still need help?") for cid in cids]
    emu.call("throttle", limit, period)  # counts afresh
    emu.call("clear_requests")
    _wait_for_fresh_window(period)
    c0, e0, t0 = proc_cpu_seconds(), emu.cpu_seconds(), time.perf_counter()
    results = asyncio.run(DotoAsyncHook(retry_policy=policy).send_messages(items, max_in_flight=10))
    wall = time.perf_counter() - t0
    c1, e1 = proc_cpu_seconds(), emu.cpu_seconds()
    requests = emu.call("request_count")
    throttled = emu.call("throttled")
    stored = emu.call("count_all", cids)
    emu.call("throttle", None)
    pacer = next(iter(_pacing._pacers.values()), None)
    return {
        "messages": n,
        "sent": sum(r.status == "sent" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "exactly_once": stored == [1 if r.status == "sent" else 0 for r in results],
        "stored_twice": sum(count > 1 for count in stored),
        "requests": requests,
        "throttled": throttled,
        "throttled_share": throttled / requests if requests else 0.0,
        "seconds": wall,
        "client_cpu_s": c1 - c0,
        "emulator_cpu_share": (e1 - e0) / wall,
        "pauses": pacer.pacer.pauses if pacer is not None else None,
        "errors": sorted({r.error.split(":", 1)[0] for r in results if r.error})[:3],
    }


def measure(n: int = 500, limit: int = 300, period: float = 6.0) -> dict[str, Any]:
    with EmulatorProcess() as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(flavor=emu.flavor)
        # Warm up off the clock: imports, the connection, the shared session (no throttle yet).
        from airflow_provider_doto import api
        from airflow_provider_doto.hooks.doto_async import DotoAsyncHook

        warm = emu.call("add_conversations", 5)
        asyncio.run(DotoAsyncHook().send_messages([api.BatchItem(c, "warm-up") for c in warm]))
        out: dict[str, Any] = {"n": n, "limit": limit, "period": period, "minimum_s": n / limit * period}
        for name in SIDES:
            out[name] = _side(emu, name, n, limit, period)
    for name in SIDES:
        out[name]["vs_minimum"] = out[name]["seconds"] / out["minimum_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pacing", description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--period", type=float, default=6.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.limit, args.period)))


# ---- results rows and the paragraph (bench/__main__.py) ------------------------------------------


def table_rows(p: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 9) and the targets missed."""
    from bench._fmt import num, ok

    paced, base = p["paced"], p["unpaced"]
    what = (
        f"9 Batch of {p['n']:,} against a rack-attack throttle of {p['limit']:,} per {p['period']:g} s window "
        f"(3,000/min scaled down): paced (default connection) vs today's batch (pacing off)"
    )
    all_once = paced["sent"] == p["n"] and paced["exactly_once"]
    time_ok = paced["vs_minimum"] <= 1.15
    share_ok = paced["throttled_share"] <= 0.02
    missed = [] if all_once else ["9 (every message once)"]
    missed += [] if time_ok else ["9 (wall time)"]
    missed += [] if share_ok else ["9 (throttled share)"]
    emu = f"{paced['emulator_cpu_share']:.2f} / {base['emulator_cpu_share']:.2f}"

    def counts(side: dict[str, Any]) -> str:
        return f"{side['sent']:,} / {side['failed']:,}" + ("" if side["exactly_once"] else " (duplicates!)")

    rows = [
        [
            f"{what}: sent / failed, each stored once",
            counts(paced),
            counts(base),
            "-",
            f"{p['n']:,} / 0, once",
            ok(all_once),
            emu,
        ],
        [
            f"{what}: wall s vs the limit's minimum ({num(p['minimum_s'], 1)} s)",
            f"{num(paced['seconds'], 1)} s ({paced['vs_minimum']:.2f}x)",
            f"{num(base['seconds'], 1)} s ({base['vs_minimum']:.2f}x)",
            f"{paced['seconds'] / base['seconds']:.2f}x",
            "<= 1.15x minimum",
            ok(time_ok),
            emu,
        ],
        [
            f"{what}: throttled answers / requests",
            f"{paced['throttled']:,} / {paced['requests']:,} ({100 * paced['throttled_share']:.1f}%)",
            f"{base['throttled']:,} / {base['requests']:,} ({100 * base['throttled_share']:.1f}%)",
            "-",
            "<= 2%",
            ok(share_ok),
            emu,
        ],
    ]
    return rows, missed


def describe(p: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 9)."""
    paced, base = p["paced"], p["unpaced"]
    return (
        f"**9. Pacing under a rack-attack throttle.** The emulator (its own process) throttles like Chatwoot's "
        f"`rack_attack.rb`, scaled down: {p['limit']:,} requests per client per {p['period']:g} s window "
        '(aligned to the epoch; every request counts; 429 `text/plain` "Retry later" without '
        f"`Retry-After`), the ratio of 3,000 a minute. One `DotoAsyncHook.send_messages` batch of {p['n']:,} "
        "messages to fresh conversations (10 in flight), each side starting at a fresh window, after a "
        "warm-up batch off the clock. `paced`: the connection's defaults (`max_requests_per_minute` 2,700, "
        f"a burst of 27) with `rate_limit_window_seconds` {p['period']:g}; `unpaced`: "
        "`max_requests_per_minute: 0`, the batch as it was before pacing (each request retries a 429 on its "
        "own under the default retry policy: 5 attempts, 1, 2, 4, 8 s). Every time constant is scaled with "
        f"the window ({p['period']:g} s for 60 s): the retry policy's backoff, `max_wait` and `total` and "
        "`rate_limit_wait_seconds` on both sides, else today's 15 s of backoff would span "
        "several short windows where at the real scale it stays inside one minute. The limit's minimum is "
        f"{p['n']:,} / {p['limit']:,} windows = {p['minimum_s']:.1f} s (at the real scale 5,000 messages: "
        "100 s). Wall time runs from the batch's start to its results; requests and throttled answers are "
        "the emulator's counts; stored messages are counted per conversation afterwards. A fixed window lets "
        "a client that starts at its boundary send a whole window's worth at once, so a batch can end before "
        "that minimum; the pace gives this up so that the server never has to refuse. Paced: "
        f"{paced['sent']:,} sent, {paced['failed']:,} failed, {paced['requests']:,} requests, "
        f"{paced['throttled']:,} throttled, pauses {paced['pauses']}, client CPU {paced['client_cpu_s']:.2f} s, "
        f"each stored once: {paced['exactly_once']}; unpaced: {base['sent']:,} sent, {base['failed']:,} "
        f"failed ({', '.join(base['errors']) or 'no errors'}), {base['requests']:,} requests, "
        f"{base['throttled']:,} throttled, client CPU {base['client_cpu_s']:.2f} s, each stored at most once: "
        f"{base['exactly_once']}.\n"
    )


if __name__ == "__main__":
    main()
