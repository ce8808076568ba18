"""Follow-ups in real Airflow (benchmark 6): one ``BatchSendMessagesOperator`` task vs a mapped
``SendMessageOperator`` (one task instance per conversation), each sending one message to N
conversations.

Both run on one local stack (``AirflowStack``: api-server, scheduler with the LocalExecutor,
dag-processor, triggerer as separate processes; SQLite metadata DB), one DAG each, triggered through
the REST API. Every side gets fresh conversations. Measured per run: wall time (the trigger POST to
the run seen finished, polled every 0.2 s; and the run's own ``queued_at`` to ``end_date``), CPU of
every stack process (see ``stack_cpu``), net rows added to every table of the SQLite metadata DB,
and whether each conversation holds exactly one message afterwards.

``python -m bench.followups --n 1000 [--parallelism 4] [--only batch,mapped]``; the last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import proc_cpu_seconds

CONTENT = "Just checking in: is there anything else we can help you with?"
_TICKS = os.sysconf("SC_CLK_TCK")

BATCH_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_provider_doto.operators.batch import BatchSendMessagesOperator

for dag_id, ids in {ids!r}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        BatchSendMessagesOperator(task_id="nudge", conversation_ids=ids, content={content!r}, max_in_flight=10)
"""

MAPPED_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow_provider_doto.operators.doto import SendMessageOperator

