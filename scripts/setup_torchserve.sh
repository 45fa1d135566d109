#!/usr/bin/env bash
# Create or reuse .venv-torchserve, a separate virtual environment holding
# TorchServe, the baseline server of `recship bench serve --torchserve`.
#
# The venv is plain (no system site packages). torch is installed first from
# the same CPU wheel as .venv, so that TorchServe cannot pull a CUDA build;
# fbgemm-gpu-cpu runs the plain TorchScript export's jagged ops; numpy,
# pyarrow and protobuf let the baseline handler run recship's own FG (it
# imports recship from src/ through PYTHONPATH). TorchServe needs Java 17.
# Safe to run again: it reinstalls only when this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${RECSHIP_TORCHSERVE_VENV:-.venv-torchserve}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.recship-setup"
WANT="$(sha256sum scripts/setup_torchserve.sh | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi
if ! java -version >/dev/null 2>&1; then
  echo "TorchServe needs Java 17 (apt-get install openjdk-17-jre-headless)" >&2
  exit 1
fi

echo "setting up $VENV for the TorchServe baseline" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

"${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install \
  fbgemm-gpu-cpu==1.8.0 \
  numpy==2.4.6 \
  pyarrow==26.0.1 \
  protobuf==7.36.2 \
  pyyaml==6.0.4
"${PIP[@]}" install torchserve==0.12.0 torch-model-archiver==0.12.0

echo "$WANT" > "$STAMP"
