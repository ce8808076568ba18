"""Deferred waiting at scale: N triggers in one event loop, as the triggerer runs them.

Run as its own process (``python -m bench.triggers doto|http``) so its RSS is only this: Airflow,
the provider and N running triggers. The emulator is another process (its CPU is reported apart).
A sample of conversations gets one message each at a random moment; latency is from the moment
the emulator stored the message to the moment the trigger's event came out of ``run()``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import proc_cpu_seconds, proc_status_kb


def _trigger(kind: str, cid: int, start: int, interval: float, emu: EmulatorProcess) -> Any:
    if kind == "doto":
        from airflow_provider_doto.triggers.doto import NewMessageTrigger

        return NewMessageTrigger(conversation_id=cid, start=start, poll_interval=interval)
    from airflow.providers.http.triggers.http import HttpEventTrigger

    return HttpEventTrigger(
        response_check_path="bench._http_check.has_new_message",
        http_conn_id="doto_http",
        endpoint=f"api/v1/accounts/{emu.account_id}/conversations/{cid}/messages",
        headers={"api_access_token": emu.token},
        poll_interval=interval,
    )


async def _run(args: argparse.Namespace, emu: EmulatorProcess) -> dict[str, Any]:
    cids: list[int] = emu.call("add_conversations", args.n)
    start = int(time.time())
    os.environ["DOTO_BENCH_START"] = str(start)
    rss_before_kb = proc_status_kb("VmRSS")
    events: dict[int, float] = {}
    bad: list[Any] = []

    async def drive(trigger: Any, cid: int) -> None:
        # What the triggerer does with each trigger: iterate run(), then cleanup().
        try:
            async for event in trigger.run():
                events[cid] = time.time()
                payload = event.payload
                ok = payload is True or (isinstance(payload, dict) and payload.get("status") == "success")
                if not ok:
                    bad.append(payload)
        finally:
            await trigger.cleanup()

    rng = random.Random(8)
    sample = rng.sample(cids, min(args.sample, len(cids)))
    t0 = time.time()
    warm = args.warmup
    window_end = t0 + args.duration
    # Messages land at random moments once the loop is warm, early enough to be seen in the window.
    schedule = [(cid, rng.uniform(t0 + warm, window_end - args.interval - 1.0)) for cid in sample]
    emu.call("schedule", schedule)
    triggers = [_trigger(args.kind, cid, start, args.interval, emu) for cid in cids]
    tasks = [asyncio.create_task(drive(t, cid)) for t, cid in zip(triggers, cids, strict=True)]
    await asyncio.sleep(warm)
    c0, e0, r0, w0 = proc_cpu_seconds(), emu.cpu_seconds(), emu.call("request_count"), time.time()
    await asyncio.sleep(max(0.0, window_end - time.time()))
    c1, e1, r1, w1 = proc_cpu_seconds(), emu.cpu_seconds(), emu.call("request_count"), time.time()
    rss_kb, hwm_kb = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
    running = sum(not t.done() for t in tasks)
    failed = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    created = emu.call("created")
    latencies = sorted(events[cid] - created[cid][0] for cid in sample if cid in events and cid in created)
    polls = max(r1 - r0, 1)
    return {
        "kind": args.kind,
        "triggers": args.n,
        "interval_s": args.interval,
        "window_s": w1 - w0,
        "warmup_s": warm,
        "rss_mb": rss_kb / 1024,
        "hwm_mb": hwm_kb / 1024,
        "rss_before_triggers_mb": rss_before_kb / 1024,
        "cpu_share": (c1 - c0) / (w1 - w0),
        "cpu_ms_per_poll": (c1 - c0) * 1000 / polls,
        "polls_per_s": polls / (w1 - w0),
        "emulator_cpu_share": (e1 - e0) / (w1 - w0),
        "sampled": len(sample),
        "fired": len(latencies),
        "latency_p50_s": latencies[len(latencies) // 2] if latencies else None,
        "latency_p95_s": latencies[int(len(latencies) * 0.95) - 1] if latencies else None,
        "latency_max_s": latencies[-1] if latencies else None,
        "still_running": running,
        "errors": len(bad) + len(failed),
        "error_sample": repr((bad + failed)[:2]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.triggers")
    parser.add_argument("kind", choices=["doto", "http"])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument(
        "--duration", type=float, default=40.0, help="seconds from start to the end of the window"
    )
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before the window opens")
    parser.add_argument("--sample", type=int, default=100, help="conversations that get a message")
    parser.add_argument("--profile", help="write a cProfile of the loop to this file")
    args = parser.parse_args(argv)
    with EmulatorProcess() as emu:
        os.environ["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json()
        os.environ["AIRFLOW_CONN_DOTO_HTTP"] = emu.http_connection_json()
        # Import what the triggerer would have loaded before the triggers arrive.
        import airflow.triggers.base

        if args.kind == "doto":
            import aiohttp  # noqa: F401

            import airflow_provider_doto.triggers.doto  # noqa: F401
        else:
            import airflow.providers.http.triggers.http  # noqa: F401
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(asyncio.run, _run(args, emu))
            profiler.dump_stats(args.profile)
        else:
            result = asyncio.run(_run(args, emu))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
