#!/usr/bin/env bash
# The main job: generate Taobao-schema data, train, evaluate, export, predict
# offline, serve, rank 200 items over HTTP and compare online with offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/recship demo "$@"
