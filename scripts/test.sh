#!/usr/bin/env bash
# The project's test command. Creates .venv with the pinned toolchain the first time
# (scripts/bootstrap.sh), then runs scripts/testrun.py:
#
#   bash scripts/test.sh                 # ruff, mypy, the suite on the newest Airflow (no deployment tiers)
#   bash scripts/test.sh --quick         # the inner loop: the core and the hooks (tests/api, tests/hooks)
#   bash scripts/test.sh --matrix        # the suite on every Airflow environment (constraints/matrix.tsv)
#   bash scripts/test.sh --deployment    # add the deployment tier; --distributed, --mutants likewise
#   bash scripts/test.sh --ci            # everything CI runs, side by side (.ci/run)
#   bash scripts/test.sh --soak          # the reliability soak (long; writes RELIABILITY.md's figures)
#   bash scripts/test.sh --env 3.1.8 tests/hooks -x   # one environment; other arguments go to pytest
#
# One line per part (duration, passed / failed / skipped); logs in artifacts/test-run/, JUnit
# reports in artifacts/matrix/. Exits non-zero if anything failed. Details: docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/bootstrap.sh
echo "--- setup (.venv, scripts/bootstrap.sh): $(( $(date +%s) - t0 )) s"
exec .venv/bin/python scripts/testrun.py "$@"
