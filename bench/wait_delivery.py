"""The cost of ``wait_for="delivered"`` per message (benchmark 13): requests and time, per server flavor.

One emulator process per flavor (``doto``: the read-back asks for the message's second; ``chatwoot``:
for its id) with a WhatsApp inbox whose conversations each got an incoming message first (so the
24-hour window is open) and the emulator's delivery receipts on: a public outgoing message turns
``delivered`` ``d`` seconds of the emulator's clock (whole seconds) after its 200, ``read`` 30 s after.
Two schedules: ``d = 0`` (the receipt is there by the first read: the read-back's own cost) and
``d = 1`` (the receipt lands within a second, after the first read: the wait's poll interval shows).
``DotoHook.send_message(cid, text)`` (``wait_for=None``) vs ``send_message(cid, text,
wait_for="delivered")``, one fresh conversation per message, in blocks that alternate between the
sides (order rotating); the emulator counts every request it saw by method. The connection names the
flavor, so no detection requests (on ``auto`` the first read-back of a process probes once).

``python -m bench.wait_delivery --n 40 --n-slow 10 --block 5``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median

FLAVORS = ("doto", "chatwoot")
SIDES = ("none", "delivered")
READ_AFTER = 30


def setup(emu: Any, count: int, delivered_after: int) -> list[int]:
    """(In the emulator's process) ``count`` WhatsApp conversations, each with an incoming message
    (the window open), and delivery receipts ``delivered_after`` s after a send, read 30 s after."""
    emu.delivery_receipts = (delivered_after, READ_AFTER)
    inbox = emu.add_inbox("whatsapp", "WhatsApp")
    ids = []
    for _ in range(count):
        cid = int(emu.add_conversation(inbox_id=inbox))
        emu.add_message(cid, "Hi, where is my order?", message_type="incoming")
        ids.append(cid)
    return ids


def count_methods(emu: Any) -> dict[str, int]:
    """(In the emulator's process) the requests since the last call, by method, then clear them."""
    counts: dict[str, int] = {}
    for request in emu.requests:
        counts[request.method] = counts.get(request.method, 0) + 1
    emu.clear_requests()
    return counts


def _run_schedule(
    emu: EmulatorProcess, conn_id: str, n: int, block: int, delivered_after: int
) -> dict[str, Any]:
    from airflow_provider_doto.hooks.doto import DotoHook

    ids: list[int] = emu.call("run", "bench.wait_delivery:setup", 2 * n + 4, delivered_after)
    hook = DotoHook(doto_conn_id=conn_id)
    warm, ids = ids[:4], ids[4:]
    for i, cid in enumerate(warm):  # connection lookup, keep-alive, both code paths: off the clock
        hook.send_message(cid, "warm-up", wait_for=None if i % 2 else "delivered")
    emu.call("run", "bench.wait_delivery:count_methods")
    totals: dict[str, dict[str, Any]] = {
        side: {"seconds": 0.0, "messages": 0, "emulator_cpu_s": 0.0, "requests": {}} for side in SIDES
    }
    block_ms: dict[str, list[float]] = {side: [] for side in SIDES}
    statuses: dict[str, set[str]] = {side: set() for side in SIDES}
    for b in range(n // block):
        for side in SIDES if b % 2 == 0 else SIDES[::-1]:
            chunk, ids = ids[:block], ids[block:]
            e0 = emu.cpu_seconds()
            t0 = time.perf_counter()
            for cid in chunk:
                message = hook.send_message(
                    cid, "Your order has shipped.", wait_for=None if side == "none" else "delivered"
                )
                statuses[side].add(str(message.status))
            seconds = time.perf_counter() - t0
            t = totals[side]
            t["seconds"] += seconds
            t["messages"] += len(chunk)
            t["emulator_cpu_s"] += emu.cpu_seconds() - e0
            for method, count in emu.call("run", "bench.wait_delivery:count_methods").items():
                t["requests"][method] = t["requests"].get(method, 0) + count
            block_ms[side].append(seconds / len(chunk) * 1000)
    out: dict[str, Any] = {"delivered_after": delivered_after, "n": n, "block": block}
    for side in SIDES:
        t = totals[side]
        m = t["messages"]
        out[side] = {
            "messages": m,
            "requests": t["requests"],
            "requests_per_msg": sum(t["requests"].values()) / m,
            "reads_per_msg": t["requests"].get("GET", 0) / m,
            "ms_per_msg": t["seconds"] / m * 1000,
            "ms_per_msg_blocks": [round(x, 1) for x in block_ms[side]],
            "emulator_cpu_share": t["emulator_cpu_s"] / t["seconds"],
            "statuses": sorted(statuses[side]),
        }
    # Paired: the difference within each pair of blocks (the sides ran back to back).
    added = [w - z for z, w in zip(block_ms["none"], block_ms["delivered"], strict=True)]
    out["ms_added_per_msg"] = median(added)
    out["ms_added_blocks"] = [round(x, 1) for x in added]
    return out


def measure(n: int, n_slow: int, block: int) -> dict[str, Any]:
    results: dict[str, Any] = {"n": n, "n_slow": n_slow, "block": block, "read_after": READ_AFTER}
    for flavor in FLAVORS:
        with EmulatorProcess(flavor=flavor) as emu:
            conn_id = f"doto_{flavor}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = emu.connection_json(flavor=flavor)
            results[flavor] = {
                "0": _run_schedule(emu, conn_id, n, block, 0),
                "1": _run_schedule(emu, conn_id, n_slow, block, 1),
            }
            print(f"{flavor}: {json.dumps(results[flavor])}", file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wait_delivery")
    parser.add_argument("--n", type=int, default=40, help="messages per side, receipt at once")
    parser.add_argument("--n-slow", type=int, default=10, help="messages per side, receipt after 1 s")
    parser.add_argument("--block", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.n_slow, args.block)))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------


def table_rows(w: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 13); it has no target."""
    from bench._fmt import num, ratio

    rows: list[list[str]] = []
    for flavor in FLAVORS:
        for key, label in (("0", "receipt at once"), ("1", "receipt after 1 s")):
            r = w[flavor][key]
            d, z = r["delivered"], r["none"]
            what = (
                f"13 wait_for='delivered' vs wait_for=None, WhatsApp inbox, {flavor} emulator, {label} "
                f"({d['messages']} messages a side)"
            )
            rows += [
                [
                    f"{what}: requests per message (reads)",
                    f"{num(d['requests_per_msg'], 2)} ({num(d['reads_per_msg'], 2)})",
                    f"{num(z['requests_per_msg'], 2)} ({num(z['reads_per_msg'], 2)})",
                    ratio(d["requests_per_msg"], z["requests_per_msg"]),
                    "-",
                    "-",
                    "-",
                ],
                [
                    f"{what}: ms per message (added, paired)",
                    f"{num(d['ms_per_msg'], 1)} (+{num(r['ms_added_per_msg'], 1)})",
                    num(z["ms_per_msg"], 1),
                    ratio(d["ms_per_msg"], z["ms_per_msg"]),
                    "-",
                    "-",
                    "-",
                ],
            ]
    return rows, []


def describe(w: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 13)."""
    per = []
    for flavor in FLAVORS:
        for key in ("0", "1"):
            r = w[flavor][key]
            per.append(
                f"{flavor}, delivered after {key} s: requests by method wait {r['delivered']['requests']}, "
                f"none {r['none']['requests']}; statuses returned wait {r['delivered']['statuses']}, none "
                f"{r['none']['statuses']}; ms per message by block wait {r['delivered']['ms_per_msg_blocks']}, "
                f"none {r['none']['ms_per_msg_blocks']}"
            )
    return (
        "**13. The cost of `wait_for='delivered'`.** One emulator process per server flavor, each with a "
        "WhatsApp inbox whose conversations got an incoming message first (the 24-hour window open) and the "
        "emulator's delivery receipts on: a public outgoing message turns `delivered` d seconds of the "
        f"emulator's clock (whole seconds) after its 200, `read` {w['read_after']} s after. `receipt at once` "
        "is d = 0 (delivered by the first read: what the read-back itself costs), `receipt after 1 s` is "
        "d = 1 (the first read still sees `sent`; the wait reads again after its poll interval, 2 s by "
        "default). `DotoHook.send_message(cid, text, wait_for='delivered')` vs the same with "
        "`wait_for=None`, one fresh conversation per message, sequential, in blocks of "
        f"{w['block']} that alternate between the sides (order rotating), after 4 warm-up sends; the "
        "emulator counts every request it saw, by method. The connection names the flavor, so there are no "
        "detection requests (on `auto` the first read-back of a process probes the server once). A read-back "
        "is one list request: on `chatwoot` by id (`after=id&before=id+1`), on `doto` by second "
        "(`after=created_at-1&before=created_at+1`, which also returns any other message of the "
        "conversation in those seconds). Time added is the median over pairs of blocks of the difference "
        "in ms per message; on loopback a read costs about a millisecond, so with a receipt that comes late "
        "the poll interval is the whole cost. " + "; ".join(per) + ".\n"
    )
