"""Fuzzing the wire decoders: any input decodes or is a `BadRequestError`."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from recship.errors import BadRequestError
from recship.serving.protocol_json import decode_json_request
from recship.serving.protocol_pb import decode_pb_request, encode_pb_request
from recship.serving.protos import processor_pb2

FUZZ = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
fields = st.sampled_from(
    ["user_features", "item_ids", "item_features", "context_features", "outputs",
     "debug_level", "meta_data", "request_id", "fg_mode", "generated_features"]
)  # fmt: skip


@FUZZ
@given(body=st.binary(max_size=2000))
def test_pb_decoder_takes_any_bytes(body):
    try:
        request = decode_pb_request(body)
    except BadRequestError as err:
        assert str(err)
        return
    assert request.item_ids and all(request.item_ids)


@FUZZ
@given(
    ids=st.lists(st.text(max_size=5), max_size=5),
    level=st.integers(-(2**31), 2**31 - 1),
    mode=st.text(max_size=8),
    longs=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
    doubles=st.lists(st.floats(), max_size=5),
)
def test_pb_decoder_checks_values_and_round_trips(ids, level, mode, longs, doubles):
    message = processor_pb2.PBRequest(item_ids=ids, debug_level=level)
    message.meta_data["fg_mode"] = mode
    message.user_features["a"].long_list.features.extend(longs)
    message.user_features["b"].double_list.features.extend(doubles)
    try:
        request = decode_pb_request(message.SerializeToString())
    except BadRequestError as err:
        named = ("item_ids", "debug_level", "fg_mode", "user_features")
        assert any(word in str(err) for word in named)
        return
    again = decode_pb_request(encode_pb_request(request))
    assert again.user_features == request.user_features
    assert again.fg_mode == request.fg_mode


@FUZZ
@given(document=st.dictionaries(fields, json_values, max_size=6) | json_values)
def test_json_decoder_takes_any_document(document):
    body = json.dumps(document).encode()
    try:
        request = decode_json_request(body)
    except BadRequestError as err:
        assert str(err)
        return
    assert request.item_ids


@FUZZ
@given(body=st.binary(max_size=300))
def test_json_decoder_takes_any_bytes(body):
    try:
        decode_json_request(body)
    except BadRequestError:
        pass
