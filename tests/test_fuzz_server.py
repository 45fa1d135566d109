"""Fuzzing a real server (tiny model, item store) with hypothesis.

Whatever arrives (random bytes, protobuf requests with values of every kind,
NaN and infinities, huge or empty lists, duplicated or odd item ids, unknown
features, random JSON), the answer is a 200 that scores every item or a 4xx
whose message says what is wrong; never a 5xx, a hang or a dead worker.
"""

import json
import math
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recship.serving.protocol_pb import decode_pb_response
from recship.serving.protos import processor_pb2
from recship.serving.server import ServerHandle
from recship.serving.settings import ServiceSettings
from recship.serving.supervisor import build_service_app

PB_URL = "/api/predict/recship"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Real raw columns of the tiny model, plus names it does not know.
FEATURES = ["user_id", "age_level", "cms_segid", "adgroup_id", "cate_id", "brand",
            "price", "pid", "click_50_seq__adgroup_id", "click_50_seq__brand",
            "no_such_feature", ""]  # fmt: skip

ints32 = st.integers(-(2**31), 2**31 - 1)
ints64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
doubles = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(max_size=30)
item_ids = st.one_of(
    st.sampled_from(["388669", "777811", "1", "0", "-5", "", " ", "x|y", "1e9"]),
    st.text(max_size=12),
)


@pytest.fixture(scope="module")
def client(tiny_export) -> Iterator[httpx.Client]:
    world, export_dir = tiny_export
    options = ServiceSettings(
        model_path=str(export_dir),
        item_table=world.data["items"],
        item_id_column="adgroup_id",
        warmup_rounds=0,
        max_body_bytes=1 << 20,
    )
    with ServerHandle(build_service_app(options)) as server:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as http:
            yield http
        # The server is still alive after all of it.
        assert httpx.get(server.url + "/health").status_code == 200


@st.composite
def pb_features(draw) -> processor_pb2.PBFeature:
    """A PBFeature of any kind, with any values."""
    feature = processor_pb2.PBFeature()
    kind = draw(st.sampled_from(["none", "int", "long", "string", "float", "double",
                                 "long_list", "string_list", "double_list",
                                 "float_lists", "long_lists", "string_long_map",
                                 "long_double_map"]))  # fmt: skip
    small = {"max_size": draw(st.sampled_from([0, 3, 60]))}
    if kind == "int":
        feature.int_feature = draw(ints32)
    elif kind == "long":
        feature.long_feature = draw(ints64)
    elif kind == "string":
        feature.string_feature = draw(texts)
    elif kind == "float":
        feature.float_feature = draw(floats)
    elif kind == "double":
        feature.double_feature = draw(doubles)
    elif kind == "long_list":
        feature.long_list.features.extend(draw(st.lists(ints64, **small)))
    elif kind == "string_list":
        feature.string_list.features.extend(draw(st.lists(texts, **small)))
    elif kind == "double_list":
        feature.double_list.features.extend(draw(st.lists(doubles, **small)))
    elif kind == "float_lists":
        for row in draw(st.lists(st.lists(floats, max_size=4), max_size=4)):
            feature.float_lists.lists.add().features.extend(row)
    elif kind == "long_lists":
        for row in draw(st.lists(st.lists(ints64, max_size=4), max_size=4)):
            feature.long_lists.lists.add().features.extend(row)
    elif kind == "string_long_map":
        feature.string_long_map.map_field.update(
            draw(st.dictionaries(texts, ints64, max_size=3))
        )
    elif kind == "long_double_map":
        feature.long_double_map.map_field.update(
            draw(st.dictionaries(ints64, doubles, max_size=3))
        )
    return feature


