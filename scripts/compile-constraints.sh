#!/usr/bin/env bash
# Re-resolve the matrix's constraints files (constraints/matrix.tsv) after changing pyproject.toml.
# Each older Airflow is resolved with the dependencies of its release date (uv --exclude-newer), as a
# user installing it then would get; the "lowest-direct" environment proves pyproject's floors.
# Usage: bash scripts/compile-constraints.sh [NAME...]   (default: every environment)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' constraints/matrix.tsv | while IFS=$'\t' read -r name _venv file newer resolution extras reqs; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  args=(pyproject.toml)
  cmd="bash scripts/compile-constraints.sh $name"
  if [ "$reqs" != "-" ]; then
    tr ' ' '\n' <<<"$reqs" >"$tmp/$name.in"
    args+=("$tmp/$name.in")
  fi
  for extra in ${extras//,/ }; do args+=(--extra "$extra"); done
  # exclude-newer: a date, then optionally PACKAGE=DATE exceptions (a floor released after that date).
  IFS=, read -r -a dates <<<"$newer"
  [ "${dates[0]}" = "-" ] || args+=(--exclude-newer "${dates[0]}")
  for pkg_date in "${dates[@]:1}"; do args+=(--exclude-newer-package "$pkg_date"); done
  echo "resolving $name -> $file"
  .venv/bin/uv pip compile -q "${args[@]}" -p 3.11 --resolution "$resolution" \
    --custom-compile-command "$cmd" --no-annotate -o "$file"
done
