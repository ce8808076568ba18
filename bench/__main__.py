"""Run every benchmark, print the table and write BENCHMARKS.md: ``bash bench/run.sh`` (or ``python -m bench``).

Each benchmark runs in a fresh process (so one's memory does not count in another's), against a
Doto emulator in a child process of its own (so the server's CPU never counts as the client's; its
share is reported beside each figure). Every figure has a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import (
    account_watch,
    discovery,
    export,
    export_attachments,
    followups,
    pacing,
    tls_link,
    upload,
    wait_delivery,
)
from bench.machine import machine_info

ROOT = Path(__file__).resolve().parent.parent
KB = 1024
SEND_CLIENTS = ("doto", "raw", "http", "urllib3", "raw_noenv")
# Results key -> module with table_rows() and describe(), in the table's order.
_NEWER: dict[str, Any] = {
    "followups": followups,
    "discovery": discovery,
    "tls": tls_link,
    "export": export,
    "pacing": pacing,
    "account": account_watch,
    "upload": upload,
    "attachments": export_attachments,
    "delivery": wait_delivery,
}


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Runner:
    """Runs ``python -m bench.<module> args`` in a fresh process; its last stdout line is JSON."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.env = dict(os.environ)
        home = tempfile.mkdtemp(prefix="bench-airflow-home-")
        self.env.update(
            {
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
        )
        self.seconds: dict[str, float] = {}

    def __call__(
        self, module: str, *args: str, label: str | None = None, timeout: float = 900
    ) -> dict[str, Any]:
        label = label or module
        log = self.logdir / f"{label}.log"
        print(f"  running {module} {' '.join(args)} ...", end="", flush=True)
        t0 = time.monotonic()
        with open(log, "w") as err:
            proc = subprocess.run(
                [sys.executable, "-m", f"bench.{module}", *args],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                timeout=timeout,
            )
        self.seconds[label] = time.monotonic() - t0
        print(f" {self.seconds[label]:.0f} s", flush=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench.{module} failed (exit {proc.returncode}); see {log}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- figures -> table ----------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ticks_ms(value: float) -> str:
    """CPU from /proc is counted in 10 ms ticks: below a tick per sample, say so rather than 0.0."""
    return "<1" if value < 1 else f"{value:.0f}"


def _ratio(ours: float, base: float) -> str:
    return f"{ours / base:.2f}x" if base else "n/a"


def _ok(met: bool) -> str:
    return "yes" if met else "**NO**"


def _listing_rows(what: str, ours: dict[str, Any], base: dict[str, Any]) -> list[list[str]]:
    """Benchmark 5's two rows for one listing against another: time (with requests) and peak memory."""
    return [
        [
            f"{what}: seconds (requests)",
            f"{_fmt(ours['seconds'], 2)} s ({ours['requests']})",
            f"{_fmt(base['seconds'], 2)} s ({base['requests']})",
            _ratio(ours["seconds"], base["seconds"]),
            "-",
            "-",
            f"{ours['emulator_cpu_share']:.2f} / {base['emulator_cpu_share']:.2f}",
        ],
        [
            f"{what}: peak MB (tracemalloc)",
            _fmt(ours["peak_mb"]),
            _fmt(base["peak_mb"]),
            _ratio(ours["peak_mb"], base["peak_mb"]),
            "-",
            "-",
            "-",
        ],
    ]


def build_rows(r: dict[str, Any], interval: float) -> tuple[list[list[str]], list[str]]:
    """Table rows, and the names of targets missed."""
    rows: list[list[str]] = []
    missed: list[str] = []

    if "imports" in r:
        imp = r["imports"]
        ours, http = imp["doto"], imp["http"]
        met = ours["cpu_ms"] <= 15
        missed += [] if met else ["1"]
        rows.append(
            [
                "1 DAG-parse import after `import airflow.sdk` (operators + sensors): extra CPU ms",
                f"{_fmt(ours['cpu_ms'])} ms",
                f"{_fmt(http['cpu_ms'])} ms (http provider)",
                _ratio(ours["cpu_ms"], http["cpu_ms"]),
                "<= 15 ms",
                _ok(met),
                "-",
            ]
        )
        rows.append(
            [
                "1 DAG-parse import: extra wall-clock ms (includes waiting for a busy CPU)",
                f"{_fmt(ours['ms'])} ms",
                f"{_fmt(http['ms'])} ms",
                _ratio(ours["ms"], http["ms"]),
                "-",
                "-",
                "-",
            ]
        )
        rows.append(
            [
                "1 DAG-parse import: extra modules",
                f"{ours['modules']:.0f}",
                f"{http['modules']:.0f}",
                _ratio(ours["modules"], http["modules"]),
                "-",
                "-",
                "-",
            ]
        )

    if "send" in r:
        s = r["send"]
        doto, raw, http = s["doto"], s["raw"], s["http"]
        vs_raw, vs_http = s["ratio_doto_raw"], s["ratio_doto_http"]
        missed += [] if vs_raw >= 0.9 else ["2 (vs raw session)"]
        missed += [] if vs_http >= 2 else ["2 (vs HttpHook)"]
        emu = f"{doto['emulator_cpu_share']:.2f} / {raw['emulator_cpu_share']:.2f} / {http['emulator_cpu_share']:.2f}"
        rows.append(
            [
                "2 Send throughput, msgs/s: DotoHook.send_message vs raw requests.Session",
                _fmt(doto["msgs_per_s"], 0),
                f"{_fmt(raw['msgs_per_s'], 0)} (raw)",
                f"{vs_raw:.2f}x",
                ">= 0.9x",
                _ok(vs_raw >= 0.9),
                emu,
            ]
        )
        rows.append(
            [
                "2 Send throughput, msgs/s: DotoHook.send_message vs HttpHook.run",
                _fmt(doto["msgs_per_s"], 0),
                f"{_fmt(http['msgs_per_s'], 0)} (HttpHook)",
                f"{vs_http:.2f}x",
                ">= 2x",
                _ok(vs_http >= 2),
                emu,
            ]
        )
        u3, noenv = s["urllib3"], s["raw_noenv"]
        rows.append(
            [
                "2 (reference) requests.Session with trust_env=False, msgs/s, vs raw requests.Session",
                _fmt(noenv["msgs_per_s"], 0),
                f"{_fmt(raw['msgs_per_s'], 0)} (raw)",
                f"{s['ratio_noenv_raw']:.2f}x",
                "-",
                "-",
                f"{noenv['emulator_cpu_share']:.2f}",
            ]
        )
        rows.append(
            [
                "2 (reference) a bare urllib3 pool, msgs/s, vs raw requests.Session",
                _fmt(u3["msgs_per_s"], 0),
                f"{_fmt(raw['msgs_per_s'], 0)} (raw)",
                f"{s['ratio_urllib3_raw']:.2f}x",
                "-",
                "-",
                f"{u3['emulator_cpu_share']:.2f}",
            ]
        )

    if "history" in r:
        h = r["history"]
        poll = h["poll"]
        sizes = sorted({int(k.split(":")[1]) for k in poll})
        ours_bytes = [poll[f"doto:{n}"]["bytes"] for n in sizes]
        constant = max(ours_bytes) - min(ours_bytes) <= 64
        for n in sizes:
            ours, http = poll[f"doto:{n}"], poll[f"http:{n}"]
            met = ours["bytes"] <= KB and constant
            if not met:
                missed.append(f"3 ({n:,} messages)")
            rows.append(
                [
                    f"3 Idle poke, {n:,}-message conversation, doto emulator: bytes on the wire (requests)",
                    f"{ours['bytes']:,.0f} B ({ours['requests']:.0f})",
                    f"{http['bytes']:,.0f} B ({http['requests']:.0f}) HttpSensor",
                    _ratio(ours["bytes"], http["bytes"]),
                    "<= 1 KB, constant",
                    _ok(met),
                    f"{_ticks_ms(ours['emulator_cpu_ms'])} / {_ticks_ms(http['emulator_cpu_ms'])} ms per poke",
                ]
            )
        flavors = h.get("flavors", {})
        if "chatwoot" in flavors:
            cw = flavors["chatwoot"]["poll"]
            cw_bytes = [cw[f"doto:{n}"]["bytes"] for n in sizes]
            cw_constant = max(cw_bytes) - min(cw_bytes) <= 64
            for n in sizes:
                ours, base = cw[f"doto:{n}"], poll[f"doto:{n}"]
                met = ours["bytes"] <= KB and cw_constant and ours["requests"] == 1
                if not met:
                    missed.append(f"3 (chatwoot, {n:,} messages)")
                rows.append(
                    [
                        f"3 Idle poke, {n:,}-message conversation, chatwoot emulator: bytes on the wire (requests)",
                        f"{ours['bytes']:,.0f} B ({ours['requests']:.0f})",
                        f"{base['bytes']:,.0f} B ({base['requests']:.0f}) doto emulator",
                        _ratio(ours["bytes"], base["bytes"]),
                        "<= 1 KB, constant",
                        _ok(met),
                        f"{_ticks_ms(ours['emulator_cpu_ms'])} / {_ticks_ms(base['emulator_cpu_ms'])} ms per poke",
                    ]
                )
        for name in ("doto", "chatwoot"):
            if name not in flavors:
                continue
            warm = flavors[name]["warmup"]
            for n in sizes:
                auto, pinned = warm[f"auto:{n}"], warm[f"pinned:{n}"]
                rows.append(
                    [
                        f"3 First poke on auto (detection + first lookup), {n:,}-message conversation, "
                        f"{name} emulator: bytes (requests)",
                        f"{auto['bytes']:,.0f} B ({auto['requests']})",
                        f"{pinned['bytes']:,.0f} B ({pinned['requests']}) flavor set",
                        _ratio(auto["bytes"], pinned["bytes"]),
                        "-",
                        "-",
                        "-",
                    ]
                )

    if "triggers_doto" in r and "triggers_http" in r:
        d, h = r["triggers_doto"], r["triggers_http"]
        emu = f"{d['emulator_cpu_share']:.2f} / {h['emulator_cpu_share']:.2f}"
        label = f"4 {d['triggers']:,} triggers, {d['interval_s']:g} s interval vs HttpEventTrigger"
        checks = [
            ("process RSS, MB (VmHWM peak)", d["hwm_mb"], h["hwm_mb"], d["hwm_mb"] <= 150, "<= 150 MB", 0),
            ("CPU share, cores", d["cpu_share"], h["cpu_share"], d["cpu_share"] <= 0.2, "<= 0.2", 3),
            ("CPU per poll, ms", d["cpu_ms_per_poll"], h["cpu_ms_per_poll"], True, "<= 1 ms", 2),
            ("polls per second", d["polls_per_s"], h["polls_per_s"], True, "-", 0),
            (
                "latency, message stored -> event, max s (p50)",
                d["latency_max_s"],
                h["latency_max_s"],
                d["latency_max_s"] is not None
                and d["latency_max_s"] <= interval + 0.5
                and d["fired"] == d["sampled"],
                f"<= {interval + 0.5:g} s",
                2,
            ),
        ]
        for name, ours_v, base_v, met, target, digits in checks:
            if target == "-":
                ok = "-"
            else:
                ok = _ok(met and (name != "CPU per poll, ms" or ours_v <= 1.0))
                if ok != "yes":
                    missed.append(f"4 ({name})")
            ours_s, base_s = _fmt(ours_v, digits), _fmt(base_v, digits)
            if name.startswith("latency"):
                ours_s += f" ({_fmt(d['latency_p50_s'], 2)})"
                base_s += f" ({_fmt(h['latency_p50_s'], 2)})"
            rows.append(
                [
                    f"{label}: {name}",
                    ours_s,
                    base_s,
                    _ratio(ours_v, base_v) if ours_v is not None and base_v else "n/a",
                    target,
                    ok,
                    emu,
                ]
            )

    if "transports" in r:
        t = r["transports"]
        base = t["httpx"]["cpu_ms_per_poll"]
        for name in ("aiohttp", "httpcore", "httpx"):
            rows.append(
                [
                    f"4a Transport, CPU ms per poll ({t['pollers']:,} pollers, one shared client): {name}",
                    _fmt(t[name]["cpu_ms_per_poll"], 2),
                    f"{_fmt(base, 2)} (httpx)",
                    _ratio(t[name]["cpu_ms_per_poll"], base),
                    "-",
                    "-",
                    f"{t[name]['emulator_cpu_share']:.2f}",
                ]
            )

    if "history" in r:
        p = r["history"]["paging"]
        cap, nocap = p["cap100"], p["nocap"]
        rows += _listing_rows(
            f"5 List a {p['size']:,}-message conversation, 100-message pages vs no cap", cap, nocap
        )
        cw = r["history"].get("flavors", {}).get("chatwoot", {}).get("listing")
        if cw:
            what = (
                f"5 List a {cw['size']:,}-message conversation on auto, chatwoot emulator (100 a page, by id) "
                "vs doto emulator (one answer)"
            )
            rows += _listing_rows(what, cw, nocap)
    # Benchmarks 6-13 build their own rows (bench/followups.py, ... bench/upload.py, bench/wait_delivery.py).
    for key, module in _NEWER.items():
        if key in r:
            more, more_missed = module.table_rows(r[key])
            rows += more
            missed += more_missed
    return rows, missed


HEADER = ["benchmark", "Doto provider", "baseline (same run)", "ratio", "target", "met", "emulator CPU"]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    widths[0] = min(widths[0], 70)

    def line(row: list[str]) -> str:
        first = row[0] if len(row[0]) <= 70 else row[0][:67] + "..."
        return "  ".join(str(c).ljust(w) for c, w in zip([first, *row[1:]], widths, strict=True))

    return "\n".join([line(HEADER), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# ---- BENCHMARKS.md -------------------------------------------------------------------------------


def render(
    r: dict[str, Any],
    rows: list[list[str]],
    missed: list[str],
    meta: dict[str, Any],
    extra_profiles: dict[str, str],
) -> str:
    out: list[str] = []
    out.append("# Benchmarks: the Doto provider against the alternatives\n")
    out.append(
        "Written by `bash bench/run.sh` (see `bench/`). Every figure is set beside a baseline measured in "
        "the same run against the same emulator; each is a median of several repetitions. The emulator "
        "runs in its own process, and its CPU share (from `/proc/<pid>/stat`) is given beside each figure "
        "(doto / baseline), to show the server was never the bottleneck. No test asserts any of this.\n"
    )
    out.append(f"- **Date:** {meta['date']}")
    out.append(f"- **Command:** `{meta['command']}` (total {meta['total_s']:.0f} s)")
    out.append(
        f"- **Load average** (1/5/15 min) before: {meta['load_before']}, after: {meta['load_after']} "
        "(other work on the machine shows up as noise in the wall-clock figures)"
    )
    out.append("\n## Machine\n")
    out.append("| | |\n|---|---|")
    out += [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    out.append("\n## Results\n")
    out.append(markdown_table(rows))
    out.append("")
    if missed:
        out.append(
            f"**Targets missed in this run:** {', '.join(missed)}. Why, and what was tried, is below.\n"
        )
    else:
        out.append("**Every target was met in this run.**\n")

    out.append("## What each benchmark does\n")
    if "imports" in r:
        imp = r["imports"]
        out.append(
            "**1. DAG-parse import cost.** A fresh interpreter per sample imports `airflow.sdk`, then times "
            "importing `airflow_provider_doto.operators.doto` + `airflow_provider_doto.sensors.doto`, vs "
            "`airflow.providers.http.operators.http` + `airflow.providers.http.sensors.http`, and counts the "
            f"`sys.modules` added. Median of {imp['reps']} samples each, sides alternating. The target is "
            "checked on the importing process's CPU time (`time.process_time()`), which other work on a shared "
            "machine does not inflate; wall-clock time is given too. Bytecode is "
            "cached (a private `PYTHONPYCACHEPREFIX`, warmed first) for both, as for any installed package. "
            "The provider imports `requests`, `tenacity`, `aiohttp` and the trigger module only where they "
            f"are used, so none of them load at parse time (heavy modules seen: doto {imp['doto']['heavy'] or 'none'}; "
            f"http provider {imp['http']['heavy'][:4]}...). Samples, CPU ms: doto {imp['doto']['cpu_ms_all']}; "
            f"http {imp['http']['cpu_ms_all']}; wall ms: doto {imp['doto']['ms_all']}; http {imp['http']['ms_all']}.\n"
        )
    if "send" in r:
        s = r["send"]
        out.append(
            f"**2. Send throughput.** Sequential sends; the clients take turns in {s['blocks']} blocks of "
            f"{s['block']} messages each (order rotating), after a warm-up, so load from anything else on the "
            "machine falls on all of them alike; msgs/s is the median over a client's blocks, and each ratio is "
            "the median over rounds of the ratio within a round (a paired comparison). Each client posts "
            "the same JSON to its own conversation and reads the created message back. `raw` is a bare "
            "keep-alive `requests.Session` (`session.post(url, json=...)` then `.json()`), the practical limit "
            "for a requests-based hook; `HttpHook` is `HttpHook(method='POST').run(endpoint, json=..., "
            "headers=...)` on an `http` connection to the same emulator; `urllib3` is a bare keep-alive "
            "`urllib3.PoolManager`, and `raw_noenv` the raw session with `trust_env = False` (requests then "
            "skips its per-request look-ups of proxy, CA-bundle and netrc settings in the environment), both for "
            "reference. The Doto hook reads those settings once per hook and sets `trust_env = False`. Quartiles of msgs/s over blocks: "
            + ", ".join(f"{c} {s[c]['msgs_per_s_quartiles']}" for c in SEND_CLIENTS)
            + ". Client CPU per message: "
            + ", ".join(f"{c} {s[c]['client_cpu_ms_per_msg']:.2f} ms" for c in SEND_CLIENTS)
            + "; wall time per message: "
            + ", ".join(f"{c} {s[c]['wall_ms_per_msg']:.2f} ms" for c in SEND_CLIENTS)
            + f". Every message landed exactly once: {all(s[c]['stored_ok'] for c in SEND_CLIENTS)}.\n"
        )
    if "history" in r:
        h = r["history"]
        poll = h["poll"]
        flavors = h.get("flavors", {})
        sizes = sorted({int(k.split(":")[1]) for k in poll})
        out.append(
            "**3. Idle poll cost, per server flavor.** `NewMessageSensor.poke()` on conversations of "
            + ", ".join(f"{n:,}" for n in sizes)
            + " messages (the newest an hour old) with nothing new, vs `HttpSensor` on the list endpoint with "
            "a `response_check` that looks for new incoming messages. Bytes are counted by a TCP proxy between "
            "client and emulator (request + response, headers and bodies, both directions), requests by the "
            "emulator's request log; idle figures are medians over several pokes after a first poke. Each "
            "server flavor has an emulator process of its own, seeded alike: `doto` answers like Doto's "
            'reference (`before`/`after` are Unix timestamps, "returns all messages", no page cap), `chatwoot` '
            "like Chatwoot's `MessageFinder` (`before`/`after` are message ids, pages capped at 100 after an id "
            "and 20 otherwise)"
            + (
                ", and it runs a second time with message ids starting at 2,000,000,000, above every Unix "
                "timestamp of this century (`DotoEmulator(first_message_id=...)`)"
                if "chatwoot_big_ids" in flavors
                else ""
            )
            + ". The provider's connection is left on `flavor: auto`, so a conversation's first poke includes "
            "auto's detection; every size gets a proxy (so a server address) of its own, so detection, which "
            "runs once per server and process, is measured at each size. The first poke is set beside the "
            "same poke on a connection that names the flavor (no probe). The sensor asks only for the overlap "
            "window behind its cursor (`after`, a timestamp or an id), so its idle cost does not grow with "
            "history; HttpSensor (run on the doto emulator only: on Chatwoot's finder a bare list is just "
            "the 20 newest messages) downloads the whole conversation on every poke.\n"
        )
        out.append(
            "| messages | doto: request + response, B | HttpSensor, B | HttpSensor with a hand-written "
            "`after` param, B | emulator CPU per poke, ms: doto / HttpSensor |"
        )
        out.append("|---|---|---|---|---|")
        for n in sizes:
            d, hs, ha = poll[f"doto:{n}"], poll[f"http:{n}"], poll[f"http_after:{n}"]
            out.append(
                f"| {n:,} | {d['request_bytes']:,.0f} + {d['response_bytes']:,.0f} | {hs['bytes']:,.0f} | "
                f"{ha['bytes']:,.0f} | {_ticks_ms(d['emulator_cpu_ms'])} / {_ticks_ms(hs['emulator_cpu_ms'])} |"
            )
        out.append(
            "\nAn HttpSensor whose author adds a fixed `after` by hand is as light per poke, but it is then "
            "re-implementing the API: it has no cursor, no overlap for late commits, no de-duplication, no "
            "paging when a page comes back full, and no filtering of deleted messages.\n"
        )
        if flavors:
            names = {
                "doto": "doto",
                "chatwoot": "chatwoot",
                "chatwoot_big_ids": "chatwoot, ids from 2,000,000,000",
            }
            out.append(
                "The sensor per server flavor (connection on `auto`). Idle: request + response bytes (requests) "
                "of a poke that finds nothing, median; first poke: detection plus the cursor's first lookup, "
                "once per conversation and process.\n"
            )
            out.append(
                "| messages | server | idle poke, B (requests) | first poke on auto, B (requests) | "
                "first poke with the flavor set, B (requests) | emulator CPU per idle poke, ms |"
            )
            out.append("|---|---|---|---|---|---|")
            for n in sizes:
                for key, label in names.items():
                    if key not in flavors:
                        continue
                    f = flavors[key]
                    i, a, p = f["poll"][f"doto:{n}"], f["warmup"][f"auto:{n}"], f["warmup"][f"pinned:{n}"]
                    out.append(
                        f"| {n:,} | {label} | {i['request_bytes']:,.0f} + {i['response_bytes']:,.0f} "
                        f"({i['requests']:.0f}) | {a['bytes']:,.0f} ({a['requests']}) | "
                        f"{p['bytes']:,.0f} ({p['requests']}) | {_ticks_ms(i['emulator_cpu_ms'])} |"
                    )
            out.append(
                "\nWhat the first poke does. On auto the provider first asks for the newest messages "
                "(no parameters), then probes `after=i&before=i+1` for the newest id `i`. Doto's reference "
                "answers the first of these with the whole history (it has no page cap), so on the doto "
                "emulator the first poke on auto grows with the conversation (3 requests: the history, "
                "the probe, the cursor's first `after`); with `flavor: doto` set it is one idle-sized "
                "request. Chatwoot caps the bare list at the 20 newest, so there the first poke is constant: "
                "the two detection requests, one `before_timestamp` request for the first id of the "
                "sensor's window, and the first `after=<id>` poll (2 requests with `flavor: chatwoot` set). "
                "After that every idle poke is one request under both flavors.\n"
            )
    if "triggers_doto" in r:
        d, hh = r["triggers_doto"], r.get("triggers_http", {})
        out.append(
            f"**4. Deferred waiting at scale.** {d['triggers']:,} `NewMessageTrigger`s (one conversation each, "
            f"{d['interval_s']:g} s poll interval) run in one event loop the way the triggerer runs them "
            "(`async for event in trigger.run()`, then `cleanup()`), in a process of their own, against the "
            "emulator in another process. The trigger does not use `shared_stream_key` (each conversation is "
            "its own stream), so that path does not apply. "
            f"{d['sampled']} conversations get one incoming message each at a random moment after a "
            f"{d['warmup_s']:g} s warm-up; latency runs from the emulator storing the message to the trigger's event leaving "
            f"`run()`. CPU and polls are counted over a {d['window_s']:.0f} s window after the warm-up; RSS is "
            "`VmRSS`/`VmHWM` from `/proc/self/status` at the end "
            f"(the same process held {d['rss_before_triggers_mb']:.0f} MB with Airflow, aiohttp and the "
            f"provider imported, before any trigger ran; VmRSS at the end {d['rss_mb']:.0f} MB). "
            f"Fired: {d['fired']} of {d['sampled']}; p95 latency {_fmt(d['latency_p95_s'], 2)} s; errors {d['errors']}. "
            "The baseline is the http provider's `HttpEventTrigger` polling the same list endpoint with an async "
            "`response_check` (the module `bench/_http_check.py`), the http provider's way to wait on an API "
            + (
                f"(fired {hh['fired']} of {hh['sampled']}, p95 {_fmt(hh['latency_p95_s'], 2)} s, "
                f"{hh['polls_per_s']:.0f} polls/s where {hh['triggers'] / hh['interval_s']:.0f} were due: it opens "
                "a new session and connection per poll and reloads its check module in a thread each time)."
                if hh
                else "."
            )
            + "\n"
        )
        out.append(
            "**4a. Transport.** The async hook's transport was picked by this measurement: "
            "1,000 pollers in one loop, one shared client (connection pool) each, GET an empty list every "
            "5 s; the figure is client CPU per poll. aiohttp became the transport of `DotoAsyncHook`: "
            "one shared `ClientSession` per event loop (closed when the loop shuts down), `trust_env` off "
            "(with it aiohttp looks up proxies and `~/.netrc` in a thread on every request; the hook reads "
            "the proxy variables once instead), and no tenacity on the single-attempt polls of triggers. "
            "Triggers also spread their polls: the pause after a trigger's first poll is random within the "
            "interval, so 1,000 triggers started together (a triggerer restart) do not poll in one burst "
            "forever after (in trial runs without it the worst latency was 5.4-5.6 s at a 5 s interval).\n"
        )
    if "history" in r:
        p = r["history"]["paging"]
        out.append(
            f"**5. Paging.** `DotoHook.list_messages()` of the whole {p['size']:,}-message conversation, with "
            "the doto emulator capping pages at 100 (Chatwoot caps lists) vs answering everything at once. Time is "
            f"a median of runs ({p['cap100']['seconds_all']} vs {p['nocap']['seconds_all']} s); peak is the "
            "client's Python allocations (tracemalloc) in a separate run. The connection is on `auto`, its "
            "detection done before, on another conversation. Paged listing holds one page of raw "
            "JSON at a time instead of the whole body, at the price of one round trip per page (the uncapped "
            "list makes a second request because a full first page may have been cut). Most of either peak is "
            f"the answer itself: the returned list of {p['size']:,} `Message`s holds {p['cap100']['result_mb']:.0f} MB "
            "(each keeps its raw payload too)."
        )
        cw = r["history"].get("flavors", {}).get("chatwoot", {}).get("listing")
        if cw:
            out[-1] += (
                f" On the chatwoot emulator (its own process, the same {cw['size']:,} messages) the provider "
                "knows `before`/`after` as ids and pages forwards by id, 100 a page (`after=0`, then from an id "
                "just behind each page's end, re-reading a little and de-duplicating, until a short page): "
                f"{cw['requests']:,} requests, "
                f"{_fmt(cw['seconds'], 2)} s (runs {cw['seconds_all']}), peak {_fmt(cw['peak_mb'])} MB, "
                f"the returned list {cw['result_mb']:.0f} MB. The chatwoot emulator filters the whole "
                "conversation on every request (see its CPU per idle poke in 3; a real Chatwoot answers from "
                f"an index), so much of that time is the emulator's (its CPU share {cw['emulator_cpu_share']:.2f})."
            )
        out[-1] += "\n"
    out += [module.describe(r[key]) for key, module in _NEWER.items() if key in r]
    if missed:
        out.append("## Targets missed: profiles\n")
        for name, text in extra_profiles.items():
            out.append(f"### {name}\n")
            out.append(text)
            out.append("")
    out.append("## Reproduce\n")
    out.append(
        "```\nbash bench/run.sh            # installs the bench extra, runs everything, writes BENCHMARKS.md\n"
        "bash bench/run.sh --quick    # a smaller, faster run (does not meet the scale of the targets)\n"
        ".venv/bin/python -m bench --only send,history --no-write\n"
        "bash bench/run.sh --only history --merge    # re-run some, keep the other figures in BENCHMARKS.md\n"
        "bash bench/run.sh --only followups,tls,export --merge    # benchmarks 6-8 (about 25 minutes)\n"
        "bash bench/run.sh --only discovery --merge    # benchmark 6a (under a minute)\n"
        "bash bench/run.sh --only pacing --merge    # benchmark 9 (about a minute)\n"
        "bash bench/run.sh --only account --merge    # benchmark 10, the account watch (about 10 minutes)\n"
        "bash bench/run.sh --only upload,attachments,delivery --merge    # benchmarks 11-13 (about 3 minutes)\n```\n"
    )
    out.append(
        f"Per-benchmark wall time: {', '.join(f'{k} {v:.0f} s' for k, v in meta['seconds'].items())}. "
        "Raw figures and each benchmark's log go to a temporary folder the command prints.\n"
    )
    return "\n".join(out)


def _row_key(line: str) -> str:
    """A results-table row's benchmark number, e.g. ``3`` or ``4a``."""
    return line[2:].split(" ", 1)[0]


_BLOCK = re.compile(r"^\*\*(\d+[a-z]?)\. ")


def _blocks(lines: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """A section's lines before its first ``**N.`` paragraph, then each paragraph up to the next one."""
    head: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    for line in lines:
        m = _BLOCK.match(line)
        if m:
            blocks.append((m.group(1), [line]))
        elif blocks:
            blocks[-1][1].append(line)
        else:
            head.append(line)
    return head, blocks


def _sections(text: str) -> list[list[str]]:
    """The file cut at its ``## `` headings (the first part is the title and the run's bullets)."""
    parts: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith("## "):
            parts.append([])
        parts[-1].append(line)
    return parts


def merge_markdown(old: str, new: str, missed: list[str], meta: dict[str, Any], ran: list[str]) -> str:
    """``old`` with what a partial run (``new``, rendered from it alone) measured put in its place.

    Results rows and "What each benchmark does" paragraphs are matched by benchmark number
    (``3``, ``4a``...): those the partial run has replace the old ones, the rest stay. The missed
    targets are recounted, the wall times of the benchmarks run updated, and a bullet says what was
    re-run when.
    """
    new_parts = {p[0]: p for p in _sections(new) if p and p[0].startswith("## ")}
    new_rows = [
        line
        for line in new_parts["## Results"]
        if line.startswith("| ") and not line.startswith("| benchmark")
    ]
    new_keys = {_row_key(line) for line in new_rows}
    _, new_blocks = _blocks(new_parts.get("## What each benchmark does", []))
    new_block = dict(new_blocks)
    out: list[str] = []
    for part in _sections(old):
        title = part[0] if part and part[0].startswith("## ") else ""
        if not title:
            note = (
                f"- **Merged:** benchmark {', '.join(sorted(new_keys))} ({', '.join(ran)}) re-run on {meta['date']} "
                f"with `{meta['command']}` (total {meta['total_s']:.0f} s; load average before "
                f"{meta['load_before']}, after {meta['load_after']}); every other figure is from the run above."
            )
            part = [
                line
                for line in part
                if not line.startswith(f"- **Merged:** benchmark {', '.join(sorted(new_keys))} (")
            ]
            last_bullet = max(i for i, line in enumerate(part) if line.startswith("- **"))
            part = [*part[: last_bullet + 1], note, *part[last_bullet + 1 :]]
        elif title == "## Results":
            kept: list[str] = []
            done: set[str] = set()
            for line in part:
                is_row = line.startswith("| ") and not line.startswith("| benchmark")
                key = _row_key(line) if is_row else ""
                if key in new_keys:
                    if key not in done:  # the new rows of this benchmark where its old ones began
                        kept += [row for row in new_rows if _row_key(row) == key]
                        done.add(key)
                    continue
                if line.startswith("**Targets missed in this run:**") or line.startswith("**Every target"):
                    before = (
                        line.split(":** ", 1)[1].split(". Why", 1)[0].split(", ") if "missed" in line else []
                    )
                    now = [m for m in before if m.split(" ", 1)[0] not in new_keys] + missed
                    line = (
                        f"**Targets missed in this run:** {', '.join(now)}. Why, and what was tried, is below."
                        if now
                        else "**Every target was met in this run.**"
                    )
                kept.append(line)
            if new_keys - done:  # benchmarks not in the file before: at the table's end
                last = max(i for i, line in enumerate(kept) if line.startswith("| "))
                kept[last + 1 : last + 1] = [row for row in new_rows if _row_key(row) not in done]
            part = kept
        elif title == "## What each benchmark does":
            head, blocks = _blocks(part)
            part = head + [line for key, body in blocks for line in new_block.pop(key, body)]
            part += [line for body in new_block.values() for line in body]
        elif title == "## Reproduce":  # the new commands, the old wall times with the new ones in
            walls = [line for line in part if line.startswith("Per-benchmark wall time")]
            part = [
                out_line
                for line in new_parts.get(title, part)
                for out_line in (walls if line.startswith("Per-benchmark wall time") else [line])
            ]
            for label, seconds in meta["seconds"].items():
                part = [
                    re.sub(rf"\b{re.escape(label)} \d+ s\b", f"{label} {seconds:.0f} s", line)
                    if re.search(rf"\b{re.escape(label)} \d+ s\b", line)
                    else line.replace(". Raw figures", f", {label} {seconds:.0f} s. Raw figures", 1)
                    if line.startswith("Per-benchmark wall time")
                    else line
                    for line in part
                ]
        out += part
    return "\n".join(out) + "\n"


def profiles_for_missed(
    r: dict[str, Any], missed: list[str], runner: Runner, interval: float
) -> dict[str, str]:
    """For each missed target, the profile that says why."""
    text: dict[str, str] = {}
    if any(m.startswith("2") for m in missed) and "send" in r:
        s = r["send"]
        parts = [
            "A sequential send costs one round trip plus the client's own work; the round trip is the same "
            "for every client, so the gap between clients can only come from their own work. HttpHook's own "
            "work is a connection lookup and its request preparation per call; one reused HttpHook keeps its "
            "connection alive (bench 7 counts 1 connection in 1,000 calls), so only a new hook per call, as "
            "each `HttpOperator` task makes, pays a new connection. The "
            "Doto hook's is the retry wrapper (tenacity, about 30 us), the flow and the parsing into a typed "
            "`Message` (about 20 us) on top of requests. Client CPU per message: "
            + ", ".join(f"{c} {s[c]['client_cpu_ms_per_msg']:.2f} ms" for c in SEND_CLIENTS)
            + "; wall time per message: "
            + ", ".join(f"{c} {s[c]['wall_ms_per_msg']:.2f} ms" for c in SEND_CLIENTS)
            + ". What was tried: the profiles below show requests itself as the largest cost a hook "
            "controls, above all its look-up of proxy settings in the environment on every call "
            "(`getproxies_environment`, `os.environ`). The Doto hook now reads those settings once per hook "
            "(`trust_env = False`), which is why it is above the raw session (a session with only that "
            f"change, `raw_noenv`, is {s['ratio_noenv_raw']:.2f}x raw). That still leaves it at "
            f"{s['ratio_doto_http']:.2f}x HttpHook: 2x is out of reach for any client built on requests here "
            f"(raw is {s['ratio_raw_http']:.2f}x HttpHook). A bare urllib3 pool does the same exchange at "
            f"{s['ratio_urllib3_http']:.2f}x HttpHook, so moving the sync hook's transport from requests to "
            "urllib3 (a change of transport only, as the async hook's was) is the way to 2x; not done here. "
            "cProfile of 100 sends each, top entries by own time:\n"
        ]
        for name in SEND_CLIENTS:
            parts.append(f"{name}:\n```\n" + "\n".join(s[name]["profile"]) + "\n```")
        text["2. Send throughput"] = "\n".join(parts)
    if any(m.startswith("4") for m in missed):
        prof = runner.logdir / "triggers.prof"
        runner(
            "triggers", "doto", "--interval", str(interval), "--profile", str(prof), label="triggers_profile"
        )
        import io
        import pstats

        out = io.StringIO()
        pstats.Stats(str(prof), stream=out).sort_stats("tottime").print_stats(15)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
        body = "\n".join(line.replace(sys.prefix, "<venv>") for line in lines[start : start + 16])
        text["4. Deferred waiting"] = (
            f"cProfile of the trigger process, top entries by own time:\n```\n{body}\n```"
        )
    if any(m.startswith("1") for m in missed):
        out_ = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "import airflow.sdk; import airflow_provider_doto.operators.doto, airflow_provider_doto.sensors.doto",
            ],
            capture_output=True,
            text=True,
            env=runner.env,
            cwd=ROOT,
        ).stderr.splitlines()
        marker = max(i for i, line in enumerate(out_) if line.rstrip().endswith("| airflow.sdk"))
        text["1. Import cost"] = (
            "`-X importtime` after `airflow.sdk`:\n```\n" + "\n".join(out_[marker + 1 :]) + "\n```"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (a smoke run)")
    parser.add_argument(
        "--only",
        default=(
            "imports,send,history,transports,triggers,followups,discovery,tls,export,pacing,account,"
            "upload,attachments,delivery"
        ),
        help="comma-separated benchmarks to run",
    )
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="put only what this run measured into the existing output file, keeping the other figures",
    )
    parser.add_argument(
        "--from-json", help="re-render from a results.json of an earlier run, running nothing"
    )
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    q = args.quick
    interval = 5.0

    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        rows, missed = build_rows(saved["results"], interval)
        logdir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
        extra = profiles_for_missed(saved["results"], missed, Runner(logdir), interval) if missed else {}
        print(text_table(rows))
        text = render(saved["results"], rows, missed, saved["meta"], extra)
        if args.merge:
            ran = sorted({k.split("_")[0] for k in saved["results"]})
            text = merge_markdown(Path(args.output).read_text(), text, missed, saved["meta"], ran)
        Path(args.output).write_text(text)
        print(f"{'merged into' if args.merge else 'wrote'} {args.output} from {args.from_json}")
        return 0

    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": os.environ.get("BENCH_COMMAND") or "python -m bench " + shlex.join(argv or sys.argv[1:]),
        "machine": machine_info(),
        "load_before": _load(),
    }
    print("Doto provider benchmarks" + (" (quick)" if q else ""), flush=True)
    t0 = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    run = Runner(logdir)
    r: dict[str, Any] = {}
    if "imports" in only:
        r["imports"] = run("imports", "4" if q else "12")
    if "send" in only:
        r["send"] = run("send", *(["25", "4"] if q else ["50", "30"]))
    if "history" in only:
        r["history"] = run("history", "100,2000" if q else "100,10000,100000")
    if "transports" in only:
        r["transports"] = run(
            "transports", *(["--n", "200", "--duration", "8"] if q else ["--duration", "15"])
        )
    if "triggers" in only:
        scale = ["--n", "200", "--duration", "20", "--warmup", "5", "--sample", "20"] if q else []
        r["triggers_doto"] = run(
            "triggers", "doto", "--interval", str(interval), *scale, label="triggers_doto"
        )
        r["triggers_http"] = run(
            "triggers", "http", "--interval", str(interval), *scale, label="triggers_http"
        )
    if "followups" in only:
        r["followups"] = run("followups", "--n", "50" if q else "1000", timeout=3600)
    if "discovery" in only:
        scale = ["--conversations", "1000", "--open", "200", "--reps", "1"] if q else []
        r["discovery"] = run("discovery", *scale)
    if "tls" in only:
        r["tls"] = run("tls_link", *(["--n", "100", "--rounds", "2"] if q else ["--n", "1000"]), label="tls")
    if "export" in only:
        r["export"] = run("export", *(["--sizes", "2000,10000", "--reps", "1"] if q else []))
    if "pacing" in only:
        r["pacing"] = run("pacing", *(["--n", "200", "--limit", "120"] if q else []))
    if "account" in only:
        small = ["--conversations", "2000", "--n", "200", "--idle", "20", "--burst", "200"]
        r["account"] = run("account_watch", *(small if q else []), label="account", timeout=3600)
    if "upload" in only:
        r["upload"] = run("upload", *(["--size-mb", "10", "--reps", "2"] if q else []))
    if "attachments" in only:
        scale = ["--sizes", "20,200", "--reps", "1"] if q else []
        r["attachments"] = run("export_attachments", *scale, label="attachments")
    if "delivery" in only:
        scale = ["--n", "10", "--n-slow", "2", "--block", "2"] if q else []
        r["delivery"] = run("wait_delivery", *scale, label="delivery")
    rows, missed = build_rows(r, interval)
    extra = profiles_for_missed(r, missed, run, interval) if missed and not args.no_write else {}
    meta["load_after"] = _load()
    meta["total_s"] = time.monotonic() - t0
    meta["seconds"] = run.seconds
    print()
    print(text_table(rows))
    print()
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    (logdir / "results.json").write_text(json.dumps({"meta": meta, "results": r}, indent=1))
    if not args.no_write:
        text = render(r, rows, missed, meta, extra)
        if args.merge:
            text = merge_markdown(Path(args.output).read_text(), text, missed, meta, sorted(only))
        Path(args.output).write_text(text)
        print(f"{'merged into' if args.merge else 'wrote'} {args.output} (logs in {logdir})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