@st.composite
def pb_requests(draw) -> processor_pb2.PBRequest:
    """A PBRequest with random items and features of every kind."""
    ids = draw(st.lists(item_ids, max_size=draw(st.sampled_from([0, 5, 300]))))
    message = processor_pb2.PBRequest(
        item_ids=ids, debug_level=draw(st.integers(-1, 3))
    )
    for name in draw(st.lists(st.sampled_from(FEATURES), max_size=5)):
        message.user_features[name].CopyFrom(draw(pb_features()))
    for field_name in ("item_features", "context_features"):
        for name in draw(st.lists(st.sampled_from(FEATURES), max_size=3)):
            count = draw(st.sampled_from([1, len(ids), len(ids) + 1]))
            values = draw(st.lists(pb_features(), min_size=count, max_size=count))
            getattr(message, field_name)[name].features.extend(values)
    if draw(st.booleans()):
        message.meta_data["fg_mode"] = draw(st.sampled_from(["normal", "bypass", "x"]))
    return message


def check_answer(reply: httpx.Response, num_items: int | None) -> None:
    """A 200 that scores `num_items` items, or a 4xx with a message."""
    assert reply.status_code < 500, reply.text
    if reply.status_code == 200:
        return
    assert 400 <= reply.status_code < 500
    assert reply.text.strip(), "a refusal must say why"


@FUZZ
@given(body=st.binary(max_size=3000))
def test_random_bytes_on_the_protobuf_route(client, body):
    check_answer(client.post(PB_URL, content=body), None)


@FUZZ
@given(message=pb_requests())
def test_random_protobuf_requests(client, message):
    reply = client.post(PB_URL, content=message.SerializeToString())
    check_answer(reply, len(message.item_ids))
    if reply.status_code == 200:
        response = decode_pb_response(reply.content)
        assert response.item_ids == list(message.item_ids)
        assert all(len(v) == len(message.item_ids) for v in response.outputs.values())


json_scalars = st.one_of(
    st.none(), st.booleans(), ints64, st.integers(), st.floats(), texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def json_requests(draw) -> dict:
    """JSON API documents: well-formed fields with values of any kind, and
    fields holding the wrong kind."""
    ids = draw(st.lists(item_ids | ints64 | json_scalars, max_size=20))
    document = {"item_ids": ids}
    names = st.sampled_from(FEATURES)
    document["user_features"] = draw(st.dictionaries(names, json_values, max_size=4))
    per_item = st.lists(json_values, min_size=len(ids), max_size=len(ids))
    document["item_features"] = draw(st.dictionaries(names, per_item, max_size=2))
    document["context_features"] = draw(
        st.dictionaries(names, st.lists(json_values, max_size=2), max_size=2)
    )
    for key in draw(
        st.lists(
            st.sampled_from(
                [
                    "outputs",
                    "debug_level",
                    "meta_data",
                    "request_id",
                    "fg_mode",
                    "generated_features",
                    "unknown_field",
                ]  # fmt: skip
            ),
            max_size=3,
        )
    ):
        document[key] = draw(json_values)
    return document


@FUZZ
@given(document=json_requests())
def test_random_json_requests(client, document):
    # Python's json writes NaN and Infinity, which a JSON parser may refuse.
    body = json.dumps(document).encode()
    reply = client.post("/v1/rank", content=body)
    check_answer(reply, None)
    if reply.status_code == 200:
        assert len(reply.json()["outputs"]["probs"]) == len(document["item_ids"])
    else:
        assert reply.json()["error"]


@FUZZ
@given(body=st.binary(max_size=500) | st.text(max_size=200).map(str.encode))
def test_random_bytes_on_the_json_route(client, body):
    check_answer(client.post("/v1/rank", content=body), None)


@settings(FUZZ, max_examples=25)
@given(
    values=st.lists(st.floats() | ints64 | texts | st.none(), min_size=1, max_size=5)
)
def test_every_value_kind_in_every_feature(client, values):
    """One request per value kind per real feature, all items duplicated."""
    for name in FEATURES[:10]:
        for value in values:
            document = {
                "item_ids": ["388669", "388669", "777811"],
                "user_features": {name: value},
                "item_features": {name: [value, value, value]},
            }
            body = json.dumps(document).encode()
            reply = client.post("/v1/rank", content=body)
            check_answer(reply, 3)
            if reply.status_code == 200:
                probs = reply.json()["outputs"]["probs"]
                assert len(probs) == 3 and probs[0] == probs[1]
                assert all(p is None or math.isfinite(p) for p in probs)