for dag_id, ids in {ids!r}.items():
    with DAG(dag_id=dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        SendMessageOperator.partial(task_id="nudge", content={content!r}).expand(conversation_id=ids)
"""


def _group_cpu(pgid: int) -> tuple[float, int]:
    """CPU seconds of a process group: for each live member utime + stime + cutime + cstime (the last two
    are its children that exited and were reaped: task processes, executor workers), and the count."""
    from airflow_provider_doto.testing.stack.processes import group_members

    ticks = 0
    members = group_members(pgid)
    for pid in members:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / _TICKS, len(members)


def stack_cpu(stack: Any) -> dict[str, float]:
    """CPU seconds so far of each component's process group (the scheduler's holds the LocalExecutor's
    workers and every task's supervisor and task process), keyed by component."""
    return {
        name: _group_cpu(c.process.pid)[0] for name, c in stack.components.items() if c.process is not None
    }


def table_counts(db: Path) -> dict[str, int]:
    """Rows in every table of the SQLite metadata DB (read-only connection)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()


def _write_dags(folder: Path, batch: dict[str, list[int]], mapped: dict[str, list[int]]) -> list[Path]:
    files = []
    for name, template, ids in (
        ("bench_batch.py", BATCH_DAG, batch),
        ("bench_mapped.py", MAPPED_DAG, mapped),
    ):
        if ids:
            path = folder / name
            path.write_text(template.format(ids=ids, content=CONTENT))
            files.append(path)
    return files


def _iso(value: str | None) -> float | None:
    import datetime as dt

    return dt.datetime.fromisoformat(value).timestamp() if value else None


def run_side(stack: Any, emu: Any, dag_id: str, cids: list[int], db: Path, timeout: float) -> dict[str, Any]:
    """Trigger ``dag_id``, wait for it, and measure (see the module docstring)."""
    rows0 = table_counts(db)
    cpu0, me0 = stack_cpu(stack), proc_cpu_seconds()
    t0 = time.perf_counter()
    run_id = stack.trigger_dag(dag_id)
    deadline = t0 + timeout
    while True:
        stack.check_alive()
        run = stack.dag_run(dag_id, run_id)
        if run["state"] in ("success", "failed"):
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{dag_id} did not finish in {timeout:.0f} s")
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    cpu1, me1 = stack_cpu(stack), proc_cpu_seconds()
    rows1 = table_counts(db)
    counts = [len(emu.messages(cid)) for cid in cids]
    added = {t: rows1.get(t, 0) - rows0.get(t, 0) for t in sorted(set(rows0) | set(rows1))}
    queued, ended = _iso(run.get("queued_at")), _iso(run.get("end_date"))
    cpu = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
    return {
        "dag_id": dag_id,
        "state": run["state"],
        "conversations": len(cids),
        "wall_s": wall,
        "server_wall_s": (ended - queued) if queued and ended else None,
        "cpu_s": cpu,
        "cpu_total_s": sum(cpu.values()),
        "driver_and_emulator_cpu_s": me1 - me0,
        "db_rows_added": {t: n for t, n in added.items() if n},
        "db_rows_total": sum(n for n in added.values() if n > 0),
        "exactly_once": all(c == 1 for c in counts),
        "message_counts": {str(k): v for k, v in sorted({c: counts.count(c) for c in counts}.items())},
    }


def measure(n: int, parallelism: int, sides: list[str], timeout: float) -> dict[str, Any]:
    from airflow_provider_doto.testing.emulator import DotoEmulator
    from airflow_provider_doto.testing.stack import AirflowStack

    emu = DotoEmulator(token=secrets.token_urlsafe(16), max_recorded_requests=1000).start()
    plan = [s for s in ("batch_a", "mapped", "batch_b") if s.split("_")[0] in sides]
    cids = {side: [emu.add_conversation() for _ in range(n)] for side in plan}
    warm = [emu.add_conversation() for _ in range(2)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-followups-"))
    batch_ids = {f"bench_{s}": cids[s] for s in plan if s.startswith("batch")}
    mapped_ids = {f"bench_{s}": cids[s] for s in plan if s == "mapped"}
    if batch_ids:
        batch_ids["bench_warm_batch"] = warm[:1]
    if mapped_ids:
        mapped_ids["bench_warm_mapped"] = warm[1:]
    dags = _write_dags(workdir, batch_ids, mapped_ids)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "n": n,
        "parallelism": parallelism,
        "executor": "LocalExecutor",
        "database": "sqlite",
    }
    with AirflowStack(emulator=emu, dags=dags, parallelism=parallelism, seed=0, echo=say) as stack:
        assert stack.home is not None
        db = stack.home / "airflow.db"
        result["startup_s"] = time.perf_counter() - t_start
        for dag_id in [*batch_ids, *mapped_ids]:
            stack.wait_for_dag(dag_id, timeout=300)
        # One warm-up run of each kind (cold imports in the executor's workers, the first parse), off the clock.
        for dag_id in ("bench_warm_batch", "bench_warm_mapped"):
            if dag_id in batch_ids or dag_id in mapped_ids:
                run = stack.wait_for_run(dag_id, stack.trigger_dag(dag_id), timeout=300)
                say(f"warm-up {dag_id}: {run['state']}")
        # The idle stack's own CPU (heartbeats, scheduler loop, re-parsing), as a reference rate.
        cpu0 = stack_cpu(stack)
        time.sleep(10)
        cpu1 = stack_cpu(stack)
        result["idle_cpu_per_s"] = {k: (cpu1[k] - cpu0[k]) / 10 for k in cpu1}
        result["runs"] = {}
        for side in plan:
            say(f"running {side} ({n} conversations) ...")
            r = run_side(stack, emu, f"bench_{side}", cids[side], db, timeout)
            say(
                f"  {side}: {r['state']} in {r['wall_s']:.1f} s, CPU {r['cpu_total_s']:.1f} s, rows {r['db_rows_total']}"
            )
            result["runs"][side] = r
    emu.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.followups")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument("--only", default="batch,mapped")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.parallelism, args.only.split(","), args.timeout)))


if __name__ == "__main__":
    main()


# ---- rows and notes for BENCHMARKS.md ------------------------------------------------------------


def _batch_mean(runs: dict[str, Any], key: str) -> float:
    """The batch side's figure: the mean of its runs (one before the mapped run, one after)."""
    values = [runs[s][key] for s in runs if s.startswith("batch")]
    return sum(values) / len(values)


def table_rows(f: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """Results rows (benchmark 6) and the targets missed."""
    from bench._fmt import num, ok, ratio

    runs = f["runs"]
    mapped = runs["mapped"]
    n = f["n"]
    what = f"6 {n:,} follow-ups in real Airflow (LocalExecutor, parallelism {f['parallelism']}, SQLite): batch task vs {n:,} mapped"
    wall_b, wall_m = _batch_mean(runs, "wall_s"), mapped["wall_s"]
    cpu_b, cpu_m = _batch_mean(runs, "cpu_total_s"), mapped["cpu_total_s"]
    rows_b, rows_m = _batch_mean(runs, "db_rows_total"), mapped["db_rows_total"]
    once = all(r["exactly_once"] and r["state"] == "success" for r in runs.values())
    fast = wall_m / wall_b >= 50
    missed = [] if fast and once else ["6"]

    def held(r: dict[str, Any]) -> str:
        return f"{r['message_counts'].get('1', 0):,} of {r['conversations']:,}"

    once_b = " / ".join(held(r) for s, r in runs.items() if s.startswith("batch"))
    return [
        [
            f"{what} `SendMessageOperator`: wall time, trigger -> run success, s",
            num(wall_b, 1),
            f"{num(wall_m, 1)} (mapped)",
            f"{ratio(wall_b, wall_m)} ({wall_m / wall_b:,.0f}x faster)",
            ">= 50x faster (<= 0.02x)",
            ok(fast and once),
            "-",
        ],
        [
            f"{what}: CPU s, every Airflow process (tasks and executor workers included)",
            num(cpu_b, 1),
            num(cpu_m, 1),
            ratio(cpu_b, cpu_m),
            "-",
            "-",
            "-",
        ],
        [
            f"{what}: metadata-DB rows added (every table)",
            num(rows_b, 0),
            num(rows_m, 0),
            ratio(rows_b, rows_m),
            "-",
            "-",
            "-",
        ],
        [
            f"{what}: conversations holding exactly one message",
            once_b,
            held(mapped),
            "-",
            "all, both sides",
            ok(once),
            "-",
        ],
    ], missed


def describe(f: dict[str, Any]) -> str:
    """The "What each benchmark does" paragraph (benchmark 6)."""
    runs = f["runs"]
    n = f["n"]
    parts = []
    for side, r in runs.items():
        cpu = ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_s"].items())
        rows = ", ".join(f"{t} {c:+,}" for t, c in r["db_rows_added"].items())
        server = (
            f", {r['server_wall_s']:.1f} s from the run's queued_at to its end_date"
            if r["server_wall_s"]
            else ""
        )
        parts.append(
            f"`{side}`: {r['state']} in {r['wall_s']:.1f} s{server}; CPU s {cpu}; rows {rows}; messages per "
            f"conversation {r['message_counts']}"
        )
    idle = sum(f["idle_cpu_per_s"].values())
    return (
        f"**6. Follow-ups in real Airflow.** A local Airflow (`AirflowStack`: api-server, scheduler, "
        "dag-processor and triggerer as separate processes; LocalExecutor, "
        f"`[core] parallelism` {f['parallelism']} for both sides, every other setting Airflow's default; SQLite "
        f"metadata DB) against the Doto emulator, with fresh conversations for each run ({n:,} each). "
        f"DAG `bench_batch_*`: one `BatchSendMessagesOperator` task over the {n:,} conversation ids (one text, "
        f"`max_in_flight=10`); DAG `bench_mapped`: `SendMessageOperator.partial(...).expand(conversation_id=[...{n:,} "
        "ids])`. Each run is triggered through the REST API (`POST /api/v2/dags/{id}/dagRuns`) and polled "
        "every 0.2 s until it is finished; wall time runs from the POST to the finished run seen. The batch DAG "
        "runs once before and once after the mapped one (its figure is the mean of the two), after one "
        "off-the-clock warm-up run of each kind. CPU: the user + system time of every process in each "
        "component's process group (the scheduler's holds the LocalExecutor's workers and each task's "
        "supervisor and task process) plus their reaped children (`cutime` + `cstime` in `/proc/<pid>/stat`), "
        f"after minus before; idle, the stack itself used {idle:.2f} CPU s per s. The emulator and the "
        "driver share the benchmark's own process, which is not counted. Rows: the row count of every table "
        "of the SQLite metadata DB after minus before the run (net rows added; rows updated in place are "
        "not counted). Afterwards every conversation's messages are counted in the emulator. Runs: "
        + "; ".join(parts)
        + ".\n"
    )
