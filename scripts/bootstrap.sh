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
