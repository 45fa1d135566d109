#!/usr/bin/env bash
# Create or reuse the project's virtual environment (.venv) with pinned
# dependencies. Safe to run again: it reinstalls only when requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${RECSHIP_VENV:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.recship-setup"
WANT="$(cat requirements.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi

echo "setting up $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

# torch first, pinned to the CPU build, so no later install can pull CUDA.
"${PIP[@]}" install torch==2.13.0
# torchrec declares fbgemm-gpu (CUDA); we pair it with fbgemm-gpu-cpu instead.
"${PIP[@]}" install --no-deps torchrec==1.8.0
"${PIP[@]}" install -r requirements.txt
"${PIP[@]}" install --no-deps -e .

echo "$WANT" > "$STAMP"
