#!/usr/bin/env bash
# Create .venv with the pinned toolchain (constraints.txt) and this provider installed editable.
# Needs only python3.11 and network access to PyPI. Idempotent: re-running is fast.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  # A venv made by another tool (e.g. `uv venv`) may lack pip.
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
fi
# uv resolves against the lock-like constraints file, so a new release elsewhere cannot break us.
.venv/bin/uv pip install -q -p .venv/bin/python -c constraints.txt -e ".[dev,distributed,lineage]"
# Byte-compile what is installed (uv does not by default, and this machine's environment sets
# PYTHONDONTWRITEBYTECODE): otherwise every Python process that imports Airflow (each pytest-xdist
# worker, each component and task process of the test stacks, each run of the mutation check)
# compiles some 2,000 modules from source again, 3-5 s of CPU each time. Already-compiled files are
# skipped (2 s); a file that does not compile (some packages ship Python 2 fixtures) is left alone.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages >/dev/null 2>&1 || true
