"""Follow-up discovery over a whole account (benchmark 6a): the conversation list vs today's
per-conversation history reads.

One emulator process per server flavor holds an account of N conversations (``build_account``:
every common channel, statuses, labels, agents, four support-chat lines each, last active within
30 days), exactly M of them open; among the open ones every tenth ends with a private note of ours
and every tenth (another one) with a customer reply. Both sides answer "which open conversations
are due a nudge (our last public message 48 h to 7 days old, the customer silent since, not a
nudge)" against the same account, in this process, each with a fresh ``DotoHook`` (the connection
names the flavor: no detection requests):

* ``list``: ``find_follow_ups`` of the ``doto_follow_up`` / ``doto_backlog_nudge`` example DAGs,
  given no ids: the open conversations a page (25) at a time, deciding from each one's last
  non-activity message, and reading the history only of those whose last message is a private note.
* ``history``: what those DAGs did before, given the M open ids (which a user had to type in):
  each conversation's messages of the last 7 days (``DotoHook.list_messages``), then the rule on them.

Measured per run: wall seconds, requests the emulator received (and of which kind), the emulator
process's CPU seconds; the median of ``--reps`` runs, sides alternating. The due sets are compared
(``history`` does not know ``can_reply``: its due set is ``list``'s due plus those it skipped).

``python -m bench.discovery --conversations 10000 --open 2000 --reps 3``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median

SIDES = ("list", "history")
HOURS = 48
LOOKBACK_DAYS = 7
DAY = 86400


# ---- in the emulator's process (``EmulatorProcess.call("run", ...)``) -------------------------------


def seed_account(emu: Any, conversations: int, open_count: int, seed: int) -> dict[str, Any]:
    """The account (see the module docstring); returns the open ids and what was added to them."""
    ids = emu.build_account(conversations, 4, seed=seed)
    rng = random.Random(seed)
    now = emu.clock.now()
    open_ids, others = ids[:open_count], ids[open_count:]
    for cid in open_ids:
        if emu.conversation(cid)["status"] != "open":
            emu.update_conversation(cid, status="open")
    for cid in others:
        if emu.conversation(cid)["status"] == "open":
            emu.update_conversation(cid, status=rng.choice(("resolved", "pending", "snoozed")))
    notes = replies = 0
    for i, cid in enumerate(open_ids):
        at = min(emu.conversation(cid)["last_activity_at"] + 60, now)
        if i % 10 == 3:
            emu.add_message(
                cid, "Customer may call back", message_type="outgoing", private=True, created_at=at
            )
            notes += 1
        elif i % 10 == 7:
            emu.add_message(cid, "Thanks, that helped!", message_type="incoming", created_at=at)
            replies += 1
    return {"open_ids": open_ids, "notes": notes, "replies": replies}


def request_kinds(emu: Any) -> dict[str, int]:
    """The requests received since the last clear, by kind."""
    kinds = {"conversation_pages": 0, "conversation_reads": 0, "history_requests": 0, "other": 0}
    read_conversations = set()
    for r in emu.requests:
        if r.path.endswith("/conversations"):
            kinds["conversation_pages"] += 1
        elif r.path.endswith("/messages"):
            kinds["history_requests"] += 1
            read_conversations.add(r.path)
        elif "/conversations/" in r.path:
            kinds["conversation_reads"] += 1
        else:
            kinds["other"] += 1
    kinds["conversations_whose_history_was_read"] = len(read_conversations)
    kinds["total"] = len(emu.requests)
    return kinds


# ---- in this process: the two sides -------------------------------------------------------------


def list_side(now: int) -> list[int]:
    from airflow_provider_doto.example_dags.doto_follow_up import find_follow_ups
    from airflow_provider_doto.hooks.doto import DotoHook

    found = find_follow_ups(DotoHook(), now, hours=HOURS, lookback_days=LOOKBACK_DAYS)
    return [*found["due"], *found["skipped_reply_window"]]


def history_side(now: int, ids: list[int]) -> list[int]:
    from airflow_provider_doto.example_dags.doto_follow_up import follow_up_blocker
    from airflow_provider_doto.hooks.doto import DotoHook

    hook = DotoHook()
    return [
        cid
        for cid in ids
        if follow_up_blocker(hook.list_messages(cid, after=now - LOOKBACK_DAYS * DAY), now, HOURS) is None
    ]


def measure_flavor(flavor: str, conversations: int, open_count: int, reps: int) -> dict[str, Any]:
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    with EmulatorProcess(flavor=flavor) as emu:
        t0 = time.perf_counter()
        seeded = emu.call("run", "bench.discovery:seed_account", conversations, open_count, 0)
        seed_s = time.perf_counter() - t0
        ids = seeded["open_ids"]
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(flavor=flavor)
        now = int(time.time())
        history_side(now, ids[:5])  # imports, connection lookup, keep-alive: off the clock
        list_side(now)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SIDES}
        found: dict[str, list[int]] = {}
        for rep in range(reps):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                emu.call("clear_requests")
                e0 = emu.cpu_seconds()
                t0 = time.perf_counter()
                due = list_side(now) if side == "list" else history_side(now, ids)
                seconds = time.perf_counter() - t0
                runs[side].append(
                    {
                        "seconds": seconds,
                        "emulator_cpu_s": emu.cpu_seconds() - e0,
                        "requests": emu.call("run", "bench.discovery:request_kinds"),
                    }
                )
                found[side] = sorted(due)
                say(f"  {flavor} {side}: {seconds:.2f} s, {runs[side][-1]['requests']['total']} requests")
    out: dict[str, Any] = {"seed_seconds": seed_s, "notes": seeded["notes"], "replies": seeded["replies"]}
    for side in SIDES:
        rs = runs[side]
        out[side] = {
            "seconds": median([r["seconds"] for r in rs]),
            "seconds_all": [round(r["seconds"], 2) for r in rs],
            "emulator_cpu_s": median([r["emulator_cpu_s"] for r in rs]),
            "requests": rs[-1]["requests"],
            "requests_same_every_run": all(r["requests"] == rs[0]["requests"] for r in rs),
            "found": len(found[side]),
        }
    out["agree"] = found["list"] == found["history"]
    return out


def measure(conversations: int, open_count: int, reps: int, flavors: list[str]) -> dict[str, Any]:
    return {
        "conversations": conversations,
        "open": open_count,
        "hours": HOURS,
        "lookback_days": LOOKBACK_DAYS,
        "reps": reps,
        "flavors": {f: measure_flavor(f, conversations, open_count, reps) for f in flavors},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discovery")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--open", type=int, default=2_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--flavors", default="doto,chatwoot")
    args = parser.parse_args()
    print(json.dumps(measure(args.conversations, args.open, args.reps, args.flavors.split(","))))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------


def table_rows(f: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 6a); it has no target of its own."""
    from bench._fmt import num, ok, ratio

    rows = []
    for flavor, r in f["flavors"].items():
        what = (
            f"6a Follow-up discovery over {f['conversations']:,} conversations ({f['open']:,} open), "
            f"{flavor} emulator: the conversation list vs today's per-conversation history reads"
        )
        lst, hist = r["list"], r["history"]
        cpu = f"{lst['emulator_cpu_s']:.1f} s vs {hist['emulator_cpu_s']:.1f} s"
        rows += [
            [
                f"{what}: requests",
                f"{lst['requests']['total']:,}",
                f"{hist['requests']['total']:,}",
                ratio(lst["requests"]["total"], hist["requests"]["total"]),
                "-",
                "-",
                "-",
            ],
            [
                f"{what}: seconds",
                num(lst["seconds"], 2),
                num(hist["seconds"], 2),
                ratio(lst["seconds"], hist["seconds"]),
                "-",
                "-",
                cpu,
            ],
            [
                f"{what}: the same conversations found",
                f"{lst['found']:,}",
                f"{hist['found']:,}",
                "-",
                "the same",
                ok(r["agree"]),
                "-",
            ],
        ]
    return rows, []


