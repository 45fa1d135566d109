"""The public eas-prediction SDK against a real recship server on loopback.

The SDK (`TorchRecRequest` + `PredictClient`) runs unchanged in its own
virtual environment (`scripts/setup_eas_client.sh`, made on first use), so
these tests check the wire format with the SDK's own generated code rather
than ours.
"""

from collections.abc import Iterator

import numpy as np
import pytest

from recship.errors import ServingError
from recship.serving.app import build_app
from recship.serving.request import RankRequest, RankResponse
from recship.serving.server import ServerHandle
from recship.testing.eas import run_eas_client

SERVICE = "tzrec_rank"


class EchoRanker:
    """Scores each item len(item_id) / 100 and remembers what it was sent."""

    ready = True

    def __init__(self) -> None:
        self.seen: list[RankRequest] = []

    def rank(self, request: RankRequest) -> RankResponse:
        self.seen.append(request)
        scores = np.array([len(i) / 100 for i in request.item_ids], dtype=np.float32)
        n = len(request.item_ids)
        return RankResponse(
            item_ids=request.item_ids,
            outputs={"probs": scores, "ctr": scores * 2},
            generate_features=(
                [{"item": i, "n": str(n)} for i in request.item_ids]
                if request.debug_level >= 1
                else []
            ),
        )


@pytest.fixture(scope="module")
def ranker() -> EchoRanker:
    return EchoRanker()


@pytest.fixture(scope="module")
def server(ranker: EchoRanker) -> Iterator[ServerHandle]:
    with ServerHandle(build_app(ranker, service_name=SERVICE)) as handle:
        yield handle


def test_sdk_receives_the_score_of_every_item(server: ServerHandle) -> None:
    item_ids = ["a", "bbb", "cc", "dddd"]

    reply = run_eas_client(
        server.url,
        SERVICE,
        {"user_features": {"user_id": "u1"}, "item_ids": item_ids},
    )

    assert reply["item_ids"] == item_ids
    assert reply["shapes"] == {"probs": [4], "ctr": [4]}
    expected = np.array([len(i) / 100 for i in item_ids], dtype=np.float32)
    np.testing.assert_array_equal(np.float32(reply["outputs"]["probs"]), expected)
    np.testing.assert_array_equal(np.float32(reply["outputs"]["ctr"]), expected * 2)


def test_sdk_feature_types_arrive_as_plain_values(
    server: ServerHandle, ranker: EchoRanker
) -> None:
    request = {
        "user_features": {
            "user_id": "u1",
            "age": {"dtype": "INT", "value": 31},
            "uid_hash": {"dtype": "BIGINT", "value": 2**40},
            "weight": {"dtype": "FLOAT", "value": 0.5},
            "tags": ["x", "y"],
            "clicks": {"dtype": "LIST<INT>", "value": [1, 2]},
            "prefs": {"dtype": "MAP<STRING,DOUBLE>", "value": {"k": 0.25}},
            "by_id": {"dtype": "MAP<BIGINT,STRING>", "value": {"7": "v"}},
            "seq": [[1.0, 2.0], [3.0]],
        },
        "item_ids": ["i1", "i2"],
        "context_features": {"hour": [13], "pos": [1, 2]},
        "item_features": {"price": [9.5, 3.25]},
        "meta_data": {"scene": "home"},
    }

    run_eas_client(server.url, SERVICE, request)

    seen = ranker.seen[-1]
    assert seen.user_features == {
        "user_id": "u1",
        "age": 31,
        "uid_hash": 2**40,
        "weight": 0.5,
        "tags": ["x", "y"],
        "clicks": [1, 2],
        "prefs": {"k": 0.25},
        "by_id": {7: "v"},
        "seq": [[1.0, 2.0], [3.0]],
    }
    assert seen.item_ids == ["i1", "i2"]
    assert seen.context_features == {"hour": [13], "pos": [1, 2]}
    assert seen.item_features == {"price": [9.5, 3.25]}
    assert seen.meta_data == {"scene": "home"}
    assert seen.request_id


def test_sdk_receives_generated_features_by_item_id(server: ServerHandle) -> None:
    reply = run_eas_client(
        server.url, SERVICE, {"item_ids": ["a", "b"], "debug_level": 1}
    )
    assert set(reply["generate_features"]) == {"a", "b"}
    assert "item:b" in reply["generate_features"]["b"]


def test_sdk_sees_bad_requests_as_400_with_the_reason(server: ServerHandle) -> None:
    with pytest.raises(ServingError, match="item_ids is empty") as caught:
        run_eas_client(server.url, SERVICE, {"user_features": {"u": 1}})
    assert caught.value.status == 400


def test_sdk_sees_an_unknown_service_as_404(server: ServerHandle) -> None:
    with pytest.raises(ServingError, match="not found") as caught:
        run_eas_client(server.url, "no_such_service", {"item_ids": ["a"]})
    assert caught.value.status == 404
