"""The JSON rank API: `POST /v1/rank`.

Request (only `item_ids` is required):

    {"user_features": {"age": 31, "tags": ["a", "b"]},
     "item_ids": ["i1", "i2"],
     "item_features": {"price": [9.5, 3.0]},
     "context_features": {"hour": [13]},
     "outputs": ["probs"], "debug_level": 0,
     "meta_data": {"scene": "home"}, "request_id": "r-1"}

Response:

    {"request_id": "r-1", "model_version": "3", "item_ids": ["i1", "i2"],
     "outputs": {"probs": [0.12, 0.53]},
     "generate_features": [{...}, {...}], "raw_features": [{...}, {...}]}

A feature value is a number, a string, null, a list of those, a list of such
lists, or an object of scalars. `openapi.py` publishes the same schema.
"""

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from recship.errors import BadRequestError
from recship.serving.protocol import (
    check_finite_scalar,
    check_rank_request,
    check_rank_response,
    describe_value,
)
from recship.serving.request import RankRequest, RankResponse, RawValue

REQUEST_FIELDS = (
    "user_features",
    "item_ids",
    "item_features",
    "context_features",
    "outputs",
    "debug_level",
    "meta_data",
    "request_id",
    "fg_mode",
    "generated_features",
)

# Request ids travel in headers and logs: keep them short and printable.
MAX_REQUEST_ID_CHARS = 128

_SCALAR_TYPES = frozenset({int, float, str, type(None)})


def decode_json_request(body: bytes) -> RankRequest:
    """Decodes and checks a JSON rank request.

    Args:
        body: the HTTP request body, UTF-8 JSON.

    Returns:
        The request, checked by `check_rank_request`.

    Raises:
        BadRequestError: the body is not a JSON object of the documented
            shape; the message names the field and item.
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequestError(f"request body is not valid UTF-8 JSON: {err}") from err
    if not isinstance(document, dict):
        raise BadRequestError(
            f"request body is {describe_value(document)}; send a JSON object"
        )
    unknown = sorted(set(document) - set(REQUEST_FIELDS))
    if unknown:
        raise BadRequestError(
            f"unknown request field(s) {', '.join(map(repr, unknown))}; the fields "
            f"are {', '.join(REQUEST_FIELDS)}"
        )

    user_features = {
        name: _check_value(value, f"user_features[{name!r}]")
        for name, value in _object(document, "user_features").items()
    }
    item_ids = [
        _item_id(item_id, index)
        for index, item_id in enumerate(_list(document, "item_ids"))
    ]
    item_features = _per_item_features(document, "item_features")
    context_features = _per_item_features(document, "context_features")

    request = RankRequest(
        user_features=user_features,
        item_ids=item_ids,
        item_features=item_features,
        context_features=context_features,
        outputs=_strings(_list(document, "outputs"), "outputs"),
        debug_level=_debug_level(document.get("debug_level", 0)),
        meta_data=_meta_data(_object(document, "meta_data")),
        request_id=_request_id(document.get("request_id")),
        fg_mode=_fg_mode(document.get("fg_mode", "normal")),
        generated_features=_generated_features(document),
    )
    return check_rank_request(request)


def encode_json_request(request: RankRequest) -> bytes:
    """Serializes a request as the JSON API expects it (for clients and tests)."""
    document: dict[str, Any] = {
        "user_features": request.user_features,
        "item_ids": request.item_ids,
        "item_features": request.item_features,
        "context_features": request.context_features,
        "outputs": request.outputs,
        "debug_level": request.debug_level,
        "meta_data": request.meta_data,
    }
    if request.request_id is not None:
        document["request_id"] = request.request_id
    if request.fg_mode != "normal":
        document["fg_mode"] = request.fg_mode
    if request.generated_features:
        document["generated_features"] = {
            name: np.asarray(values).tolist()
            for name, values in request.generated_features.items()
        }
    return json.dumps(document, allow_nan=False).encode()


def encode_json_response(response: RankResponse, request_id: str) -> bytes:
    """Serializes a response for the JSON API.

    Outputs become lists of numbers of the output's shape (`[N]` for one
    score per item); a NaN or infinite score becomes null, since JSON has no
    such numbers.

    Args:
        response: what the ranker returned.
        request_id: the id to echo.

    Returns:
        UTF-8 JSON.

    Raises:
        ServingError: (500) the response does not fit its items.
    """
    check_rank_response(response)
    document: dict[str, Any] = {
        "request_id": request_id,
        "model_version": response.model_version,
        "item_ids": response.item_ids,
        "outputs": {
            name: _output_array(np.asarray(scores))
            for name, scores in response.outputs.items()
        },
    }
    if response.generate_features:
        document["generate_features"] = response.generate_features
    if response.raw_features:
        document["raw_features"] = response.raw_features
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def _check_value(value: RawValue, where: str) -> RawValue:
    """Checks that a JSON value is a feature value (see the module docstring)."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        if kind is float:
            check_finite_scalar(value, where)
        return value
    if kind is list:
        _check_list(value, where, depth=1)
        return value
    if kind is dict:
        for key, item in value.items():
            if type(item) not in _SCALAR_TYPES or item is None:
                raise BadRequestError(
                    f"{where}[{key!r}] is {describe_value(item)}; map values "
                    "must be numbers or strings"
                )
            if type(item) is float:
                check_finite_scalar(item, f"{where}[{key!r}]")
        return value
    raise BadRequestError(
        f"{where} is {describe_value(value)}; send a number, a string, null, a "
        "list or an object (booleans: send 0 or 1)"
    )


