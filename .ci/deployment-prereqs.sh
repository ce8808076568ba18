#!/usr/bin/env bash
# System packages the deployment tests need (tests/deployment): Debian's Chromium + its WebDriver for
# the connection-form test, the PostgreSQL server for the `stack --postgres` test, and Redis for the
# distributed tests (tests/distributed: `stack --executor celery`, a broker on a loopback port).
# Idempotent and fast when everything is present (no apt call at all); runs `apt-get update` once
# otherwise. Needs root (or passwordless sudo). Never downloads a browser outside the OS packages.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deployment prerequisites present: chromium, chromium-driver, postgresql, redis-server"
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
# Debian's postgresql and redis-server packages may start servers on 5432 and 6379; the tests start
# their own on free loopback ports.
