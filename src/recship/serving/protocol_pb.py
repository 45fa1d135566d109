"""The TorchEasyRec Processor protocol: `PBRequest` bytes in, `PBResponse` out.

The server decodes requests and encodes responses; clients, tools and tests
use the two inverse functions (`encode_pb_request`, `decode_pb_response`).
Feature values map to plain Python values:

| `PBFeature` field                        | Python value                  |
|------------------------------------------|-------------------------------|
| `int_feature`, `long_feature`            | `int`                         |
| `float_feature`, `double_feature`        | `float`                       |
| `string_feature`                         | `str`                         |
| `<type>_list`                            | `list` of scalars             |
| `<type>_lists`                           | `list` of `list`s of scalars  |
| `<key>_<value>_map`                      | `dict` of scalar to scalar    |
| nothing set                              | `None` (missing value)        |
"""

from collections.abc import Mapping, Sequence

import numpy as np
from google.protobuf.message import DecodeError

from recship.errors import BadRequestError, ServingError
from recship.serving.protocol import (
    check_finite,
    check_finite_scalar,
    check_rank_request,
    check_rank_response,
    describe_value,
)
from recship.serving.protos import processor_pb2, pytorch_predict_pb2
from recship.serving.request import RankRequest, RankResponse, RawValue

# Debug features travel as one string per item: `name:value` pairs joined by
# FEATURE_SEPARATOR, keyed by item id in PBResponse.generate_features.
# NOTE: the upstream processor documents the map type but not the string
# layout; this layout is ours, and parse_debug_features reads it back.
FEATURE_SEPARATOR = "\x02"
NAME_VALUE_SEPARATOR = ":"

# PBRequest has no fg_mode field: `meta_data["fg_mode"] = "bypass"` asks the
# server to skip FG (see serving/bypass.py).
FG_MODE_KEY = "fg_mode"

_SCALAR_KINDS = frozenset(
    {"int_feature", "long_feature", "string_feature", "float_feature", "double_feature"}
)
_FLOAT_SCALAR_KINDS = frozenset({"float_feature", "double_feature"})
_FLOAT_ELEMENT_TYPES = ("float", "double")

_DT = pytorch_predict_pb2.ArrayDataType


def decode_pb_request(body: bytes) -> RankRequest:
    """Decodes and checks a serialized `PBRequest`.

    `PBRequest` has no field for output names or a request id: the request
    asks for every output, and the server sets `request_id`.

    Args:
        body: the HTTP request body.

    Returns:
        The request, checked by `check_rank_request`.

    Raises:
        BadRequestError: the bytes are not a `PBRequest`, or a value is bad;
            the message names the field and item.
    """
    message = processor_pb2.PBRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as err:
        raise BadRequestError(
            f"request body ({len(body)} bytes) is not a valid PBRequest protobuf "
            f"({err}); send PBRequest.SerializeToString() of package "
            "com.alibaba.pairec.processor"
        ) from err

    user_features = {
        name: decode_pb_feature(feature, f"user_features[{name!r}]")
        for name, feature in message.user_features.items()
    }
    item_features = {
        name: _decode_per_item(values.features, f"item_features[{name!r}]")
        for name, values in message.item_features.items()
    }
    context_features = {
        name: _decode_per_item(values.features, f"context_features[{name!r}]")
        for name, values in message.context_features.items()
    }

    request = RankRequest(
        user_features=user_features,
        item_ids=list(message.item_ids),
        item_features=item_features,
        context_features=context_features,
        debug_level=message.debug_level,
        meta_data=dict(message.meta_data),
        fg_mode=message.meta_data.get(FG_MODE_KEY, "normal"),
    )
    return check_rank_request(request)


def encode_pb_request(request: RankRequest) -> bytes:
    """Serializes a request as a `PBRequest`, the inverse of `decode_pb_request`.

    Each value gets the widest field of its kind: `long_*` for ints, `double_*`
    for floats. `outputs` and `request_id` have no field and are dropped.

    Args:
        request: the request to send.

    Returns:
        The serialized `PBRequest`.

    Raises:
        BadRequestError: a value has no `PBFeature` form (for example a bool,
            a mixed-type list, or an int beyond int64).
    """
    meta_data = dict(request.meta_data)
    if request.fg_mode != "normal":
        meta_data[FG_MODE_KEY] = request.fg_mode
    message = processor_pb2.PBRequest(
        debug_level=request.debug_level,
        item_ids=request.item_ids,
        meta_data=meta_data,
    )
    for name, value in request.user_features.items():
        where = f"user_features[{name!r}]"
        message.user_features[name].CopyFrom(encode_pb_feature(value, where))
    for field_name, features in (
        ("item_features", request.item_features),
        ("context_features", request.context_features),
    ):
        target = getattr(message, field_name)
        for name, values in features.items():
            encoded = [
                encode_pb_feature(value, f"{field_name}[{name!r}][{index}]")
                for index, value in enumerate(values)
            ]
            target[name].features.extend(encoded)
    return message.SerializeToString()


