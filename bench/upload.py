"""Sending a large file from object storage (benchmark 11): DotoHook.send_message(attachments=[path])
vs a plain ``requests.post(url, files=...)`` of the same bytes to the same endpoint.

The file (random bytes, ``report.pdf``) sits behind an Airflow ``ObjectStoragePath``: ``file://`` (fsspec's
local file system, the same ``ObjectStoragePath``/fsspec code path an ``s3://`` or ``gs://`` path takes,
without a network store) and ``memory://`` (fsspec's in-process store, filled by the child before its
baseline is read). One emulator process (the doto flavor) takes every upload; its stored files are
dropped after each child. Every case runs in a fresh process of its own (``--child``): a small upload off
the clock (imports, connection), then the high-water mark of resident memory is reset
(``/proc/self/clear_refs`` 5, which resets ``VmHWM`` and ``getrusage().ru_maxrss`` alike) and the
large file is sent: peak RSS above the resident memory just before (``ru_maxrss`` after minus ``VmRSS``
before); then three more timed sends (the time is the median of the four) and one under tracemalloc
(the peak of Python allocations). The sides alternate, one child each per repetition; the time ratio
is the median of the per-repetition ratios (paired).

``python -m bench.upload --size-mb 30 --reps 5 --stores file,memory``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.emulator_proc import EmulatorProcess
from bench.machine import median, proc_status_kb

SIDES = ("doto", "requests")
FILE_NAME = "report.pdf"
CONTENT = "The report you asked for."
MB = 1024 * 1024
TIMED = 4  # timed sends of the large file per child (the first also measures peak RSS)


def clear_blobs(emu: Any) -> int:
    """(In the emulator's process) drop every stored file and the request log (which keeps each
    request's whole body), so repeated 30 MB uploads do not pile up in the emulator."""
    emu._store.blobs.clear()
    emu.clear_requests()
    return 0


def _fill(path: Any, size: int) -> None:
    """Write ``size`` random bytes to ``path`` (an ObjectStoragePath), 1 MB at a time."""
    with path.open("wb") as out:
        left = size
        while left > 0:
            out.write(os.urandom(min(MB, left)))
            left -= min(MB, left)


def _source(store: str, folder: str, size: int, name: str) -> Any:
    """The file as an ObjectStoragePath; a ``memory://`` one is filled here (in this process)."""
    from airflow.sdk import ObjectStoragePath

    if store == "file":
        return ObjectStoragePath(f"file://{folder}/{name}")
    import fsspec
    from airflow.sdk.io import attach

    attach("memory", fs=fsspec.filesystem("memory"))  # as Airflow's own tests register it
    path = ObjectStoragePath(f"memory://bench-upload/{name}")
    if not path.exists():
        _fill(path, size)
    return path


def _doto(cid: int, path: Any) -> int:
    from airflow_provider_doto.hooks.doto import DotoHook

    message = DotoHook().send_message(cid, CONTENT, attachments=[path])
    return int(message.attachments[0].file_size or 0)


def _requests(cid: int, path: Any) -> int:
    """The upload as a user writes it with requests: the file opened, ``files=``; headers by hand."""
    import requests

    conn = json.loads(os.environ["AIRFLOW_CONN_DOTO_DEFAULT"])
    url = f"{conn['host']}/api/v1/accounts/{conn['extra']['account_id']}/conversations/{cid}/messages"
    with path.open("rb") as f:
        response = requests.post(
            url,
            headers={"api_access_token": conn["password"]},
            data={"content": CONTENT, "message_type": "outgoing", "private": "false"},
            files={"attachments[]": (path.name, f, "application/pdf")},
            timeout=120,
        )
    response.raise_for_status()
    return int(response.json()["attachments"][0]["file_size"])


def child(side: str, store: str, cid: int, folder: str, size: int) -> dict[str, Any]:
    """One side's sends in this (fresh) process: peak RSS growth, times, tracemalloc peak."""
    import gc
    import resource
    import tracemalloc

    send = _doto if side == "doto" else _requests
    warm = _source(store, folder, 4096, "warm.pdf")
    big = _source(store, folder, size, FILE_NAME)
    send(cid, warm)  # imports, connection lookup, keep-alive: off the clock
    gc.collect()
    rss0 = proc_status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    stored = send(cid, big)
    seconds = [time.perf_counter() - t0]
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm1 = proc_status_kb("VmHWM")
    for _ in range(TIMED - 1):
        t0 = time.perf_counter()
        send(cid, big)
        seconds.append(time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    send(cid, big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "seconds": median(seconds),
        "seconds_all": seconds,
        "rss_start_mb": rss0 / 1024,
        "maxrss_after_reset_mb": maxrss0 / 1024,
        "maxrss_growth_mb": max(0, maxrss1 - rss0) / 1024,  # RSS may fall after the read
        "hwm_growth_mb": max(0, hwm1 - rss0) / 1024,
        "tracemalloc_peak_mb": peak / MB,
        "stored_bytes": stored,
    }


def _run_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.upload", "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"upload child {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure(size_mb: int, reps: int, stores: list[str]) -> dict[str, Any]:
    size = size_mb * MB
    folder = tempfile.mkdtemp(prefix="bench-upload-")
    from airflow.sdk import ObjectStoragePath

    _fill(ObjectStoragePath(f"file://{folder}/{FILE_NAME}"), size)
    _fill(ObjectStoragePath(f"file://{folder}/warm.pdf"), 4096)
    results: dict[str, Any] = {"size_mb": size_mb, "reps": reps, "stores": stores}
    with EmulatorProcess() as emu:
        env = dict(os.environ)
        env["AIRFLOW_CONN_DOTO_DEFAULT"] = emu.connection_json(flavor="doto")
        (cid,) = emu.call("add_conversations", 1)
        for store in stores:
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SIDES}
            for rep in range(reps):
                for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                    e0 = emu.cpu_seconds()
                    r = _run_child(env, side, store, str(cid), folder, str(size))
                    r["emulator_cpu_s_per_upload"] = (emu.cpu_seconds() - e0) / (TIMED + 1)  # and 1 tiny
                    emu.call("run", "bench.upload:clear_blobs")
                    runs[side].append(r)
                    print(f"{store} {side} {rep}: {json.dumps(r)}", file=sys.stderr, flush=True)
            per: dict[str, Any] = {}
            for side in SIDES:
                rs = runs[side]
                per[side] = {
                    "seconds": median([r["seconds"] for r in rs]),
                    "seconds_all": [round(r["seconds"], 3) for r in rs],
                    "maxrss_growth_mb": median([r["maxrss_growth_mb"] for r in rs]),
                    "maxrss_growth_mb_all": [round(r["maxrss_growth_mb"], 1) for r in rs],
                    "tracemalloc_peak_mb": median([r["tracemalloc_peak_mb"] for r in rs]),
                    "tracemalloc_peak_mb_all": [round(r["tracemalloc_peak_mb"], 2) for r in rs],
                    "rss_start_mb": median([r["rss_start_mb"] for r in rs]),
                    "emulator_cpu_s_per_upload": median([r["emulator_cpu_s_per_upload"] for r in rs]),
                    "all_stored": all(r["stored_bytes"] == size for r in rs),
                }
            ratios = [
                d["seconds"] / b["seconds"] for d, b in zip(runs["doto"], runs["requests"], strict=True)
            ]
            results[store] = {
                **per,
                "time_ratio": median(ratios),
                "time_ratios": [round(x, 3) for x in ratios],
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upload")
    parser.add_argument("--size-mb", type=int, default=30)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--stores", default="file,memory")
    parser.add_argument("--child", nargs=5, help="(internal) side store cid folder size")
    args = parser.parse_args()
    if args.child:
        side, store, cid, folder, size = args.child
        print(json.dumps(child(side, store, int(cid), folder, int(size))))
        return
    print(json.dumps(measure(args.size_mb, args.reps, args.stores.split(","))))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------

MEMORY_GOAL_MB = 5.0
TIME_GOAL = 1.1


def table_rows(u: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 11) and the targets missed."""
    from bench._fmt import num, ok, ratio

    rows: list[list[str]] = []
    missed: list[str] = []
    for store in u["stores"]:
        r = u[store]
        d, b = r["doto"], r["requests"]
        what = (
            f"11 Send a {u['size_mb']} MB file from a `{store}://` ObjectStoragePath: "
            "DotoHook.send_message(attachments=[path]) vs requests.post(files=...)"
        )
        mem_ok = d["maxrss_growth_mb"] <= MEMORY_GOAL_MB and d["tracemalloc_peak_mb"] <= MEMORY_GOAL_MB
        time_ok = r["time_ratio"] <= TIME_GOAL
        missed += [] if mem_ok else [f"11 (memory, {store})"]
        missed += [] if time_ok else [f"11 (time, {store})"]
        emu = f"{d['emulator_cpu_s_per_upload']:.2f} / {b['emulator_cpu_s_per_upload']:.2f} s per upload"
        rows += [
            [
                f"{what}: peak RSS above the process's baseline, MB (ru_maxrss)",
                num(d["maxrss_growth_mb"], 1),
                num(b["maxrss_growth_mb"], 1),
                ratio(d["maxrss_growth_mb"], b["maxrss_growth_mb"]),
                f"<= {MEMORY_GOAL_MB:g} MB",
                ok(mem_ok),
                "-",
            ],
            [
                f"{what}: peak MB (tracemalloc)",
                num(d["tracemalloc_peak_mb"], 2),
                num(b["tracemalloc_peak_mb"], 2),
                ratio(d["tracemalloc_peak_mb"], b["tracemalloc_peak_mb"]),
                f"<= {MEMORY_GOAL_MB:g} MB",
                ok(mem_ok),
                "-",
            ],
            [
                f"{what}: seconds per upload (loopback)",
                num(d["seconds"], 3),
                num(b["seconds"], 3),
                f"{r['time_ratio']:.2f}x",
                f"<= {TIME_GOAL:g}x",
                ok(time_ok),
                emu,
            ],
        ]
    return rows, missed


def describe(u: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 11)."""
    per = []
    for store in u["stores"]:
        r = u[store]
        d, b = r["doto"], r["requests"]
        per.append(
            f"`{store}://`: seconds doto {d['seconds_all']}, requests {b['seconds_all']} (paired ratios "
            f"{r['time_ratios']}); peak RSS growth MB doto {d['maxrss_growth_mb_all']}, requests "
            f"{b['maxrss_growth_mb_all']}; tracemalloc peak MB doto {d['tracemalloc_peak_mb_all']}, requests "
            f"{b['tracemalloc_peak_mb_all']} (from an RSS of {d['rss_start_mb']:.0f} MB after imports and the "
            f"warm-up); every upload stored whole: {d['all_stored'] and b['all_stored']}"
        )
    return (
        f"**11. Sending a large file from object storage.** A {u['size_mb']} MB file (random bytes, "
        "`report.pdf`) behind an Airflow `ObjectStoragePath` is sent as a message's attachment to the doto "
        "emulator (its own process) on loopback. `file://` is fsspec's local file system reached through "
        "`ObjectStoragePath` (the same fsspec code path an `s3://` or `gs://` path takes, with a local store "
        "instead of a network one); `memory://` is fsspec's in-process store (registered with "
        "`airflow.sdk.io.attach('memory', fs=fsspec.filesystem('memory'))`; its file is filled by the "
        "measuring process before its baseline is read, so the stored bytes are not counted). Doto side: "
        "`DotoHook().send_message(cid, text, attachments=[path])` (the multipart body laid out by the core, "
        "each file streamed from its source 1 MB at a time with a `Content-Length`); baseline: "
        "`requests.post(url, headers=..., data={...}, files={'attachments[]': (name, path.open('rb'), "
        "'application/pdf')})`, as a user writes it (requests builds the whole multipart body in memory "
        "before sending). Each side runs in a fresh process per repetition: a 4 KB upload off the clock "
        "(imports, connection), then the high-water mark of resident memory is reset "
        "(`/proc/self/clear_refs` 5, which resets `VmHWM` and `getrusage().ru_maxrss` alike) and the large "
        "file is sent once: the reported RSS figure is `ru_maxrss` after that send minus `VmRSS` just "
        f"before it (peak resident memory above the process's baseline); {TIMED - 1} more sends are timed (the time "
        f"is the median of the {TIMED}) and one more runs under tracemalloc (the peak of Python allocations). "
        f"{u['reps']} repetitions, the sides alternating; the time ratio is the median of the per-repetition "
        "ratios (paired). The emulator does most of the work of an upload (it reads each whole body into "
        "memory, keeps it in its request log until the log is cleared after each process, and parses the "
        "form with starlette); its CPU per upload is given. " + "; ".join(per) + ".\n"
    )