def describe(f: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 6a)."""
    parts = []
    for flavor, r in f["flavors"].items():
        lq, hq = r["list"]["requests"], r["history"]["requests"]
        parts.append(
            f"{flavor}: `list` {lq['conversation_pages']} conversation pages and {lq['history_requests']} history "
            f"requests ({lq['conversations_whose_history_was_read']} conversations, the private-note ones), "
            f"{r['list']['seconds']:.2f} s (runs {r['list']['seconds_all']}); `history` {hq['history_requests']:,} "
            f"history requests for {hq['conversations_whose_history_was_read']:,} conversations, "
            f"{r['history']['seconds']:.2f} s (runs {r['history']['seconds_all']}); {r['list']['found']:,} "
            f"conversations due (or due but past their reply window) on each side"
        )
    return (
        f"**6a. Follow-up discovery.** Which of an account's {f['conversations']:,} conversations "
        f"({f['open']:,} open) are due a nudge ({f['hours']} h silence, {f['lookback_days']}-day lookback), "
        "the way the `doto_follow_up` and `doto_backlog_nudge` example DAGs decide it now (`list`: "
        "`find_follow_ups` with no ids, the open conversations 25 a page, each decided from its last "
        "non-activity message, the history read only where that is a private note) vs the way they did "
        "before (`history`: given the open ids, each conversation's last 7 days of messages read, then the "
        "rule). The account: `build_account` (every common channel, statuses, labels, agents, four "
        "support-chat lines each, last active within 30 days), exactly the open count open, every tenth open "
        "conversation ending with a private note and another tenth with a customer reply. One emulator process "
        "per flavor (the connection names the flavor), both sides in the benchmark's process with a fresh "
        f"`DotoHook`, sides alternating, the median of {f['reps']} runs; requests counted by the emulator. "
        "The `history` side is given the ids for free (the listing a user would need for them is not "
        "counted). The emulator answers on loopback in about a millisecond; against a real server each "
        "request costs a round trip more, so the request counts are the figures that carry over. "
        + "; ".join(parts)
        + ".\n"
    )
