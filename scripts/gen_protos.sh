#!/usr/bin/env bash
# Regenerate the *_pb2.py modules from the .proto files under src/recship.
# The generated files are committed; config/loader_test.py checks they match.
set -euo pipefail
cd "$(dirname "$0")/../src"
PY="${PY:-../.venv/bin/python}"
mapfile -t protos < <(find recship -name '*.proto' | sort)
"$PY" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. "${protos[@]}"
