"""DAG-parse import cost: extra time and modules of importing operator + sensor modules after ``import airflow.sdk``.

Each sample is a fresh interpreter. Bytecode is cached (in a private ``PYTHONPYCACHEPREFIX``, warmed
first) for both sides, as it is for any installed package, so the figure is import work, not compiling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from bench.machine import median

SIDES = {
    "doto": ["airflow_provider_doto.operators.doto", "airflow_provider_doto.sensors.doto"],
    "http": ["airflow.providers.http.operators.http", "airflow.providers.http.sensors.http"],
}

PROBE = """
import importlib, json, sys, time
import airflow.sdk
before = set(sys.modules)
t, c = time.perf_counter(), time.process_time()
for name in sys.argv[1:]:
    importlib.import_module(name)
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
added = set(sys.modules) - before
print(json.dumps({"ms": elapsed * 1000, "cpu_ms": cpu * 1000, "modules": len(added),
                  "heavy": sorted(m for m in added if m.split(".")[0] in ("requests", "aiohttp", "httpx", "tenacity", "urllib3"))[:8]}))
"""


def _env(cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def _sample(modules: list[str], env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(reps: int = 10) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as cache:
        env = _env(cache)
        for modules in SIDES.values():  # warm the bytecode cache
            _sample(modules, env)
        samples: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for i in range(reps):
            order = list(SIDES) if i % 2 == 0 else list(reversed(SIDES))  # alternate against drift
            for side in order:
                samples[side].append(_sample(SIDES[side], env))
    result: dict[str, Any] = {"reps": reps}
    for side, runs in samples.items():
        result[side] = {
            "ms": median([r["ms"] for r in runs]),
            "ms_all": [round(r["ms"], 1) for r in runs],
            "cpu_ms": median([r["cpu_ms"] for r in runs]),
            "cpu_ms_all": [round(r["cpu_ms"], 1) for r in runs],
            "modules": median([r["modules"] for r in runs]),
            "heavy": runs[-1]["heavy"],
        }
    return result


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    print(json.dumps(measure(reps)))


if __name__ == "__main__":
    main()
