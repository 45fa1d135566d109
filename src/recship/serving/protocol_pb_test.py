"""Tests of the TorchEasyRec Processor protobuf protocol."""

import math

import numpy as np
import pytest

from recship.errors import BadRequestError, ServingError
from recship.serving.protocol_pb import (
    decode_pb_feature,
    decode_pb_request,
    decode_pb_response,
    encode_pb_feature,
    encode_pb_request,
    encode_pb_response,
    format_debug_features,
    parse_debug_features,
)
from recship.serving.protos import processor_pb2, pytorch_predict_pb2
from recship.serving.request import RankRequest, RankResponse

# (PBFeature field, how to set it, the Python value it decodes to)
FEATURE_KINDS = [
    ("int_feature", lambda f: setattr(f, "int_feature", -7), -7),
    ("long_feature", lambda f: setattr(f, "long_feature", 2**40), 2**40),
    ("string_feature", lambda f: setattr(f, "string_feature", "ab"), "ab"),
    ("float_feature", lambda f: setattr(f, "float_feature", 0.5), 0.5),
    ("double_feature", lambda f: setattr(f, "double_feature", 0.1), 0.1),
    ("int_list", lambda f: f.int_list.features.extend([1, 2]), [1, 2]),
    ("long_list", lambda f: f.long_list.features.extend([2**40]), [2**40]),
    ("string_list", lambda f: f.string_list.features.extend(["a", "b"]), ["a", "b"]),
    ("float_list", lambda f: f.float_list.features.extend([0.25]), [0.25]),
    ("double_list", lambda f: f.double_list.features.extend([0.1, 2.0]), [0.1, 2.0]),
]
_LISTS = {"int": [[1], [2, 3]], "long": [[2**40]], "string": [["a"], []]}
_LISTS.update({"float": [[0.5, 1.5]], "double": [[0.1], [0.2]]})
for _kind, _rows in _LISTS.items():
    FEATURE_KINDS.append(
        (
            f"{_kind}_lists",
            lambda f, k=_kind, rows=_rows: [
                getattr(f, f"{k}_lists").lists.add().features.extend(row)
                for row in rows
            ],
            _rows,
        )
    )
_MAP_KEYS = {"int": 3, "long": 2**40, "string": "k"}
_MAP_VALUES = {"int": 5, "long": 2**41, "string": "v", "float": 0.5, "double": 0.1}
for _key_type, _key in _MAP_KEYS.items():
    for _value_type, _value in _MAP_VALUES.items():
        FEATURE_KINDS.append(
            (
                f"{_key_type}_{_value_type}_map",
                lambda f, k=f"{_key_type}_{_value_type}_map", m={_key: _value}: getattr(
                    f, k
                ).map_field.update(m),
                {_key: _value},
            )
        )


def test_every_pbfeature_kind_is_covered() -> None:
    oneof = processor_pb2.PBFeature.DESCRIPTOR.oneofs_by_name["value"]
    assert sorted(field.name for field in oneof.fields) == sorted(
        kind for kind, _, _ in FEATURE_KINDS
    )


@pytest.mark.parametrize(("kind", "fill", "expected"), FEATURE_KINDS)
def test_decode_pb_feature_gives_plain_python_value(kind, fill, expected) -> None:
    feature = processor_pb2.PBFeature()
    fill(feature)

    value = decode_pb_feature(feature, "user_features['x']")

    assert feature.WhichOneof("value") == kind
    assert value == expected


@pytest.mark.parametrize(("kind", "fill", "expected"), FEATURE_KINDS)
def test_pbfeature_kinds_round_trip_through_a_request(kind, fill, expected) -> None:
    message = processor_pb2.PBRequest(item_ids=["i1", "i2"])
    fill(message.user_features["u"])
    fill(message.item_features["it"].features.add())
    fill(message.item_features["it"].features.add())
    fill(message.context_features["ctx"].features.add())

    request = decode_pb_request(message.SerializeToString())
    again = decode_pb_request(encode_pb_request(request))

    for decoded in (request, again):
        assert decoded.user_features == {"u": expected}
        assert decoded.item_features == {"it": [expected, expected]}
        assert decoded.context_features == {"ctx": [expected]}


