"""Sends one rank request with the public eas-prediction SDK; prints the reply.

Runs inside the SDK's own virtual environment (`scripts/setup_eas_client.sh`),
not recship's, and imports nothing from recship:

    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python \\
        .venv-eas/bin/python src/recship/testing/eas_client.py \\
        http://127.0.0.1:8080 recship request.json

`request.json` describes the request. A feature value is either typed, as
`{"dtype": "<SDK dtype>", "value": ...}` with the SDK's dtype names (`INT`,
`BIGINT`, `FLOAT`, `DOUBLE`, `STRING`, `LIST<...>`, `MAP<...,...>`,
`LIST<LIST<FLOAT>>`), or plain, with the dtype inferred (int: BIGINT, float:
DOUBLE, str: STRING, lists of those: LIST<...>, list of lists: LIST<LIST<FLOAT>>):

    {"user_features": {"user_id": "u1", "age": {"dtype": "INT", "value": 31}},
     "item_ids": ["i1", "i2"],
     "context_features": {"hour": [13, 14]},
     "item_features": {"price": [9.5, 3.0]},
     "meta_data": {"scene": "home"}, "debug_level": 0, "timeout_ms": 5000,
     "token": "optional service token: the SDK then signs the request"}

The last line on stdout is one JSON object: on success
`{"item_ids": [...], "outputs": {name: [values]}, "shapes": {name: [dims]},
"generate_features": {item_id: str}, "raw_features": {item_id: str}}`; when
the server refuses, `{"error": {"status": int, "message": str}}` and exit
code 3. Only loopback endpoints are accepted: this is a test tool.
"""

import argparse
import ipaddress
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from eas_prediction import PredictClient
from eas_prediction.exception import PredictException
from eas_prediction.torchrec_request import TorchRecRequest

EXIT_REFUSED = 3


def main(argv: list[str]) -> int:
    """Parses arguments, sends the request, writes the reply; returns the exit
    code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="server base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("service", help="service name of /api/predict/<service>")
    parser.add_argument("request_json", help="file describing the request")
    args = parser.parse_args(argv)

    endpoint = check_loopback(args.url)
    with open(args.request_json, encoding="utf-8") as file:
        spec = json.load(file)
    request = build_request(spec)

    client = PredictClient(endpoint, args.service)
    client.set_timeout(int(spec.get("timeout_ms", 5000)))
    # One try: the SDK's retries of 500s would hide the first answer.
    client.set_retry_count(1)
    if spec.get("token"):
        client.set_token(spec["token"])
    client.init()
    try:
        response = client.predict(request)
    except PredictException as err:
        message = err.message
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        write_result({"error": {"status": err.code, "message": message}})
        return EXIT_REFUSED
    finally:
        client.destroy()
    write_result(describe_response(response))
    return 0


def check_loopback(url: str) -> str:
    """Returns `host:port` of a loopback URL; exits on any other address."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = parts.hostname or ""
    is_loopback = host == "localhost"
    if not is_loopback:
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = False
    if not is_loopback or parts.port is None:
        raise SystemExit(f"error: {url!r} is not a loopback host:port URL")
    netloc = f"[{host}]" if ":" in host else host
    return f"{netloc}:{parts.port}"


def build_request(spec: dict[str, Any]) -> TorchRecRequest:
    """Builds the SDK request from the JSON description."""
    request = TorchRecRequest()
    for name, value in spec.get("user_features", {}).items():
        request.add_user_fea(name, *typed(value, f"user_features.{name}"))
    for item_id in spec.get("item_ids", []):
        request.add_item_id(item_id)
    for name, values in spec.get("context_features", {}).items():
        for index, value in enumerate(values):
            where = f"context_features.{name}[{index}]"
            request.add_context_fea(name, *typed(value, where))
    for name, values in spec.get("item_features", {}).items():
        for index, value in enumerate(values):
            request.add_item_fea(name, *typed(value, f"item_features.{name}[{index}]"))
    for key, value in spec.get("meta_data", {}).items():
        request.add_meta_data(key, value)
    request.set_debug_level(int(spec.get("debug_level", 0)))
    return request


def typed(value: Any, where: str) -> tuple[Any, str]:
    """Returns `(value, dtype)` for the SDK's `add_*_fea`."""
    if isinstance(value, dict):
        if set(value) != {"dtype", "value"}:
            raise SystemExit(f"error: {where}: write maps as {{dtype, value}}")
        return value["value"], value["dtype"]
    if isinstance(value, list):
        if value and all(isinstance(row, list) for row in value):
            return value, "LIST<LIST<FLOAT>>"
        element = scalar_dtype(value[0], where) if value else "STRING"
        if element == "BIGINT" and any(isinstance(v, float) for v in value):
            element = "DOUBLE"
        return value, f"LIST<{element}>"
    return value, scalar_dtype(value, where)


def scalar_dtype(value: Any, where: str) -> str:
    """Infers the SDK dtype of a scalar."""
    if isinstance(value, bool):
        raise SystemExit(f"error: {where}: booleans have no dtype; use 0 or 1")
    if isinstance(value, int):
        return "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "STRING"
    raise SystemExit(f"error: {where}: cannot infer a dtype for {value!r}")


def describe_response(response: Any) -> dict[str, Any]:
    """Turns the SDK's PBResponse into plain JSON values."""
    outputs = {}
    shapes = {}
    for name, array in response.map_outputs.items():
        values = (
            list(array.float_val)
            or list(array.double_val)
            or list(array.int64_val)
            or list(array.int_val)
        )
        outputs[name] = values
        shapes[name] = list(array.array_shape.dim)
    return {
        "item_ids": list(response.item_ids),
        "outputs": outputs,
        "shapes": shapes,
        "generate_features": dict(response.generate_features),
        "raw_features": dict(response.raw_features),
    }


def write_result(result: dict[str, Any]) -> None:
    """Writes the result as the last line of stdout (the SDK's own error log
    also goes to stdout, above it)."""
    sys.stdout.write("\n" + json.dumps(result) + "\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
