#!/usr/bin/env bash
# The reliability soak: the tests in tests/reliability with --soak (1,000 duplicate trials through
# Airflow's own task retry, 10,000 messages per no-loss consumer variant, the whole fault matrix),
# against the local Doto emulator. Prints the figures and writes them into RELIABILITY.md.
# Takes 10-20 minutes. Extra arguments go to pytest, e.g. `scripts/soak.sh -k no_loss`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('airflow', 'airflow_provider_doto', 'uvicorn', 'fastapi', 'hypothesis')))" >/dev/null 2>&1; then
  echo "Setting up .venv (first run only) ..."
  bash scripts/bootstrap.sh
fi
exec .venv/bin/python -m pytest tests/reliability --soak -p no:cacheprovider -q "$@"