def test_decode_pb_feature_with_nothing_set_is_none() -> None:
    assert decode_pb_feature(processor_pb2.PBFeature(), "x") is None


def test_decode_pb_request_reads_every_request_field() -> None:
    message = processor_pb2.PBRequest(
        debug_level=2,
        item_ids=["a", "b", "c"],
        faiss_neigh_num=10,
        meta_data={"scene": "home"},
    )
    message.user_features["uid"].string_feature = "u1"
    for value in (1, 2, 3):
        message.item_features["price"].features.add().long_feature = value
    message.context_features["hour"].features.add().int_feature = 13

    request = decode_pb_request(message.SerializeToString())

    assert request == RankRequest(
        user_features={"uid": "u1"},
        item_ids=["a", "b", "c"],
        item_features={"price": [1, 2, 3]},
        context_features={"hour": [13]},
        debug_level=2,
        meta_data={"scene": "home"},
    )


def test_encode_pb_feature_picks_the_widest_kind() -> None:
    cases = [
        (3, "long_feature"),
        (0.5, "double_feature"),
        ("s", "string_feature"),
        ([1, 2], "long_list"),
        ([1, 2.5], "double_list"),
        ([["a"], ["b"]], "string_lists"),
        ({1: "x"}, "long_string_map"),
        ({"k": 2}, "string_long_map"),
        ({"k": 2.5}, "string_double_map"),
    ]
    for value, kind in cases:
        assert encode_pb_feature(value, "x").WhichOneof("value") == kind, value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (True, "user_features['bad']"),
        ([1, "a"], "mixes"),
        ([[1], 2], "mixes lists and scalars"),
        ({1: "a", "b": "c"}, "keys"),
        (2**70, "cannot be encoded"),
        (math.nan, "non-finite"),
        (object(), "no PBFeature form"),
    ],
)
def test_encode_pb_feature_rejects_values_without_a_wire_form(value, fragment) -> None:
    with pytest.raises(BadRequestError, match="user_features") as caught:
        encode_pb_feature(value, "user_features['bad']")
    assert fragment in str(caught.value)


def test_undecodable_bytes_are_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="not a valid PBRequest"):
        decode_pb_request(b"\xff\xff\xff\xff")


def test_empty_item_ids_are_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="item_ids is empty"):
        decode_pb_request(processor_pb2.PBRequest().SerializeToString())


def test_empty_item_id_names_its_index() -> None:
    message = processor_pb2.PBRequest(item_ids=["a", ""])
    with pytest.raises(BadRequestError, match=r"item_ids\[1\]"):
        decode_pb_request(message.SerializeToString())


def test_item_features_of_wrong_length_name_the_feature() -> None:
    message = processor_pb2.PBRequest(item_ids=["a", "b", "c"])
    message.item_features["price"].features.add().long_feature = 1
    with pytest.raises(BadRequestError, match=r"item_features\['price'\] has 1"):
        decode_pb_request(message.SerializeToString())


def test_context_features_take_one_or_n_values_only() -> None:
    message = processor_pb2.PBRequest(item_ids=["a", "b", "c"])
    for value in (1, 2):
        message.context_features["hour"].features.add().long_feature = value
    with pytest.raises(BadRequestError, match=r"context_features\['hour'\] has 2"):
        decode_pb_request(message.SerializeToString())


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_name_the_field_and_item(bad) -> None:
    message = processor_pb2.PBRequest(item_ids=["a", "b"])
    message.item_features["score"].features.add().double_feature = 1.0
    message.item_features["score"].features.add().double_list.features.extend(
        [1.0, bad]
    )
    with pytest.raises(BadRequestError, match=r"item_features\['score'\]\[1\]"):
        decode_pb_request(message.SerializeToString())