def encode_pb_response(response: RankResponse) -> bytes:
    """Serializes a response as a `PBResponse`.

    Each output becomes `map_outputs[name]`, an `ArrayProto` of its shape
    (`[N]` for one score per item): floats as `DT_FLOAT` in `float_val`,
    integers as `DT_INT64` in `int64_val`. Debug features are keyed by item
    id.

    Args:
        response: what the ranker returned.

    Returns:
        The serialized `PBResponse`.

    Raises:
        ServingError: (500) the response does not fit its items, or an output
            has a dtype with no `ArrayProto` form.
    """
    check_rank_response(response)
    message = processor_pb2.PBResponse(item_ids=response.item_ids)
    for name, scores in response.outputs.items():
        _fill_array_proto(message.map_outputs[name], np.asarray(scores), name)

    # check_rank_response made each list empty or one row per item.
    for target, rows in (
        (message.generate_features, response.generate_features),
        (message.raw_features, response.raw_features),
    ):
        for item_id, features in zip(response.item_ids[: len(rows)], rows, strict=True):
            target[item_id] = format_debug_features(features)
    return message.SerializeToString()


def decode_pb_response(body: bytes) -> RankResponse:
    """Parses a serialized `PBResponse`, the inverse of `encode_pb_response`.

    Args:
        body: the HTTP response body.

    Returns:
        The response; outputs as arrays of their wire shape, debug features
        in item order (an empty dict for an item without any).

    Raises:
        ServingError: the bytes are not a `PBResponse`, or an output has a
            dtype this decoder does not read.
    """
    message = processor_pb2.PBResponse()
    try:
        message.ParseFromString(body)
    except DecodeError as err:
        raise ServingError(f"response is not a valid PBResponse ({err})") from err

    item_ids = list(message.item_ids)
    outputs = {
        name: _read_array_proto(array, name)
        for name, array in message.map_outputs.items()
    }
    generate = message.generate_features
    raw = message.raw_features
    return RankResponse(
        item_ids=item_ids,
        outputs=outputs,
        generate_features=(
            [parse_debug_features(generate.get(i, "")) for i in item_ids]
            if generate
            else []
        ),
        raw_features=(
            [parse_debug_features(raw.get(i, "")) for i in item_ids] if raw else []
        ),
    )


def decode_pb_feature(feature: processor_pb2.PBFeature, where: str) -> RawValue:
    """Converts one `PBFeature` to a plain Python value (see the module table).

    Args:
        feature: the wire value.
        where: the field path to name in errors.

    Returns:
        The value, or None when no field of the oneof is set.

    Raises:
        BadRequestError: a float value is NaN or infinite.
    """
    kind = feature.WhichOneof("value")
    if kind is None:
        return None
    holder = getattr(feature, kind)

    if kind in _SCALAR_KINDS:
        if kind in _FLOAT_SCALAR_KINDS:
            check_finite_scalar(holder, where)
        return holder
    element_type = kind.rsplit("_", 2)[-2] if kind.endswith("_map") else ""
    if kind.endswith("_map"):
        value = dict(holder.map_field)
        if element_type in _FLOAT_ELEMENT_TYPES:
            check_finite(value.values(), where)
        return value
    if kind.endswith("_lists"):
        rows = [list(row.features) for row in holder.lists]
        if kind.startswith(_FLOAT_ELEMENT_TYPES):
            for index, row in enumerate(rows):
                check_finite(row, f"{where}[{index}]")
        return rows
    values = list(holder.features)
    if kind.startswith(_FLOAT_ELEMENT_TYPES):
        check_finite(values, where)
    return values


def encode_pb_feature(value: RawValue, where: str) -> processor_pb2.PBFeature:
    """Converts a plain Python value to a `PBFeature`.

    Args:
        value: a scalar, a list of scalars, a list of lists, a dict of scalar
            to scalar, or None.
        where: the field path to name in errors.

    Returns:
        The wire value; None gives a `PBFeature` with nothing set.

    Raises:
        BadRequestError: the value has no `PBFeature` form.
    """
    feature = processor_pb2.PBFeature()
    try:
        if value is None:
            pass
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            setattr(feature, _scalar_type(value, where) + "_feature", value)
        elif isinstance(value, Mapping):
            key_type = _element_type(list(value.keys()), where, keys=True)
            value_type = _element_type(list(value.values()), where)
            kind = f"{key_type}_{value_type}_map"
            getattr(feature, kind).map_field.update(value)
        elif isinstance(value, list) and value and isinstance(value[0], list):
            _fill_lists(feature, value, where)
        elif isinstance(value, list):
            getattr(feature, _element_type(value, where) + "_list").features.extend(
                value
            )
        else:
            raise BadRequestError(
                f"{where} is {describe_value(value)}, which has no PBFeature form"
            )
    except (TypeError, ValueError) as err:
        raise BadRequestError(
            f"{where} cannot be encoded as a PBFeature: {err}"
        ) from err
    return feature


