#!/usr/bin/env bash
# Installs the system packages the tests talk to, from Debian's packages, when missing:
# redis-server (the Redis store tests) and chromium (the dashboard's browser tests).
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "system-deps: missing ${need[*]} and not root; install them with apt-get" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts a redis-server on 6379 when it installs one; the tests never use it.