def test_non_finite_map_value_names_the_user_feature() -> None:
    message = processor_pb2.PBRequest(item_ids=["a"])
    message.user_features["m"].string_float_map.map_field["k"] = math.nan
    with pytest.raises(BadRequestError, match=r"user_features\['m'\]"):
        decode_pb_request(message.SerializeToString())


def test_debug_level_out_of_range_is_a_bad_request() -> None:
    message = processor_pb2.PBRequest(item_ids=["a"], debug_level=7)
    with pytest.raises(BadRequestError, match="debug_level is 7"):
        decode_pb_request(message.SerializeToString())


def test_encode_pb_response_puts_scores_in_map_outputs_as_float_arrays() -> None:
    response = RankResponse(
        item_ids=["a", "bb"],
        outputs={"probs": np.array([0.25, 0.5], dtype=np.float32)},
        generate_features=[{"f1": "1", "f2": "x"}, {"f1": "2", "f2": "y"}],
    )

    message = processor_pb2.PBResponse()
    message.ParseFromString(encode_pb_response(response))

    probs = message.map_outputs["probs"]
    assert probs.dtype == pytorch_predict_pb2.DT_FLOAT
    assert list(probs.array_shape.dim) == [2]
    assert list(probs.float_val) == [0.25, 0.5]
    assert list(message.item_ids) == ["a", "bb"]
    assert parse_debug_features(message.generate_features["bb"]) == {
        "f1": "2",
        "f2": "y",
    }
    assert not message.raw_features


def test_pb_response_round_trips_shapes_and_debug_features() -> None:
    response = RankResponse(
        item_ids=["a", "b"],
        outputs={
            "probs": np.array([0.1, 0.9], dtype=np.float32),
            "multi": np.arange(6, dtype=np.float32).reshape(2, 3),
            "ids": np.array([4, 5], dtype=np.int64),
        },
        raw_features=[{"r": "1"}, {"r": "2"}],
    )

    decoded = decode_pb_response(encode_pb_response(response))

    assert decoded.item_ids == ["a", "b"]
    for name, values in response.outputs.items():
        np.testing.assert_array_equal(decoded.outputs[name], values)
        assert decoded.outputs[name].dtype == values.dtype
    assert decoded.raw_features == [{"r": "1"}, {"r": "2"}]
    assert decoded.generate_features == []


def test_output_with_wrong_item_count_is_a_server_error() -> None:
    response = RankResponse(item_ids=["a", "b"], outputs={"p": np.zeros(3)})
    with pytest.raises(ServingError, match=r"'p' has shape \[3\]") as caught:
        encode_pb_response(response)
    assert caught.value.status == 500


def test_debug_features_format_round_trips() -> None:
    features = {"a": "1", "b": "x:y", "c": ""}
    assert parse_debug_features(format_debug_features(features)) == features
    assert parse_debug_features("") == {}


def test_wire_field_numbers_match_the_public_protocol() -> None:
    # The eas-prediction SDK parses our bytes with its own generated code, so
    # these numbers are fixed; tests/test_eas_sdk.py checks the SDK end to end.
    def numbers(message):
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(processor_pb2.PBRequest) == {
        "debug_level": 1,
        "user_features": 2,
        "item_ids": 3,
        "context_features": 4,
        "faiss_neigh_num": 5,
        "item_features": 6,
        "meta_data": 7,
    }
    assert numbers(processor_pb2.PBResponse) == {
        "map_outputs": 1,
        "generate_features": 2,
        "raw_features": 3,
        "item_ids": 4,
        "pass_through_data": 5,
    }
    assert numbers(pytorch_predict_pb2.ArrayProto) == {
        "dtype": 1,
        "array_shape": 2,
        "float_val": 3,
        "double_val": 4,
        "int_val": 5,
        "string_val": 6,
        "int64_val": 7,
    }
    assert processor_pb2.DESCRIPTOR.package == "com.alibaba.pairec.processor"
    assert pytorch_predict_pb2.DESCRIPTOR.package == "pytorch.eas"