def format_debug_features(features: Mapping[str, str]) -> str:
    """Joins one item's debug features into the string `PBResponse` carries."""
    return FEATURE_SEPARATOR.join(
        f"{name}{NAME_VALUE_SEPARATOR}{value}" for name, value in features.items()
    )


def parse_debug_features(text: str) -> dict[str, str]:
    """Splits a string of `format_debug_features` back into name to value."""
    if not text:
        return {}
    parts = text.split(FEATURE_SEPARATOR)
    pairs = (part.partition(NAME_VALUE_SEPARATOR) for part in parts)
    return {name: value for name, _, value in pairs}


def _decode_per_item(
    features: Sequence[processor_pb2.PBFeature], where: str
) -> list[RawValue]:
    """Decodes the values of one item or context feature, one per item."""
    return [
        decode_pb_feature(feature, f"{where}[{index}]")
        for index, feature in enumerate(features)
    ]


def _scalar_type(value: str | int | float, where: str) -> str:
    """Names the widest wire type of a scalar: `string`, `long` or `double`."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "long"
    check_finite_scalar(value, where)
    return "double"


def _element_type(values: list[RawValue], where: str, keys: bool = False) -> str:
    """Names the one wire type that holds every value of a list or map."""
    types = {type(value) for value in values}
    if not types or types == {str}:
        return "string"
    if types == {int}:
        return "long"
    if types <= {int, float} and not keys:
        check_finite(values, where)
        return "double"
    part = "keys" if keys else "values"
    raise BadRequestError(
        f"{where} mixes or uses unsupported {part} "
        f"({', '.join(sorted(t.__name__ for t in types))}); use all strings, all "
        "ints" + ("" if keys else ", or all numbers")
    )


def _fill_lists(
    feature: processor_pb2.PBFeature, rows: list[RawValue], where: str
) -> None:
    """Stores a list of lists in the `<type>_lists` field that holds them all."""
    if not all(isinstance(row, list) for row in rows):
        raise BadRequestError(f"{where} mixes lists and scalars; use one or the other")
    element_type = _element_type([v for row in rows for v in row], where)
    holder = getattr(feature, element_type + "_lists")
    for row in rows:
        holder.lists.add().features.extend(row)


def _fill_array_proto(
    array: pytorch_predict_pb2.ArrayProto, values: np.ndarray, name: str
) -> None:
    """Writes an output array into an `ArrayProto`, row-major."""
    array.array_shape.dim.extend(values.shape)
    flat = values.ravel()
    if values.dtype.kind == "f":
        array.dtype = _DT.DT_FLOAT
        array.float_val.extend(flat.astype(np.float32, copy=False).tolist())
    elif values.dtype.kind in "iu":
        array.dtype = _DT.DT_INT64
        array.int64_val.extend(flat.astype(np.int64, copy=False).tolist())
    elif values.dtype.kind == "b":
        array.dtype = _DT.DT_BOOL
        array.int_val.extend(flat.astype(np.int32).tolist())
    else:
        raise ServingError(
            f"model output {name!r} has dtype {values.dtype}, which has no "
            "ArrayProto form; return floats or integers"
        )


def _read_array_proto(array: pytorch_predict_pb2.ArrayProto, name: str) -> np.ndarray:
    """Reads an `ArrayProto` into an array of its declared shape."""
    readers = {
        _DT.DT_FLOAT: (array.float_val, np.float32),
        _DT.DT_DOUBLE: (array.double_val, np.float64),
        _DT.DT_INT32: (array.int_val, np.int32),
        _DT.DT_BOOL: (array.int_val, np.bool_),
        _DT.DT_INT64: (array.int64_val, np.int64),
    }
    if array.dtype not in readers:
        raise ServingError(
            f"output {name!r} has dtype {_DT.Name(array.dtype)}, which this "
            "decoder does not read"
        )
    source, dtype = readers[array.dtype]
    values = np.asarray(source, dtype=dtype)
    shape = tuple(array.array_shape.dim)
    return values.reshape(shape) if shape else values
