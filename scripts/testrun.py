"""The test runner behind ``scripts/test.sh``: which parts run, in which environment, side by side.

A *part* is one command (lint, building an environment, the suite in one Airflow environment, a
tier, the mutation check). Parts in one *lane* run one after another; lanes run side by side, so
the CPU-bound suites share the machine with the tiers that mostly wait on Airflow's processes. A
part starts once the parts it needs are done; it is skipped if one of them failed. Each part's
output goes to ``artifacts/test-run/<part>.log`` (shown live when only one lane runs), and one
line per part reports its duration and test counts. Exit status 1 if any part failed.

    bash scripts/test.sh                 # lint, types, the suite on the newest Airflow (no tiers)
    bash scripts/test.sh --quick         # the core and the hooks on the newest Airflow
    bash scripts/test.sh --matrix        # ... and the suite on every environment of the matrix
    bash scripts/test.sh --deployment    # ... and the deployment tier (--distributed, --mutants too)
    bash scripts/test.sh --ci            # everything CI runs (matrix, both tiers, mutation check)
    bash scripts/test.sh --soak          # the soak (long; writes RELIABILITY.md's figures)
    bash scripts/test.sh --env 3.1.8 tests/hooks -x   # one environment; other arguments go to pytest
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
LOGS = ARTIFACTS / "test-run"
MATRIX = REPO / "constraints" / "matrix.tsv"
TIERS = ("deployment", "distributed")  # markers of the tiers that start real Airflow deployments
# Where each tier's tests are. The demo's end-to-end runs (from the repository and from the
# installed wheel) start real Airflow processes too, so they carry the deployment marker and run
# in that tier, after the tier's own tests (which share one deployment per flavor, in order).
TIER_PATHS = {
    "deployment": ("tests/deployment", "tests/testing/stack/test_demo.py", "tests/test_wheel.py"),
    "distributed": ("tests/distributed",),
}
QUICK_PATHS = ("tests/api", "tests/hooks")
# Run in fewer environments, because what they test cannot differ by Airflow version:
# tests/api imports no Airflow (the pure core: the standard library and, in tests, pendulum), so
# it runs on the newest and on the floors (lowest: the oldest pendulum, tenacity, aiohttp); the wheel
# test builds the wheel and installs it with the newest Airflow in a venv of its own, whatever
# environment starts it, so once is enough.
NEWEST_AND_FLOORS_ONLY = ("tests/api",)
NEWEST_ONLY = ("tests/test_wheel.py",)


@dataclass(frozen=True)
class Environment:
    name: str
    venv: Path
    constraints: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def read_matrix() -> list[Environment]:
    rows = [line.split("\t") for line in MATRIX.read_text().splitlines() if line and not line.startswith("#")]
    return [Environment(name, REPO / venv, REPO / constraints) for name, venv, constraints, *_ in rows]


@dataclass
class Part:
    name: str
    lane: str
    run: Callable[[Runner, Part], int]  # returns an exit status; writes to part.log
    needs: tuple[str, ...] = ()
    junit: Path | None = None
    ok_statuses: tuple[int, ...] = (0,)
    # filled in while running
    status: str = "waiting"
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    detail: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name.replace(' ', '-')}.log"


class Runner:
    def __init__(self, parts: Sequence[Part], live: bool) -> None:
        self.parts = {p.name: p for p in parts}
        self.live = live  # stream each part's output to the console (one lane only)
        self.lock = threading.Lock()

    def command(self, part: Part, argv: Sequence[str | Path], env: dict[str, str] | None = None) -> int:
        """Run one command of a part, its output appended to the part's log (and shown if live)."""
        with part.log.open("a") as log:
            log.write(f"$ {' '.join(map(str, argv))}\n")
            log.flush()
            process = subprocess.Popen(
                [str(a) for a in argv],
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},  # lines as they come
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
            )
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if self.live:
                    sys.stdout.write(line)
                    sys.stdout.flush()
            # wait4: the CPU time of the command and of every process it reaped (workers, stacks).
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            part.cpu_seconds += usage.ru_utime + usage.ru_stime
            return process.returncode

    def _run_part(self, part: Part) -> None:
        for need in part.needs:
            self.parts[need].done.wait()
        blocked = [n for n in part.needs if self.parts[n].status != "ok"]
        if blocked:
            part.status, part.detail = "skipped", f"needs {', '.join(blocked)}"
        else:
            part.log.unlink(missing_ok=True)
            self.say(f"--- {part.name}: started")
            t0 = time.monotonic()
            try:
                rc = part.run(self, part)
            except Exception as exc:  # a bug of the runner itself: report it as the part's failure
                with part.log.open("a") as log:
                    log.write(f"runner error: {exc!r}\n")
                rc = -1
            part.seconds = time.monotonic() - t0
            part.status = "ok" if rc in part.ok_statuses else f"FAILED (exit {rc})"
            if part.junit is not None:
                part.detail = junit_counts(part.junit)
        self.say(
            f"--- {part.name}: {part.status} in {part.seconds:.0f} s (CPU {part.cpu_seconds:.0f} s) {part.detail}".rstrip()
        )
        if part.status.startswith("FAILED") and not self.live:
            lines = part.log.read_text(errors="replace").splitlines()[-40:]
            self.say("\n".join(f"    | {line}" for line in lines))
        part.done.set()

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def run(self) -> bool:
        LOGS.mkdir(parents=True, exist_ok=True)
        lanes: dict[str, list[Part]] = {}
        for part in self.parts.values():
            lanes.setdefault(part.lane, []).append(part)

        def lane(parts: list[Part]) -> None:
            for part in parts:
                self._run_part(part)

        threads = [threading.Thread(target=lane, args=(ps,), name=name) for name, ps in lanes.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return all(p.status == "ok" for p in self.parts.values())


def junit_counts(path: Path) -> str:
    """``N passed, N failed, N skipped`` from a JUnit report (xdist writes one for all workers)."""
    if not path.is_file():
        return "(no report)"
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    tests, failures, errors, skipped = (
        int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")
    )
    return f"({tests - failures - errors - skipped} passed, {failures + errors} failed, {skipped} skipped)"


def constraints_stamp(env: Environment) -> str:
    return hashlib.sha256(env.constraints.read_bytes() + (REPO / "pyproject.toml").read_bytes()).hexdigest()


def build(env: Environment, newest: Environment) -> Callable[[Part], int]:
    """Create or update an environment's venv unless its stamp matches (the newest is bootstrap.sh's)."""

    def run(runner: Runner, part: Part) -> int:
        stamp = env.venv / ".doto-constraints.sha256"
        if env.python.exists() and stamp.is_file() and stamp.read_text().strip() == constraints_stamp(env):
            part.detail = "(up to date)"
            return byte_compile(runner, part, env)
        uv = newest.venv / "bin" / "uv"
        if not env.python.exists():
            python = os.environ.get("PYTHON", "python3.11")
            if rc := runner.command(part, [uv, "venv", "-q", "-p", python, env.venv]):
                return rc
        argv = [uv, "pip", "install", "-q", "-p", env.python, "-c", env.constraints, "-e", ".[dev]"]
        if rc := runner.command(part, argv):
            return rc
        stamp.write_text(constraints_stamp(env))
        return byte_compile(runner, part, env)

    return run


def byte_compile(runner: Runner, part: Part, env: Environment) -> int:
    """Byte-compile an environment's packages, as scripts/bootstrap.sh does for the newest (why: there).

    compileall exits 1 when any file fails to compile (some packages ship Python 2 fixtures), so
    its status is not the part's: what did compile is what the imports use.
    """
    site_packages = next(env.venv.glob("lib/python3.*/site-packages"))
    runner.command(part, [env.python, "-m", "compileall", "-qq", "-j", "0", site_packages])
    return 0


def lint(newest: Environment) -> Callable[[Part], int]:
    def run(runner: Runner, part: Part) -> int:
        bin_ = newest.venv / "bin"
        for argv in (
            [bin_ / "ruff", "check", "."],
            [bin_ / "ruff", "format", "--check", "."],
            [bin_ / "mypy"],
        ):
            if rc := runner.command(part, argv):
                return rc
        return 0

    return run


def pytest_part(env: Environment, args: Sequence[str], workers: str | None) -> Callable[[Part], int]:
    def run(runner: Runner, part: Part) -> int:
        argv: list[str | Path] = [env.python, "-m", "pytest", *args]
        if workers and workers != "0":
            argv += ["-n", workers]
        if part.junit is not None:
            part.junit.unlink(missing_ok=True)
            argv.append(f"--junitxml={part.junit}")
        return runner.command(part, argv)

    return run


def suite_args(env: Environment, matrix: list[Environment], user_args: list[str]) -> list[str]:
    """The suite without the tiers; what runs once is left out of the environments that skip it."""
    args = ["-m", " and ".join(f"not {t}" for t in TIERS)]
    if env != matrix[0]:
        args += [f"--ignore={p}" for p in NEWEST_ONLY]
        if env != matrix[-1]:
            args += [f"--ignore={p}" for p in NEWEST_AND_FLOORS_ONLY]
    return args + user_args


def plan(options: argparse.Namespace, user_args: list[str]) -> tuple[list[Part], list[str]]:
    """The parts to run, and the hints on what else there is to run."""
    matrix = read_matrix()
    newest = matrix[0]
    by_name = {e.name: e for e in matrix}
    names = options.env or ([e.name for e in matrix] if options.matrix or options.ci else [newest.name])
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown environment {', '.join(unknown)}; {MATRIX.name} has: {' '.join(by_name)}")
    chosen = [e for e in matrix if e.name in names]
    workers = options.workers
    parts: list[Part] = []
    ARTIFACTS.joinpath("matrix").mkdir(parents=True, exist_ok=True)
    if options.soak:
        soak = pytest_part(
            newest,
            ["tests/reliability", "tests/distributed", "--soak", "-p", "no:cacheprovider", *user_args],
            None,
        )
        return [Part("soak", "suites", soak)], []
    # Alone, lint runs before the suite in one lane (its output stays readable); with more, beside it.
    side = "lint" if options.ci or options.matrix or len(chosen) > 1 else "suites"
    if not options.quick and not options.no_lint:
        parts.append(Part("lint", side, lint(newest)))
    for env in chosen:
        needs: tuple[str, ...] = ()
        if env != newest:
            parts.append(Part(f"build {env.name}", side, build(env, newest)))
            needs = (f"build {env.name}",)
        args = [*(user_args or QUICK_PATHS), "-q"] if options.quick else suite_args(env, matrix, user_args)
        junit = ARTIFACTS / "matrix" / f"{env.name}.xml"
        parts.append(
            Part(
                f"suite {env.name}",
                "suites",
                pytest_part(env, args, workers),
                needs,
                junit,
                ok_statuses=(0, 5),
            )
        )
    for tier in TIERS:
        if getattr(options, tier) or options.ci:
            junit = ARTIFACTS / "matrix" / f"{tier}.xml"
            args = [*TIER_PATHS[tier], "-m", tier, "-p", "no:randomly", *user_args]
            # One process, in order: each tier's tests share one deployment per server flavor. Each
            # tier in a lane of its own: they mostly wait on Airflow's processes, and one after the
            # other they were CI's longest lane.
            parts.append(Part(tier, tier, pytest_part(newest, args, None), junit=junit))
    if options.mutants or options.ci:
        mutants: list[str | Path] = [newest.python, REPO / "scripts" / "mutants.py"]
        needs = ()
        if newest in chosen and not options.quick and not user_args:
            # The suite's report spares the baseline run of every test it shows passed.
            needs = (f"suite {newest.name}",)
            mutants += ["--baseline-junit", ARTIFACTS / "matrix" / f"{newest.name}.xml"]
        parts.append(Part("mutants", side, lambda runner, part: runner.command(part, mutants), needs))
    hints = []
    if not (options.ci or options.quick):
        if len(chosen) < len(matrix):
            hints.append("--matrix (every Airflow environment)")
        hints += [f"--{t}" for t in TIERS if not getattr(options, t)]
        if not options.mutants:
            hints.append("--mutants")
        hints.append("--soak (long)")
        hints.append("--ci (all of it, as CI runs it)")
    return parts, hints


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/test.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the core and the hooks only, no lint")
    parser.add_argument("--matrix", action="store_true", help="the suite on every environment")
    parser.add_argument("--deployment", action="store_true", help="the deployment tier")
    parser.add_argument("--distributed", action="store_true", help="the distributed tier")
    parser.add_argument("--mutants", action="store_true", help="the mutation check")
    parser.add_argument("--soak", action="store_true", help="the reliability soak only")
    parser.add_argument("--ci", action="store_true", help="everything CI runs, side by side")
    parser.add_argument("--no-lint", action="store_true", help="skip ruff and mypy")
    parser.add_argument("--env", action="append", help="an environment of the matrix (repeatable)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the newest only (old flag)
    parser.add_argument(
        "-n",
        "--workers",
        default=os.environ.get("DOTO_TEST_WORKERS", "3"),
        help="pytest-xdist workers per suite (0: none); default 3, or DOTO_TEST_WORKERS",
    )
    options, user_args = parser.parse_known_args(argv)
    if os.environ.get("DOTO_MATRIX") and not options.env:
        options.env = os.environ["DOTO_MATRIX"].replace(",", " ").split()
    if options.env:
        options.env = [n for item in options.env for n in item.replace(",", " ").split()]
    parts, hints = plan(options, list(user_args))
    runner = Runner(parts, live=len({p.lane for p in parts}) == 1)
    t0 = time.monotonic()
    ok = runner.run()
    print()
    print("Test run (logs in artifacts/test-run/):")
    for part in parts:
        print(
            f"  {part.name:<16} {part.seconds:6.0f} s  CPU {part.cpu_seconds:6.0f} s  {part.status:<16} {part.detail}".rstrip()
        )
    print(f"  {'total':<16} {time.monotonic() - t0:7.0f} s")
    if hints:
        print("Not run here: " + ", ".join(hints) + " (docs/testing.md)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
