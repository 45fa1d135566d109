"""Tests of the JSON rank API's request and response encoding."""

import json

import numpy as np
import pytest

from recship.errors import BadRequestError, ServingError
from recship.serving.protocol_json import (
    decode_json_request,
    encode_json_request,
    encode_json_response,
)
from recship.serving.request import RankRequest, RankResponse


def _body(**fields) -> bytes:
    document = {"item_ids": ["a", "b"], **fields}
    return json.dumps(document).encode()


def test_decode_json_request_reads_every_field() -> None:
    body = _body(
        user_features={
            "age": 31,
            "tags": ["x", "y"],
            "seq": [[1, 2], [3]],
            "weights": {"k": 0.5},
            "missing": None,
        },
        item_features={"price": [9.5, 3]},
        context_features={"hour": [13]},
        outputs=["probs"],
        debug_level=1,
        meta_data={"scene": "home"},
        request_id="r-1",
    )

    request = decode_json_request(body)

    assert request == RankRequest(
        user_features={
            "age": 31,
            "tags": ["x", "y"],
            "seq": [[1, 2], [3]],
            "weights": {"k": 0.5},
            "missing": None,
        },
        item_ids=["a", "b"],
        item_features={"price": [9.5, 3]},
        context_features={"hour": [13]},
        outputs=["probs"],
        debug_level=1,
        meta_data={"scene": "home"},
        request_id="r-1",
    )


def test_integer_item_ids_are_read_as_strings() -> None:
    assert decode_json_request(b'{"item_ids": [7, "8"]}').item_ids == ["7", "8"]


def test_json_request_round_trips() -> None:
    request = RankRequest(
        user_features={"u": [1.5, 2.5]},
        item_ids=["a"],
        item_features={"i": [{"k": 1}]},
        outputs=["p"],
        request_id="r",
    )
    assert decode_json_request(encode_json_request(request)) == request


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[1, 2]", "request body is a list"),
        (_body(extra=1), "unknown request field(s) 'extra'"),
        (b'{"item_ids": []}', "item_ids is empty"),
        (b'{"user_features": {}}', "item_ids is empty"),
        (b'{"item_ids": "a"}', "item_ids is a str"),
        (b'{"item_ids": ["a", 1.5]}', "item_ids[1] is a float"),
        (_body(user_features=[1]), "user_features is a list"),
        (_body(user_features={"f": True}), "user_features['f'] is a bool"),
        (_body(user_features={"f": [1, [2]]}), "user_features['f'][1] is a list"),
        (_body(user_features={"f": [[[1]]]}), "user_features['f'][0][0] is a list"),
        (_body(user_features={"f": {"k": [1]}}), "user_features['f']['k'] is a list"),
        (_body(item_features={"p": 1}), "item_features['p'] is an int"),
        (_body(item_features={"p": [1]}), "item_features['p'] has 1 values"),
        (_body(item_features={"p": [1, True]}), "item_features['p'][1] is a bool"),
        (_body(context_features={"h": [1, 2, 3]}), "context_features['h'] has 3"),
        (_body(outputs=[1]), "outputs[0] is an int"),
        (_body(debug_level="1"), "debug_level is a str"),
        (_body(debug_level=3), "debug_level is 3"),
        (_body(meta_data={"k": 1}), "meta_data['k'] is an int"),
        (_body(request_id=5), "request_id is an int"),
        (_body(request_id="a b"), "printable ASCII"),
        (_body(request_id="x" * 129), "1 to 128"),
    ],
)
def test_malformed_json_names_the_field(body, fragment) -> None:
    with pytest.raises(BadRequestError) as caught:
        decode_json_request(body)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"item_ids": ["a"], "user_features": {"f": NaN}}', "user_features['f']"),
        (b'{"item_ids": ["a"], "user_features": {"f": 1e999}}', "user_features['f']"),
        (
            b'{"item_ids": ["a"], "item_features": {"p": [[1.0, Infinity]]}}',
            "item_features['p'][0][1]",
        ),
        (
            b'{"item_ids": ["a"], "context_features": {"c": [[[1.0], [-Infinity]]]}}',
            "context_features['c'][0][1][0]",
        ),
        (
            b'{"item_ids": ["a"], "user_features": {"m": {"k": NaN}}}',
            "user_features['m']['k']",
        ),
    ],
)
def test_non_finite_numbers_name_the_field(body, fragment) -> None:
    with pytest.raises(BadRequestError, match="non-finite") as caught:
        decode_json_request(body)
    assert fragment in str(caught.value)


def test_encode_json_response_writes_scores_per_output() -> None:
    response = RankResponse(
        item_ids=["a", "b"],
        outputs={"probs": np.array([0.01, 0.5], dtype=np.float32)},
        model_version="3",
    )

    document = json.loads(encode_json_response(response, "r-1"))

    assert document == {
        "request_id": "r-1",
        "model_version": "3",
        "item_ids": ["a", "b"],
        "outputs": {"probs": [0.01, 0.5]},
    }
    assert np.float32(document["outputs"]["probs"][0]) == np.float32(0.01)


def test_encoded_float32_scores_are_shortest_and_parse_back_exactly() -> None:
    # Probabilities, tiny and huge magnitudes, signed zeros, subnormals.
    rng = np.random.default_rng(7)
    scores = np.concatenate(
        [
            rng.random(5000, dtype=np.float32),
            rng.standard_normal(5000).astype(np.float32)
            * np.float32(10.0) ** rng.integers(-40, 38, 5000).astype(np.float32),
            np.array([0.01, 1e-7, 3.4e38, 1e-45, 0.0, -0.0, 0.1], np.float32),
        ]
    )
    scores = scores[np.isfinite(scores)]
    response = RankResponse(
        item_ids=[str(i) for i in range(len(scores))],
        outputs={"probs": scores},
        model_version="3",
    )

    parsed = json.loads(encode_json_response(response, "r"))["outputs"]["probs"]

    # The same numbers as each float32's shortest decimal form (the form
    # Python's own repr of that decimal gives), and the same float32s.
    shortest = scores.astype(str).astype(np.float64).tolist()
    assert parsed == shortest
    np.testing.assert_array_equal(np.array(parsed, np.float32), scores)


def test_encode_json_response_includes_debug_features_when_present() -> None:
    response = RankResponse(
        item_ids=["a"],
        outputs={"p": np.array([1.0])},
        generate_features=[{"f": "1"}],
        raw_features=[{"r": "x"}],
    )
    document = json.loads(encode_json_response(response, "r"))
    assert document["generate_features"] == [{"f": "1"}]
    assert document["raw_features"] == [{"r": "x"}]


def test_non_finite_scores_become_null() -> None:
    response = RankResponse(
        item_ids=["a", "b", "c"],
        outputs={"p": np.array([np.nan, 0.5, np.inf], dtype=np.float32)},
    )
    document = json.loads(encode_json_response(response, "r"))
    assert document["outputs"]["p"] == [None, 0.5, None]


def test_debug_rows_for_other_item_count_are_a_server_error() -> None:
    response = RankResponse(
        item_ids=["a", "b"],
        outputs={"p": np.zeros(2)},
        generate_features=[{"f": "1"}],
    )
    with pytest.raises(ServingError, match="generate_features has 1 rows"):
        encode_json_response(response, "r")
