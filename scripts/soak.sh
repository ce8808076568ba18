#!/usr/bin/env bash
# The reliability soak: the tests in tests/reliability with --soak (1,000 duplicate trials through
# Airflow's own task retry, 10,000 messages per no-loss consumer variant, the whole fault matrix),
# against the local Doto emulator, then the distributed tier at its soak scale (100 sensors, 200
# sends; skipped with the reason without redis-server and PostgreSQL). Prints the figures and writes
# the reliability suite's into RELIABILITY.md. Takes 20-30 minutes. Extra arguments go to pytest,
# e.g. `scripts/soak.sh -k no_loss`. The same as `bash scripts/test.sh --soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/test.sh --soak "$@"
