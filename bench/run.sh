#!/usr/bin/env bash
# Run every benchmark and write BENCHMARKS.md: bash bench/run.sh [--quick] [--only imports,send,...]
# Creates .venv if missing (scripts/bootstrap.sh), then installs the bench extra into it (the http
# provider as the baseline, httpx/httpcore as the transports compared). Takes about 30 minutes, most
# of it benchmark 6 (1,000 mapped task instances in a local Airflow).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  bash scripts/bootstrap.sh
fi
if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; else UV=$(command -v uv || true); fi
if [ -n "$UV" ]; then
  "$UV" pip install -q -p .venv/bin/python -c constraints.txt -e ".[dev,bench]"
else
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
fi
BENCH_COMMAND="bash bench/run.sh${*:+ $*}" exec .venv/bin/python -m bench "$@"
