#!/usr/bin/env bash
# Run every benchmark and write BENCHMARKS.md: bash bench/run.sh [--quick] [--only imports,send,...]
# Installs the project (scripts/bootstrap.sh) and the bench extra (the http provider as baseline,
# httpx/httpcore as the transports compared) into .venv first. Takes about 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/uv pip install -q -p .venv/bin/python -c constraints.txt -e ".[dev,bench]"
BENCH_COMMAND="bash bench/run.sh${*:+ $*}" exec .venv/bin/python -m bench "$@"
