#!/usr/bin/env bash
# Run the whole test suite. Sets up .venv first (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The feature store tests run a real redis-server (Debian's package); they
# fail, never skip, without it. Install it when missing and we are root.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
fi
exec .venv/bin/python -m pytest "$@"
