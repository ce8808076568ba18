#!/usr/bin/env bash
# The mutation check (scripts/mutants.py): breaks each promise of the README's "Reliability" section
# in an isolated copy of the working tree and checks that the named tests catch it. Exits non-zero
# if any mutation survives or the selected tests fail unmutated.
#
#   bash scripts/mutants.sh            # every mutation, 2 at a time
#   bash scripts/mutants.sh --write    # ... and write the report into RELIABILITY.md
#   bash scripts/mutants.sh --list     # the mutations and their tests
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/mutants.py "$@"
