"""One account watcher vs one trigger per conversation, on a 10,000-conversation account (benchmark 9).

``python -m bench.account_watch`` runs two fresh processes one after the other, each the triggerer
side only (its own emulator is a child process, ``bench/emulator_proc.py``, with a counting proxy
of its own, so neither the server's nor the proxy's CPU counts as the triggers'):

* ``--child account``: ONE ``NewMessageTrigger()`` (no conversation: the whole account), set up as
  the triggerer sets up an ``AssetWatcher``'s trigger (``trigger_id``, ``task_instance=None``, an
  in-memory asset state store that keeps the JSON it is given);
* ``--child conversations``: ``--n`` ``NewMessageTrigger(cid)`` watchers (the baseline), each on one
  conversation of the same account, all in one event loop; their per-trigger costs are
  extrapolated to every conversation of the account.

Both see the same phases: warm-up; latency (``--samples`` messages at random moments in random
watched conversations; latency is from the moment the emulator stored a message to the moment its
event came out of ``run()``); quiet (until the account watch's listing window, ``overlap`` plus
``CLOCK_SLACK`` behind its last listing, holds no change); idle (requests by kind from the
emulator's log, bytes both ways at the proxy, CPU from ``/proc/self/stat``, RSS); burst (a
message in each of ``--burst`` conversations at once: the state's JSON size once every message was
reported, then after the watch forgets quiet cursors). The last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_status_kb

SIDES = ("account", "conversations", "paged")


class JsonStore:
    """The asset state store as the triggerer hands it to a watcher (``aget``/``aset``), holding the
    JSON text it was given (the real one takes only JSON); sizes in bytes per key."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.peak = 0  # the largest single value written
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        text = self.data.get(key)
        return default if text is None else json.loads(text)

    async def aset(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        self.data[key] = text
        size = len(text.encode())
        self.sizes[key] = size
        self.peak = max(self.peak, size)
        self.writes += 1

    def total(self) -> int:
        return sum(self.sizes.values())


class Collector:
    """What the triggerer does with each trigger (iterate ``run()``), noting when each message came."""

    def __init__(self) -> None:
        self.seen: dict[int, list[float]] = {}  # conversation -> when each of its messages was reported
        self.reported: dict[int, int] = {}  # message id -> times reported (not redelivered)
        self.redelivered = 0
        self.events = 0
        self.errors: list[Any] = []

    async def drive(self, trigger: Any, cid: int | None) -> None:
        try:
            async for event in trigger.run():
                at = time.time()
                payload = event.payload
                if not (isinstance(payload, dict) and payload.get("status") == "success"):
                    self.errors.append(payload)
                    continue
                self.events += 1
                for message in payload["messages"]:
                    conv = cid if cid is not None else message["conversation_id"]
                    self.seen.setdefault(conv, []).append(at)
                    if payload.get("redelivered"):
                        self.redelivered += 1
                    else:
                        self.reported[message["id"]] = self.reported.get(message["id"], 0) + 1
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noted, reported in the figures
            self.errors.append(repr(err))
        finally:
            await trigger.cleanup()

    def count(self) -> int:
        return len(self.reported)

    def first_after(self, cid: int, t: float) -> float | None:
        """When a message of ``cid`` stored at ``t`` was reported (the first report at or after it)."""
        return next((at for at in self.seen.get(cid, []) if at >= t), None)


def _watcher(trigger: Any, store: JsonStore, trigger_id: int) -> Any:
    # As the triggerer sets up an AssetWatcher's trigger (tests/triggers/test_doto.py: as_watcher).
    trigger.trigger_id = trigger_id
    trigger.task_instance = None
    trigger.asset_state_store = store
    return trigger


async def _phase(emu: EmulatorProcess, seconds: float) -> dict[str, Any]:
    """Sleep ``seconds`` and measure what the trigger side did meanwhile."""
    emu.call("request_kinds")  # clears the log
    emu.call("proxy_reset")
    c0, e0, w0 = time.process_time(), emu.cpu_seconds(), time.time()
    await asyncio.sleep(seconds)
    c1, e1, w1 = time.process_time(), emu.cpu_seconds(), time.time()
    kinds = emu.call("request_kinds")
    sent, received, connections = emu.call("proxy_reset")
    wall = w1 - w0
    return {
        "seconds": wall,
        "cpu_s": c1 - c0,
        "cpu_share": (c1 - c0) / wall,
        "emulator_cpu_share": (e1 - e0) / wall,
        "requests": kinds,
        "request_bytes": sent,
        "response_bytes": received,
        "connections": connections,
        "rss_mb": proc_status_kb("VmRSS") / 1024,
        "hwm_mb": proc_status_kb("VmHWM") / 1024,
    }


async def _until(check: Any, limit: float) -> float:
    t0 = time.time()
    while not check() and time.time() - t0 < limit:
        await asyncio.sleep(0.1)
    return time.time() - t0


async def _run(side: str, args: argparse.Namespace, emu: EmulatorProcess) -> dict[str, Any]:
    from airflow_provider_doto.api._conversations import CLOCK_SLACK
    from airflow_provider_doto.triggers.doto import EVENT_SETTLE_SECONDS, NewMessageTrigger

    rng = random.Random(23)
    cids: list[int] = emu.call("build_account", args.conversations, 0)
    watched = cids if side != "conversations" else rng.sample(cids, args.n)
    if side == "paged":  # a server older than updated_within: the watch pages by last activity
        emu.call("supports_updated_within", False)
    store = JsonStore()
    collector = Collector()
    rss_before = proc_status_kb("VmRSS") / 1024
    triggers: list[tuple[Any, int | None]]
    if side != "conversations":
        triggers = [(_watcher(NewMessageTrigger(poll_interval=args.interval), store, 1), None)]
    else:
        triggers = [
            (_watcher(NewMessageTrigger(cid, poll_interval=args.interval), store, i + 1), cid)
            for i, cid in enumerate(watched)
        ]
    overlap = triggers[0][0].overlap
    tasks = [asyncio.create_task(collector.drive(t, cid)) for t, cid in triggers]
    out: dict[str, Any] = {
        "side": side,
        "conversations": args.conversations,
        "triggers": len(triggers),
        "interval_s": args.interval,
        "rss_before_triggers_mb": rss_before,
    }
    await asyncio.sleep(args.warmup)
    if side == "paged":  # for reference: the idle poll alone
        out["idle"] = await _phase(emu, args.idle)
        out["idle"]["state_bytes"] = store.total()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        out["errors"] = len(collector.errors)
        return out

    # Latency: one message each in random watched conversations, at random moments.
    sample = rng.sample(watched, args.samples)
    t0 = time.time()
    window = args.latency_window
    schedule = [(cid, t0 + 1 + (window - args.interval - 2) * rng.random()) for cid in sample]
    emu.call("schedule", schedule)
    out["latency_phase"] = await _phase(emu, window)
    await _until(lambda: collector.count() >= len(sample), args.interval + 10)
    created = emu.call("created")
    reported = {c: collector.first_after(c, created[c][0]) for c in sample if c in created}
    latencies = sorted(at - created[c][0] for c, at in reported.items() if at is not None)
    out["latency_s"] = [round(x, 3) for x in latencies]
    out["latency_p50_s"] = median(latencies) if latencies else None
    out["latency_max_s"] = latencies[-1] if latencies else None
    out["sampled"], out["fired"] = len(sample), len(latencies)

    # Quiet: nothing changes until the account watch's listing window is past the last message.
    last = max(when for _, when in schedule)
    quiet = last + overlap + CLOCK_SLACK + 2 * args.interval - time.time() if side == "account" else 2.0
    await asyncio.sleep(max(0.0, quiet))
    out["idle"] = await _phase(emu, args.idle)
    out["idle"]["state_bytes"] = store.total()

    # Burst: a message in each of ``burst`` conversations at once.
    burst = rng.sample(watched, min(args.burst, len(watched)))
    before = collector.count()
    emu.call("request_kinds")
    b0, c0 = time.time(), time.process_time()
    landed = emu.call("burst", burst)
    drained = await _until(lambda: collector.count() - before >= len(burst), 300)
    burst_reported = {c: collector.first_after(c, landed[c]) for c in burst}
    # The per-poll save after the batch went out (it is held as pending until it settles).
    await asyncio.sleep(1.0)
    out["burst"] = {
        "conversations": len(burst),
        "seconds_to_report_all": drained,
        "burst_cpu_s": time.process_time() - c0,
        "requests": emu.call("request_kinds"),
        "reported": collector.count() - before,
        "all_reported": all(at is not None for at in burst_reported.values()),
        "latency_max_s": max(
            (at - landed[c] for c, at in burst_reported.items() if at is not None), default=None
        ),
        "state_bytes_with_pending": store.total(),
        "hwm_mb": proc_status_kb("VmHWM") / 1024,
        "seconds": time.time() - b0,
    }
    # Once the batch has settled (``event_settle_seconds``, then a poll), only the cursors remain.
    await asyncio.sleep(EVENT_SETTLE_SECONDS + 2 * args.interval)
    out["burst"]["state_bytes_settled"] = store.total()
    out["burst"]["cursors_settled"] = _cursors(store)
    if side == "account":
        # After the horizon the quiet cursors are dropped: the state is bounded by recent activity.
        await asyncio.sleep(overlap + CLOCK_SLACK + 3 * args.interval)
        out["burst"]["state_bytes_after_horizon"] = store.total()
        out["burst"]["cursors_after_horizon"] = _cursors(store)
    out["state_peak_bytes"] = store.peak
    out["store_writes"] = store.writes
    out["hwm_mb"] = proc_status_kb("VmHWM") / 1024
    running = sum(not t.done() for t in tasks)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out["still_running"] = running
    out["reported_messages"] = collector.count()
    out["repeated"] = sum(1 for n in collector.reported.values() if n > 1)
    out["redelivered"] = collector.redelivered
    out["errors"] = len(collector.errors)
    out["error_sample"] = repr(collector.errors[:2])
    out["expected_messages"] = len(sample) + len(burst)
    return out


def _cursors(store: JsonStore) -> int:
    """Cursors held: an account watch's ``cursors`` entries, or one per conversation trigger's state."""
    n = 0
    for text in store.data.values():
        state = json.loads(text)
        n += len(state["cursors"]) if state.get("account") else 1
    return n


def child(side: str, args: argparse.Namespace) -> dict[str, Any]:
    with EmulatorProcess(max_recorded_requests=200_000) as emu:
        url = emu.call("proxy")
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(base_url=url, flavor="doto")
        # What the triggerer has loaded before the triggers arrive.
        import aiohttp  # noqa: F401
        import airflow.triggers.base  # noqa: F401

        import airflow_provider_doto.triggers.doto  # noqa: F401

        return asyncio.run(_run(side, args, emu))


def _run_child(env: dict[str, str], side: str, argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.account_watch", "--child", side, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    sys.stderr.write(proc.stderr[-5000:])
    if proc.returncode != 0:
        raise RuntimeError(f"account_watch child {side} failed (exit {proc.returncode})")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.account_watch")
    parser.add_argument("--child", choices=SIDES, help="(internal) run one side in this process")
    parser.add_argument("--conversations", type=int, default=10_000, help="the account's size")
    parser.add_argument("--n", type=int, default=1000, help="per-conversation triggers measured")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--samples", type=int, default=12, help="messages for the latency figures")
    parser.add_argument("--latency-window", type=float, default=60.0)
    parser.add_argument("--idle", type=float, default=40.0, help="seconds of the idle measurement")
    parser.add_argument("--burst", type=int, default=1000, help="conversations with a message at once")
    args, _ = parser.parse_known_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    argv = [a for a in sys.argv[1:]]
    env = dict(os.environ)
    results: dict[str, Any] = {}
    for side in SIDES:
        results[side] = _run_child(env, side, argv)
        print(f"{side}: {json.dumps(results[side])}", file=sys.stderr, flush=True)
    results["scale"] = args.conversations / args.n
    print(json.dumps(results))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------

KB = 1024


def _idle(side: dict[str, Any]) -> dict[str, float]:
    """Idle figures of one side: per poll of the account watch, per interval for all the triggers."""
    idle = side["idle"]
    req = idle["requests"]
    total = req["list"] + req["messages"] + req["other"]
    wire = idle["request_bytes"] + idle["response_bytes"]
    per_interval = side["interval_s"] / idle["seconds"]
    polls = req["list"] if side["side"] != "conversations" else total / side["triggers"]
    return {
        "requests": total,
        "polls": polls,
        "requests_per_poll": total / polls if polls else float("nan"),
        "requests_per_interval": total * per_interval,
        "bytes_per_poll": wire / polls if polls else float("nan"),
        "bytes_per_interval": wire * per_interval,
        "bytes_per_request": wire / total if total else float("nan"),
        "cpu_share": idle["cpu_share"],
        "rss_growth_mb": idle["hwm_mb"] - side["rss_before_triggers_mb"],
        "emulator_cpu_share": idle["emulator_cpu_share"],
    }


def table_rows(r: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 9) and the targets missed."""
    from bench._fmt import num, ok, ratio

    a, c, k = r["account"], r["conversations"], r["scale"]
    ia, ic = _idle(a), _idle(c)
    n, total = c["triggers"], a["conversations"]
    interval = a["interval_s"]
    what = (
        f"10 Account watch, {total:,}-conversation account, {interval:g} s interval: one account watcher "
        f"vs per-conversation triggers ({n:,} measured / {total:,} extrapolated)"
    )
    emu = f"{ia['emulator_cpu_share']:.2f} / {ic['emulator_cpu_share']:.2f}"

    def base(measured: float, digits: int, unit: str = "") -> str:
        return f"{num(measured, digits)}{unit} / {num(measured * k, digits)}{unit}"

    rows: list[list[str]] = []
    missed: list[str] = []

    def row(name: str, ours: str, baseline: str, rat: str, target: str, met: bool | None) -> None:
        if met is not None and not met:
            missed.append(f"10 ({name.split(',')[0]})")
        rows.append([f"{what}: {name}", ours, baseline, rat, target, "-" if met is None else ok(met), emu])

    row(
        "requests per idle poll (per interval, all conversations)",
        num(ia["requests_per_poll"], 2),
        base(ic["requests_per_interval"], 0),
        ratio(ia["requests_per_poll"], ic["requests_per_interval"] * k),
        "1 vs one per conversation",
        abs(ia["requests_per_poll"] - 1.0) < 1e-9,
    )
    row(
        "bytes per idle poll, request + response (updated_within honoured)",
        f"{num(ia['bytes_per_poll'], 0)} B",
        base(ic["bytes_per_interval"], 0, " B"),
        ratio(ia["bytes_per_poll"], ic["bytes_per_interval"] * k),
        "<= 2 KB",
        ia["bytes_per_poll"] <= 2 * KB,
    )
    row(
        "triggerer CPU when idle, cores",
        num(ia["cpu_share"], 4),
        base(ic["cpu_share"], 3),
        ratio(ia["cpu_share"], ic["cpu_share"] * k),
        "<= 0.02",
        ia["cpu_share"] <= 0.02,
    )
    row(
        "triggerer RSS growth, MB (VmHWM after the idle window minus RSS before the triggers)",
        num(ia["rss_growth_mb"], 1),
        base(ic["rss_growth_mb"], 1),
        ratio(ia["rss_growth_mb"], ic["rss_growth_mb"] * k),
        "<= 20 MB",
        ia["rss_growth_mb"] <= 20,
    )
    peak_a = a["hwm_mb"] - a["rss_before_triggers_mb"]
    peak_c = c["hwm_mb"] - c["rss_before_triggers_mb"]
    row(
        f"triggerer RSS growth, MB, peak over the whole run (burst in {a['burst']['conversations']:,} "
        "conversations included)",
        num(peak_a, 1),
        base(peak_c, 1),
        ratio(peak_a, peak_c * k),
        "<= 20 MB",
        peak_a <= 20,
    )
    lat_ok = (
        a["latency_max_s"] is not None and a["latency_max_s"] <= interval + 1 and a["fired"] == a["sampled"]
    )
    row(
        f"new message in a random conversation -> event, s: median (max) of {a['sampled']}",
        f"{num(a['latency_p50_s'], 2)} ({num(a['latency_max_s'], 2)})",
        f"{num(c['latency_p50_s'], 2)} ({num(c['latency_max_s'], 2)}) measured",
        ratio(a["latency_max_s"], c["latency_max_s"]),
        f"<= {interval + 1:g} s",
        lat_ok,
    )
    b, cb = a["burst"], c["burst"]
    row(
        f"state JSON bytes after a burst in {b['conversations']:,} conversations (settled)",
        f"{b['state_bytes_settled']:,} B",
        f"{cb['state_bytes_settled']:,} B / {round(cb['state_bytes_settled'] * k):,} B",
        ratio(b["state_bytes_settled"], cb["state_bytes_settled"] * k),
        "-",
        None,
    )
    if "state_bytes_after_horizon" in b:
        row(
            "state JSON bytes once the burst is past the horizon (quiet cursors dropped)",
            f"{b['state_bytes_after_horizon']:,} B",
            f"{cb['state_bytes_settled']:,} B / {round(cb['state_bytes_settled'] * k):,} B",
            ratio(b["state_bytes_after_horizon"], cb["state_bytes_settled"] * k),
            "-",
            None,
        )
    if "paged" in r:
        ip = _idle(r["paged"])
        row(
            "(reference) bytes per idle poll on a server that ignores updated_within (paged by last "
            "activity), requests per poll",
            f"{num(ip['bytes_per_poll'], 0)} B ({num(ip['requests_per_poll'], 2)})",
            base(ic["bytes_per_interval"], 0, " B"),
            ratio(ip["bytes_per_poll"], ic["bytes_per_interval"] * k),
            "-",
            None,
        )
    return rows, missed


def describe(r: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 9)."""
    a, c, k = r["account"], r["conversations"], r["scale"]
    ia, ic = _idle(a), _idle(c)
    b = a["burst"]

    def side_note(s: dict[str, Any], i: dict[str, float]) -> str:
        idle, lat, burst = s["idle"], s["latency_phase"], s["burst"]
        return (
            f"idle {idle['seconds']:.0f} s: requests {idle['requests']}, {i['polls']:.1f} polls a trigger, "
            f"{idle['request_bytes']:,} B sent + {idle['response_bytes']:,} B received "
            f"({i['bytes_per_request']:.0f} B a request), CPU {idle['cpu_s']:.3f} s, RSS before the triggers "
            f"{s['rss_before_triggers_mb']:.1f} MB, VmHWM {idle['hwm_mb']:.1f} MB; latency phase "
            f"{lat['seconds']:.0f} s: requests {lat['requests']}, CPU share {lat['cpu_share']:.4f}, "
            f"latencies s {s['latency_s']} ({s['fired']} of {s['sampled']} reported); burst: "
            f"{burst['reported']:,} of {burst['conversations']:,} messages reported, all within "
            f"{burst['seconds_to_report_all']:.1f} s (slowest {burst['latency_max_s']:.1f} s), requests "
            f"{burst['requests']}, CPU {burst['burst_cpu_s']:.2f} s, VmHWM after {burst['hwm_mb']:.1f} MB, "
            f"state {burst['state_bytes_with_pending']:,} B while the batch was pending, "
            f"{burst['state_bytes_settled']:,} B settled ({burst['cursors_settled']:,} cursors, "
            f"{burst['state_bytes_settled'] / max(burst['cursors_settled'], 1):.0f} B each)"
            + (
                f", {burst['state_bytes_after_horizon']:,} B ({burst['cursors_after_horizon']} cursors) "
                "past the horizon"
                if "state_bytes_after_horizon" in burst
                else ""
            )
            + f"; largest single state written {s['state_peak_bytes']:,} B; messages reported "
            f"{s['reported_messages']:,} of {s['expected_messages']:,}, repeated {s['repeated']}, "
            f"redelivered {s['redelivered']}, errors {s['errors']}"
        )

    return (
        f"**10. Account watch.** An emulator account of {a['conversations']:,} conversations "
        "(`DotoEmulator.build_account`: realistic conversations across inboxes, statuses and labels, last "
        "active within 30 days), the emulator in a child process with a counting TCP proxy of its own "
        "(bytes both ways, headers included; its CPU is the emulator's), requests by kind from the "
        "emulator's log, the emulator's CPU from `/proc/<pid>/stat`. Each side is a fresh process holding only the triggers, run as the triggerer runs "
        "an `AssetWatcher`'s trigger (`trigger_id` set, `task_instance=None`, an in-memory asset state "
        "store that keeps the JSON written to it): `account` is ONE `NewMessageTrigger()` (no "
        f"conversation: the whole account, `AccountWatch`); the baseline is {c['triggers']:,} "
        f"`NewMessageTrigger(cid)` on random conversations of the same account, one event loop, one "
        f"shared client; its per-trigger costs are multiplied by {k:g} for the whole account (second "
        "figure in the baseline column; the ratio is against that). Connection flavor `doto` (no "
        f"detection), poll interval {a['interval_s']:g} s. Phases: warm-up; latency ({a['sampled']} "
        "messages at random moments in random watched conversations; from the moment the emulator stored "
        "a message to the moment its event left `run()`; never two messages of the run in one conversation "
        "within a second); quiet (for the account watch, until its listing "
        "window, overlap plus the 60 s clock slack behind the last listing, holds no change); idle "
        "(measured: requests, bytes, CPU with `time.process_time()`, the whole process, every thread; RSS); burst (one message in each of "
        f"{b['conversations']:,} conversations at once; the state's JSON size, i.e. `json.dumps` of "
        "`AccountWatch.to_state()` as saved, once the batch settled, and for the account watch again after "
        "the horizon). Account watcher: " + side_note(a, ia) + f". Per-conversation triggers "
        f"({c['triggers']:,}): "
        + side_note(c, ic)
        + "."
        + (
            " For reference, the same account watcher on an emulator that ignores `updated_within` "
            "(`supports_updated_within = False`, a server older than the parameter: the watch then pages "
            "the list by last activity and stops past its time), idle only: "
            f"requests {r['paged']['idle']['requests']}, {r['paged']['idle']['request_bytes']:,} B sent + "
            f"{r['paged']['idle']['response_bytes']:,} B received over {r['paged']['idle']['seconds']:.0f} s, "
            f"CPU share {r['paged']['idle']['cpu_share']:.4f}."
            if "paged" in r
            else ""
        )
        + " Per-trigger costs of the baseline are extrapolated linearly: its RSS growth and CPU include "
        f"what its triggers share (the client, its connection pool), so the {a['conversations']:,} figure somewhat "
        "overstates them; requests and bytes are per trigger by nature.\n"
    )
