"""Export of a long conversation to JSON Lines (benchmark 8): streaming page by page vs the old listing.

One emulator process (the doto flavor with 100-message pages, as benchmark 5) holds conversations of
each size. Every export runs in a fresh process of its own (``--child``), so its peak resident
memory (``VmHWM``) is its own: ``stream`` is the ``ExportMessagesOperator`` path
(``DotoHook.iter_messages``, each message written as a JSON line as it comes), ``listing`` what
``ListMessagesOperator(output_path=...)`` did before it (``DotoHook.list_messages``, every row made,
then written). Both write through ``ObjectStoragePath`` to a local file. Timed runs alternate the
sides; the peak of Python allocations (tracemalloc, which slows a run) comes from one more run per
side.

``python -m bench.export --sizes 10000,100000 --reps 3``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_status_kb

SIDES = ("stream", "listing")


def _listing(cid: int, path: str) -> int:
    """What ListMessagesOperator(output_path=...) did before issue 17: list all, make every row, write."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_doto.hooks.doto import DotoHook

    messages = DotoHook().list_messages(cid)
    rows = [m.to_dict() for m in messages if not m.is_deleted]
    out_path = ObjectStoragePath(path)
    with out_path.open("w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def _stream(cid: int, path: str) -> int:
    """The streaming export: ``ExportMessagesOperator.execute`` (``DotoHook.iter_messages``, each
    message written as it comes, plain JSON Lines), no outlets, so no Airflow context is needed."""
    from airflow_provider_doto.operators.doto import ExportMessagesOperator

    op = ExportMessagesOperator(task_id="export", conversation_ids=[cid], output_path=path, compression=None)
    return int(op.execute({})["count"])  # type: ignore[arg-type]


def child(side: str, cid: int, warm_cid: int, path: str, trace: bool) -> dict[str, Any]:
    """One export in this (fresh) process: seconds, VmHWM growth, and with ``trace`` the tracemalloc peak."""
    import gc
    import tracemalloc

    export = _stream if side == "stream" else _listing
    export(warm_cid, path)  # imports, connection lookup, keep-alive: off the clock
    gc.collect()
    rss0, hwm0 = proc_status_kb("VmRSS"), proc_status_kb("VmHWM")
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    count = export(cid, path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    hwm1 = proc_status_kb("VmHWM")
    with open(path, "rb") as written:
        lines = sum(1 for _ in written)
    size = Path(path).stat().st_size
    Path(path).unlink()
    return {
        "seconds": seconds,
        "count": count,
        "rss_start_mb": rss0 / 1024,
        "hwm_start_mb": hwm0 / 1024,
        "hwm_growth_mb": (hwm1 - rss0) / 1024,
        "tracemalloc_peak_mb": peak / 1024 / 1024,
        "file_bytes": size,
        "lines": lines,
    }


def _run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.export", "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"export child {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(sizes: list[int], reps: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    results: dict[str, Any] = {"sizes": sizes, "reps": reps, "page_cap": 100}
    with EmulatorProcess() as emu:
        emu.call("page_cap", 100)
        env = dict(os.environ)
        # The flavor named: no detection requests, the same for both sides.
        env["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(flavor="doto")
        warm = emu.call("seed", 100, 3600)
        t0 = time.perf_counter()
        convs = {n: emu.call("seed", n, 3600) for n in sizes}
        results["seed_seconds"] = time.perf_counter() - t0
        for n in sizes:
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SIDES}
            for rep in range(reps):
                order = SIDES if rep % 2 == 0 else SIDES[::-1]
                for side in order:
                    path = str(folder / f"{side}-{n}.jsonl")
                    e0 = emu.cpu_seconds()
                    emu.call("clear_requests")
                    r = _run_child(env, side, str(convs[n]), str(warm), path)
                    r["emulator_cpu_share"] = (emu.cpu_seconds() - e0) / r["seconds"]
                    r["requests"] = emu.call("request_count")  # the warm-up's included
                    runs[side].append(r)
            traced = {
                side: _run_child(
                    env, side, str(convs[n]), str(warm), str(folder / f"t-{side}-{n}.jsonl"), "--trace"
                )
                for side in SIDES
            }
            per: dict[str, Any] = {}
            for side in SIDES:
                rs = runs[side]
                per[side] = {
                    "seconds": median([r["seconds"] for r in rs]),
                    "seconds_all": [round(r["seconds"], 2) for r in rs],
                    "hwm_growth_mb": median([r["hwm_growth_mb"] for r in rs]),
                    "hwm_growth_mb_all": [round(r["hwm_growth_mb"], 1) for r in rs],
                    "rss_start_mb": median([r["rss_start_mb"] for r in rs]),
                    "peak_mb": traced[side]["tracemalloc_peak_mb"],
                    "count": rs[0]["count"],
                    "requests": rs[0]["requests"],
                    "file_bytes": rs[0]["file_bytes"],
                    "emulator_cpu_share": median([r["emulator_cpu_share"] for r in rs]),
                }
            # Paired: the ratio within each repetition (the two sides ran back to back).
            ratios = [
                s["seconds"] / b["seconds"] for s, b in zip(runs["stream"], runs["listing"], strict=True)
            ]
            results[str(n)] = {
                **per,
                "time_ratio": median(ratios),
                "time_ratios": [round(x, 3) for x in ratios],
                "all_counted": all(r["count"] == r["lines"] == n for side in SIDES for r in runs[side]),
            }
            print(
                f"{n}: {json.dumps({k: v for k, v in results[str(n)].items()})}", file=sys.stderr, flush=True
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", nargs="+", help="(internal) side cid warm_cid path [--trace]")
    args, rest = parser.parse_known_args()
    if args.child:
        side, cid, warm_cid, path = args.child[:4]
        print(json.dumps(child(side, int(cid), int(warm_cid), path, "--trace" in rest)))
        return
    print(json.dumps(measure([int(s) for s in args.sizes.split(",")], args.reps)))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------

FLAT_MB = 2.0  # "flat": the streaming peak grows by at most this much from the smallest size to the largest


def table_rows(e: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 8) and the targets missed."""
    from bench._fmt import num, ok, ratio

    sizes = e["sizes"]
    peaks = [e[str(n)]["stream"]["peak_mb"] for n in sizes]
    flat = max(peaks) - min(peaks) <= FLAT_MB
    rows: list[list[str]] = []
    missed: list[str] = []
    for n in sizes:
        r = e[str(n)]
        s, b = r["stream"], r["listing"]
        what = f"8 Export a {n:,}-message conversation to JSON Lines (100-message pages): streaming vs list then write"
        mem_ok = s["peak_mb"] <= 30 and flat and r["all_counted"]
        time_ok = r["time_ratio"] <= 1.2
        missed += [] if mem_ok else [f"8 (memory, {n:,})"]
        missed += [] if time_ok else [f"8 (time, {n:,})"]
        emu = f"{s['emulator_cpu_share']:.2f} / {b['emulator_cpu_share']:.2f}"
        rows += [
            [
                f"{what}: peak MB (tracemalloc)",
                num(s["peak_mb"], 1),
                num(b["peak_mb"], 1),
                ratio(s["peak_mb"], b["peak_mb"]),
                f"<= 30 MB, flat (+<= {FLAT_MB:g} MB)",
                ok(mem_ok),
                "-",
            ],
            [
                f"{what}: peak RSS growth MB (VmHWM)",
                num(s["hwm_growth_mb"], 1),
                num(b["hwm_growth_mb"], 1),
                ratio(s["hwm_growth_mb"], b["hwm_growth_mb"]),
                "-",
                "-",
                "-",
            ],
            [
                f"{what}: seconds",
                num(s["seconds"], 2),
                num(b["seconds"], 2),
                f"{r['time_ratio']:.2f}x",
                "<= 1.2x",
                ok(time_ok),
                emu,
            ],
        ]
    return rows, missed


def describe(e: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 8)."""
    per = []
    for n in e["sizes"]:
        r = e[str(n)]
        per.append(
            f"{n:,} messages: {r['stream']['requests']:,} requests per export (the warm-up's included), "
            f"{r['stream']['file_bytes']:,} B written streaming, {r['listing']['file_bytes']:,} B by the "
            f"baseline, every message a line both ways: {r['all_counted']}; seconds "
            f"stream {r['stream']['seconds_all']}, listing {r['listing']['seconds_all']} (paired ratios "
            f"{r['time_ratios']}); VmHWM growth MB stream {r['stream']['hwm_growth_mb_all']}, listing "
            f"{r['listing']['hwm_growth_mb_all']} (from an RSS of {r['stream']['rss_start_mb']:.0f} MB "
            "after imports and the warm-up)"
        )
    return (
        "**8. Export in constant memory.** A conversation of each size on the doto emulator (its own process, "
        "pages capped at 100 as in 5; the connection names the flavor, so no detection) is exported to a "
        "local JSON Lines file through `ObjectStoragePath`, each export in a fresh process. `streaming`: "
        "`ExportMessagesOperator(conversation_ids=[cid], output_path=..., compression=None).execute()` "
        "(`DotoHook.iter_messages`, each message written as it comes; its lines carry the "
        "`conversation_id` too); baseline: what "
        "`ListMessagesOperator(output_path=...)` did before issue 17 (`DotoHook.list_messages`, every row "
        "made with `to_dict()`, then written, one `json.dumps` a line). Each process first exports a "
        "100-message conversation (imports, connection, keep-alive) off the clock. Time: the median of "
        f"{e['reps']} runs a side, the sides alternating; the ratio is the median of the per-repetition "
        "ratios. Peak: tracemalloc's peak of Python allocations during the export, from one more run per side; "
        "VmHWM growth: the process's peak resident memory after the export minus its resident memory before it "
        f"(medians). 'Flat' means the streaming peak at {max(e['sizes']):,} is at most {FLAT_MB:g} MB above "
        f"the one at {min(e['sizes']):,}. " + "; ".join(per) + ".\n"
    )