def _check_list(values: list[Any], where: str, depth: int) -> None:
    """Checks a list of scalars, or (at depth 1) a list of such lists."""
    kinds = set(map(type, values))
    if kinds <= _SCALAR_TYPES:
        if float in kinds:
            for index, value in enumerate(values):
                if type(value) is float and not math.isfinite(value):
                    check_finite_scalar(value, f"{where}[{index}]")
        return
    if kinds == {list} and depth == 1:
        for index, row in enumerate(values):
            _check_list(row, f"{where}[{index}]", depth=2)
        return
    for index, value in enumerate(values):
        if type(value) not in _SCALAR_TYPES:
            nesting = "a list of lists" if depth == 1 else "a list"
            raise BadRequestError(
                f"{where}[{index}] is {describe_value(value)}; {where} must be "
                f"{nesting} of numbers, strings or nulls"
            )


def _per_item_features(
    document: Mapping[str, Any], field_name: str
) -> dict[str, list[RawValue]]:
    """Reads `item_features` or `context_features`: name to a list of values."""
    features = {}
    for name, values in _object(document, field_name).items():
        where = f"{field_name}[{name!r}]"
        if type(values) is not list:
            raise BadRequestError(
                f"{where} is {describe_value(values)}; send a list with one value "
                "per item"
            )
        features[name] = [
            _check_value(value, f"{where}[{index}]")
            for index, value in enumerate(values)
        ]
    return features


def _object(document: Mapping[str, Any], field_name: str) -> dict[str, Any]:
    """Reads an optional JSON object field; absent or null gives {}."""
    value = document.get(field_name)
    if value is None:
        return {}
    if type(value) is not dict:
        raise BadRequestError(
            f"{field_name} is {describe_value(value)}; send a JSON object"
        )
    return value


def _list(document: Mapping[str, Any], field_name: str) -> list[Any]:
    """Reads an optional JSON array field; absent or null gives []."""
    value = document.get(field_name)
    if value is None:
        return []
    if type(value) is not list:
        raise BadRequestError(f"{field_name} is {describe_value(value)}; send a list")
    return value


def _item_id(value: Any, index: int) -> str:
    """Reads one item id: a string, or an integer taken as its decimal form."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise BadRequestError(
        f"item_ids[{index}] is {describe_value(value)}; send strings or integers"
    )


def _strings(values: list[Any], field_name: str) -> list[str]:
    """Checks that every element of a list is a string."""
    for index, value in enumerate(values):
        if type(value) is not str:
            raise BadRequestError(
                f"{field_name}[{index}] is {describe_value(value)}; send strings"
            )
    return values


def _debug_level(value: Any) -> int:
    """Reads debug_level, an integer (range checked by check_rank_request)."""
    if type(value) is not int:
        raise BadRequestError(
            f"debug_level is {describe_value(value)}; send an integer 0, 1 or 2"
        )
    return value


def _fg_mode(value: Any) -> str:
    """Reads fg_mode, a string (checked by check_rank_request)."""
    if type(value) is not str:
        raise BadRequestError(
            f"fg_mode is {describe_value(value)}; send 'normal' or 'bypass'"
        )
    return value


def _generated_features(document: Mapping[str, Any]) -> dict[str, Any]:
    """Reads generated_features: input name to a list of numbers or of rows
    of numbers (kinds and ranges are checked by `serving/bypass.py`)."""
    generated = _object(document, "generated_features")
    for name, values in generated.items():
        where = f"generated_features[{name!r}]"
        if type(values) is not list:
            raise BadRequestError(
                f"{where} is {describe_value(values)}; send a list of numbers"
            )
        _check_value(values, where)
    return generated


def _meta_data(values: dict[str, Any]) -> dict[str, str]:
    """Checks that meta_data maps strings to strings."""
    for key, value in values.items():
        if type(value) is not str:
            raise BadRequestError(
                f"meta_data[{key!r}] is {describe_value(value)}; send strings"
            )
    return values


def _request_id(value: Any) -> str | None:
    """Reads the optional request_id: 1 to 128 printable ASCII characters,
    since it is echoed in the X-Request-Id header."""
    if value is None:
        return None
    if type(value) is not str:
        raise BadRequestError(
            f"request_id is {describe_value(value)}; send a non-empty string"
        )
    if not 0 < len(value) <= MAX_REQUEST_ID_CHARS or not all(
        "!" <= char <= "~" for char in value
    ):
        raise BadRequestError(
            f"request_id {value[:40]!r} must be 1 to {MAX_REQUEST_ID_CHARS} "
            "printable ASCII characters without spaces"
        )
    return value


def _output_array(values: np.ndarray) -> np.ndarray | list[Any]:
    """An output as orjson writes it in one pass: a float32 array as each
    value's shortest decimal that parses back to the same float32 (0.01, not
    0.009999999776482582), like `_output_to_json`; other arrays through
    `_output_to_json`, which also turns non-finite values into null."""
    if (
        values.dtype in (np.float32, np.float64)
        and values.dtype.isnative
        and np.isfinite(values).all()
    ):
        return np.ascontiguousarray(values)
    return _output_to_json(values)


def _output_to_json(values: np.ndarray) -> list[Any]:
    """Converts an output array to nested lists, non-finite values to null.

    Narrow floats go through their shortest decimal form, so a float32 score
    reads 0.01 rather than 0.009999999776482582 and still parses back to the
    same float32.
    """
    if values.dtype.kind == "f" and values.dtype.itemsize < 8:
        values = values.astype(str).astype(np.float64)
    if values.dtype.kind != "f" or np.isfinite(values).all():
        return values.tolist()
    as_objects = values.astype(object)
    as_objects[~np.isfinite(values)] = None
    return as_objects.tolist()
