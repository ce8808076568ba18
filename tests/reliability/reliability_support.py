"""Helpers shared by the reliability suite: the secret token, hang guards, figures, tiny servers."""

from __future__ import annotations

import http.server
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dagrun import load_module

from airflow_provider_doto import api

# Every reliability test talks to an emulator that accepts only this token, so any leak is greppable.
TOKEN = "SECRET-TOKEN-d0t0-XYZ"
REPO = Path(__file__).resolve().parents[2]
RELIABILITY_MD = REPO / "RELIABILITY.md"
# Every figure is also kept per server flavor of the emulator (the suite runs against both).
SERVER_FLAVORS = ("doto", "chatwoot")
FIGURES_BEGIN = "<!-- soak-figures:begin -->"
FIGURES_END = "<!-- soak-figures:end -->"

# Small, fast retries: 3 attempts, 10 ms first backoff, Retry-After honoured up to 5 s.
POLICY = api.RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0, total=20.0)
# Request timeout of the fault matrix (seconds): generous, so a retry that must succeed does so on a
# busy machine; the rows that must time out meet a server that answers far later (DELAY there).
TIMEOUT = 2.0
HANG_SLACK = 5.0  # a call may take its timeouts and waits plus this much before we call it hung

T = TypeVar("T")


class Hung(AssertionError):
    pass


def bounded(
    fn: Callable[[], T], limit: float, what: str = "call"
) -> tuple[T | None, BaseException | None, float]:
    """Run ``fn`` in a thread; fail if it is still running after ``limit`` s (a hang check, not a speed goal).

    Returns ``(result, error, elapsed)``.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as err:
            box["error"] = err
        finally:
            box["elapsed"] = time.monotonic() - start

    start = time.monotonic()
    thread = threading.Thread(target=target, name=f"bounded:{what}", daemon=True)
    thread.start()
    thread.join(limit)
    if thread.is_alive():
        raise Hung(f"{what} still running after {limit:.1f} s: it hung past its timeout")
    return box.get("result"), box.get("error"), box["elapsed"]


def error_texts(err: BaseException) -> list[str]:
    """Every way an error can end up in a log or a UI: str, repr, args, the formatted traceback,
    and the same for every exception chained to it (even suppressed contexts)."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        texts.append("".join(traceback.format_exception(current)))
        current = current.__cause__ or current.__context__
    return texts


def assert_no_token(*texts: Any, where: str = "") -> None:
    for text in texts:
        assert TOKEN not in str(text), f"the API token leaked into {where or 'output'}: {str(text)[:300]!r}"


def load_dag(folder: Path, name: str) -> Any:
    """Import ``folder/name.py`` (inside the DAGs folder) and return its ``dag``."""
    return load_module(folder / f"{name}.py", f"reliability_dag_{name}").dag


# --------------------------------------------------------------------------------------------
# Figures: collected by the tests, printed at the end, written to RELIABILITY.md after a soak
# --------------------------------------------------------------------------------------------


@dataclass
class Figures:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults_tried: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, test: str, flavor: str | None = None, **values: Any) -> None:
        """Add to the test's figures, and to its row for the server flavor (``no_loss[chatwoot]``)."""
        for name in (test, f"{test}[{flavor}]") if flavor else (test,):
            row = self.values.setdefault(name, {})
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool) and key in row:
                    row[key] += value
                else:
                    row[key] = value

    def total(self, key: str) -> int:
        return sum(int(v.get(key, 0)) for v in self.values.values())


FIGURES = Figures()


