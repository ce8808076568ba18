#!/usr/bin/env bash
# System packages the deployment tests need (tests/deployment): Debian's Chromium + its WebDriver for
# the connection-form test, and the PostgreSQL server for the `stack --postgres` test.
# Idempotent and fast when everything is present (no apt call at all); runs `apt-get update` once
# otherwise. Needs root (or passwordless sudo). Never downloads a browser outside the OS packages.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deployment prerequisites present: chromium, chromium-driver, postgresql"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "deployment prerequisites missing (${missing[*]}) and no root to install them" >&2
  exit 1
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q "${missing[@]}"
# Debian's postgresql package may start a cluster on 5432; the tests start their own on a free port.
