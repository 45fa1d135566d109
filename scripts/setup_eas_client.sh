#!/usr/bin/env bash
# Create or reuse .venv-eas, a separate virtual environment holding the public
# eas-prediction SDK, for the SDK compatibility check (tests/test_eas_sdk.py).
# The SDK pins protobuf <= 3.20.3, which cannot share .venv with recship.
# Safe to run again: it reinstalls only when this script changes.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${RECSHIP_EAS_VENV:-.venv-eas}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.recship-setup"
WANT="$(sha256sum scripts/setup_eas_client.sh | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  exit 0
fi

echo "setting up $VENV for the eas-prediction SDK check" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip -q --disable-pip-version-check install \
  eas-prediction==0.36 \
  protobuf==3.20.3 \
  python-snappy==0.7.3 \
  cramjam==2.14.0 \
  websocket-client==1.9.2 \
  urllib3==2.8.0 \
  numpy==2.4.6

echo "$WANT" > "$STAMP"
