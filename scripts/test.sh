#!/usr/bin/env bash
# Run the whole test suite. Sets up .venv first (see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