class FaultCounter:
    """Wraps ``emulator.inject`` so every applied fault is counted in ``FIGURES.faults_tried``."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.injected: list[Any] = []

    def inject(self, kind: Any, **kwargs: Any) -> Any:
        fault = self.emulator.inject(kind, **kwargs)
        self.injected.append(fault)
        return fault

    def settle(self) -> int:
        hits = sum(f.hits for f in self.injected)
        FIGURES.faults_tried += hits
        self.injected.clear()
        return hits


def summary_lines(soak: bool, duration: float) -> list[str]:
    f = FIGURES
    dup = f.values.get("no_duplicates", {})
    loss = f.values.get("no_loss", {})
    return [
        f"mode: {'soak' if soak else 'fast'}",
        f"duplicate trials: {dup.get('trials', 0)} (through Airflow's own retry in dag.test: "
        f"{dup.get('dag_runs', 0)}), duplicates: {dup.get('duplicates', 0)}, missing: {dup.get('missing', 0)}",
        f"no-loss messages: {loss.get('messages', 0)} (late commits: {loss.get('late', 0)}, polls: "
        f"{loss.get('polls', 0)}), lost: {loss.get('lost', 0)}, repeated: {loss.get('repeated', 0)}",
        f"fault-matrix cases: {f.values.get('fault_matrix', {}).get('cases', 0)}, "
        f"faults tried (applied by the emulator, all tests): {f.faults_tried}",
        *[
            f"server flavor {flavor}: duplicate trials {d.get('trials', 0)}, duplicates "
            f"{d.get('duplicates', 0)}; no-loss messages {n.get('messages', 0)}, lost {n.get('lost', 0)}, "
            f"repeated {n.get('repeated', 0)}"
            for flavor in SERVER_FLAVORS
            for d, n in [
                (f.values.get(f"no_duplicates[{flavor}]", {}), f.values.get(f"no_loss[{flavor}]", {}))
            ]
        ],
        *[
            f"account-watch soak, {flavor} server: {a.get('conversations', 0)} conversations, "
            f"{a.get('messages', 0)} messages (late {a.get('late', 0)}, updates {a.get('updates', 0)}, "
            f"deletes {a.get('deletes_before_commit', 0)} + {a.get('deletes_after_commit', 0)}), restarts "
            f"{a.get('restarts', 0)}, redelivered {a.get('redelivered', 0)}: lost {a.get('lost', 0)}, "
            f"repeated {a.get('repeated', 0)}, unexpected {a.get('unexpected', 0)}"
            for flavor in SERVER_FLAVORS
            if (a := f.values.get(f"account_soak[{flavor}]"))
        ],
        f"duration: {duration:.1f} s",
    ]


def write_reliability_md(duration: float) -> None:
    """Replace the figures block of RELIABILITY.md with this soak run's figures."""
    f = FIGURES
    dup = f.values.get("no_duplicates", {})
    loss = f.values.get("no_loss", {})
    matrix = f.values.get("fault_matrix", {})
    committed = dup.get("committed_then_dropped", 0)
    per_flavor = [
        row
        for flavor in SERVER_FLAVORS
        for d, n in [(f.values.get(f"no_duplicates[{flavor}]", {}), f.values.get(f"no_loss[{flavor}]", {}))]
        for row in (
            (
                f"{flavor} server: duplicate trials / duplicates / missing",
                f"{d.get('trials', 0):,} / {d.get('duplicates', 0)} / {d.get('missing', 0)}",
            ),
            (
                f"{flavor} server: no-loss messages / lost / repeated",
                f"{n.get('messages', 0):,} / {n.get('lost', 0)} / {n.get('repeated', 0)}",
            ),
        )
    ]
    rows = [
        ("Duplicate trials (the first try's POST fails, Airflow retries the task)", dup.get("trials", 0)),
        ("… whole DAG runs through Airflow's own task retry (`dag.test()`)", dup.get("dag_runs", 0)),
        ("… POST committed, then the connection dropped", committed),
        ("… failed before committing (drop before commit, 500, 503)", dup.get("trials", 0) - committed),
        ("Duplicates", dup.get("duplicates", 0)),
        ("Missing (a retry that should have sent and did not)", dup.get("missing", 0)),
        ("No-loss messages written (all consumer variants)", loss.get("messages", 0)),
        ("… committed late (`late=N` or hidden, then revealed)", loss.get("late", 0)),
        ("… consumer polls (sensor) and events (trigger)", loss.get("polls", 0)),
        ("Lost", loss.get("lost", 0)),
        ("Repeated", loss.get("repeated", 0)),
        ("Fault-matrix cases (method, client, fault)", matrix.get("cases", 0)),
        ("Faults tried (applied by the emulator, whole run)", f.faults_tried),
        *per_flavor,
        ("Duration of the soak run", f"{duration:.0f} s"),
    ]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = [
        FIGURES_BEGIN,
        f"Last soak run: {when} (`scripts/soak.sh`).",
        "",
        "| figure | value |",
        "|---|---:|",
        *[
            f"| {name} | {value:,} |" if isinstance(value, int) else f"| {name} | {value} |"
            for name, value in rows
        ],
        FIGURES_END,
    ]
    text = RELIABILITY_MD.read_text() if RELIABILITY_MD.exists() else f"{FIGURES_BEGIN}\n{FIGURES_END}\n"
    pattern = re.compile(re.escape(FIGURES_BEGIN) + r".*?" + re.escape(FIGURES_END), re.S)
    RELIABILITY_MD.write_text(pattern.sub(lambda _: "\n".join(block), text, count=1))


# --------------------------------------------------------------------------------------------
# Tiny plain-http servers for the redirect tests
# --------------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _received(self) -> Seen:
        """Read the request's body and say what came in."""
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        return Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})


@contextmanager
def serve(
    handler: type[http.server.BaseHTTPRequestHandler], host: str
) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def recording_server(host: str = "127.0.0.2") -> Iterator[tuple[str, list[Seen]]]:
    """A server on another loopback address that records every request it gets (and answers 200)."""
    seen: list[Seen] = []

    class Recorder(_Quiet):
        def _any(self) -> None:
            seen.append(self._received())
            body = b'{"payload": []}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _any

    with serve(Recorder, host) as server:
        yield f"http://{host}:{server.server_address[1]}", seen


@contextmanager
def redirecting_server(target: str, status: int, host: str = "127.0.0.1") -> Iterator[tuple[str, list[Seen]]]:
    """A server that answers every request with ``status`` and ``Location: target + path``."""
    seen: list[Seen] = []

    class Redirector(_Quiet):
        def _any(self) -> None:
            seen.append(self._received())
            self.send_response(status)
            self.send_header("location", target + self.path)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST = do_DELETE = _any

    with serve(Redirector, host) as server:
        yield f"http://{host}:{server.server_address[1]}", seen
