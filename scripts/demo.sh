#!/usr/bin/env bash
# The demo: run the doto_escalation example DAG with `airflow dags test` against a local Doto
# emulator, then print the conversation. On a fresh machine this first creates .venv (bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('airflow', 'airflow_provider_doto', 'uvicorn', 'fastapi')))" >/dev/null 2>&1; then
  echo "Setting up .venv (first run only) ..."
  bash scripts/bootstrap.sh
fi
exec .venv/bin/python -m airflow_provider_doto.testing.stack.demo "$@"
