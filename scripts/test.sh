#!/usr/bin/env bash
# The project's test command: lint and type-check once, then the whole test suite against the
# emulator in every environment of the Airflow version matrix (constraints/matrix.tsv), and one
# line per environment with its counts and duration. Exits non-zero if anything failed.
#
#   bash scripts/test.sh                          # lint + every environment: 3.3.2, 3.2.2, 3.1.8, lowest
#   bash scripts/test.sh --one tests/hooks -q     # only the default (newest) environment
#   DOTO_MATRIX=3.1.8 bash scripts/test.sh -x     # only the named environment(s), e.g. "3.1.8 lowest"
#
# Other arguments go to pytest. Tests marked with NEWEST_ONLY_MARKERS run in the default (first)
# environment only. Each environment is a venv built with uv from its pinned constraints file and
# reused until that file or pyproject.toml changes. JUnit reports land in artifacts/matrix/.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWEST_ONLY_MARKERS="deployment distributed"
start=$(date +%s)

matrix=$(grep -v '^#' constraints/matrix.tsv | cut -f1-3)
default=$(head -n 1 <<<"$matrix" | cut -f1)
selected=${DOTO_MATRIX:-}
if [ "${1:-}" = "--one" ]; then
  selected=$default
  shift
fi
[ -n "$selected" ] || selected=$(cut -f1 <<<"$matrix" | xargs)
selected=${selected//,/ }
for name in $selected; do
  cut -f1 <<<"$matrix" | grep -qxF "$name" || { echo "unknown environment $name; constraints/matrix.tsv has: $(cut -f1 <<<"$matrix" | xargs)" >&2; exit 2; }
done

# The default environment (.venv) also holds uv and the linters.
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

ensure_env() {  # VENV CONSTRAINTS: create or update the venv unless its stamp matches
  local venv=$1 constraints=$2 stamp want
  [ "$venv" = .venv ] && return 0  # bootstrap.sh keeps it
  stamp=$venv/.doto-constraints.sha256
  want=$(cat "$constraints" pyproject.toml | sha256sum | cut -d' ' -f1)
  [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return 0
  echo "building $venv from $constraints"
  [ -x "$venv/bin/python" ] || .venv/bin/uv venv -q -p "${PYTHON:-python3.11}" "$venv"
  .venv/bin/uv pip install -q -p "$venv/bin/python" -c "$constraints" -e ".[dev]"
  echo "$want" >"$stamp"
}

counts() {  # JUNIT_XML -> "passed failed skipped"
  .venv/bin/python - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
tests, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(tests - failures - errors - skipped, failures + errors, skipped)
EOF
}

mkdir -p artifacts/matrix
summary=()
failed=0
while IFS=$'\t' read -r name venv constraints; do
  [ -z "$selected" ] || [[ " $selected " == *" $name "* ]] || continue
  ensure_env "$venv" "$constraints"
  version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')
  report=artifacts/matrix/$name.xml
  rm -f "$report"
  deselect=""
  [ "$name" = "$default" ] || deselect=$NEWEST_ONLY_MARKERS
  echo "=== Airflow $version ($name, $venv) ==="
  t0=$(date +%s)
  rc=0
  DOTO_DESELECT_MARKERS=$deselect "$venv/bin/python" -m pytest --junitxml="$report" "$@" || rc=$?
  seconds=$(($(date +%s) - t0))
  if [ -s "$report" ]; then
    read -r passed fails skipped < <(counts "$report")
  else
    passed=0 fails="?" skipped=0
  fi
  status=ok
  # 5: nothing collected (e.g. a path holding only newest-only tests): not a failure.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    status="FAILED (pytest exit $rc)"
    failed=1
  fi
  summary+=("$(printf 'Airflow %-7s %-8s %5s passed %4s failed %4s skipped %6s s  %s' \
    "$version" "$name" "$passed" "$fails" "$skipped" "$seconds" "$status")")
done <<<"$matrix"

echo
echo "Airflow version matrix (constraints/matrix.tsv):"
printf '  %s\n' "${summary[@]}"
echo "  total $(($(date +%s) - start)) s (lint, environments and tests)"
exit "$failed"
