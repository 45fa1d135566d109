"""Tests of the HTTP app: routing, error mapping, admission, readiness.

Each app runs under a real uvicorn on a loopback port (`ServerHandle`), which
also keeps these tests off starlette's TestClient and its extra dependency.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest

from recship.serving.app import build_app
from recship.serving.protocol_pb import decode_pb_response, encode_pb_request
from recship.serving.protos import processor_pb2
from recship.serving.request import RankRequest, RankResponse
from recship.serving.server import ServerHandle

PB_URL = "/api/predict/recship"


class LengthRanker:
    """Scores each item len(item_id) / 100; fails on the item id "boom"."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.seen: list[RankRequest] = []

    def rank(self, request: RankRequest) -> RankResponse:
        self.seen.append(request)
        if "boom" in request.item_ids:
            raise RuntimeError("ranker exploded")
        scores = np.array([len(i) / 100 for i in request.item_ids], dtype=np.float32)
        return RankResponse(
            item_ids=request.item_ids, outputs={"probs": scores}, model_version="7"
        )


class BlockedRanker(LengthRanker):
    """Holds every request until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def rank(self, request: RankRequest) -> RankResponse:
        self.entered.release()
        self.release.wait(timeout=30)
        return super().rank(request)


@pytest.fixture
def ranker() -> LengthRanker:
    return LengthRanker()


@contextmanager
def _serve(app) -> Iterator[httpx.Client]:
    """Serves `app` on loopback; yields a client bound to it."""
    with ServerHandle(app) as server:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client:
            yield client


@pytest.fixture
def client(ranker: LengthRanker) -> Iterator[httpx.Client]:
    with _serve(build_app(ranker, max_body_bytes=4096)) as http:
        yield http


def _pb_body(item_ids: list[str]) -> bytes:
    return encode_pb_request(RankRequest(user_features={"u": 1}, item_ids=item_ids))


def test_protobuf_route_scores_every_item(client: httpx.Client) -> None:
    reply = client.post(PB_URL, content=_pb_body(["a", "bbb"]))

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    response = decode_pb_response(reply.content)
    assert response.item_ids == ["a", "bbb"]
    np.testing.assert_array_equal(
        response.outputs["probs"], np.array([0.01, 0.03], dtype=np.float32)
    )


def test_protobuf_route_passes_the_request_id_to_the_ranker(
    client: httpx.Client, ranker: LengthRanker
) -> None:
    reply = client.post(
        PB_URL, content=_pb_body(["a"]), headers={"X-Request-Id": "req-42"}
    )
    assert reply.headers["x-request-id"] == "req-42"
    assert ranker.seen[-1].request_id == "req-42"


def test_json_route_scores_every_item(client: httpx.Client) -> None:
    reply = client.post("/v1/rank", json={"item_ids": ["a", "bb"], "request_id": "r1"})

    assert reply.status_code == 200
    assert reply.json() == {
        "request_id": "r1",
        "model_version": "7",
        "item_ids": ["a", "bb"],
        "outputs": {"probs": [0.01, 0.02]},
    }
    assert reply.headers["x-request-id"] == "r1"


def test_unknown_service_is_404(client: httpx.Client) -> None:
    reply = client.post("/api/predict/other", content=_pb_body(["a"]))
    assert reply.status_code == 404
    assert "'other' not found" in reply.text


def test_bad_protobuf_is_400_with_the_message_as_text(client: httpx.Client) -> None:
    reply = client.post(PB_URL, content=b"\xff\xff\xff")
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert "not a valid PBRequest" in reply.text


def test_bad_protobuf_field_is_400_naming_it(client: httpx.Client) -> None:
    message = processor_pb2.PBRequest(item_ids=["a", "b"])
    message.item_features["price"].features.add().long_feature = 1
    reply = client.post(PB_URL, content=message.SerializeToString())
    assert reply.status_code == 400
    assert "item_features['price'] has 1 values" in reply.text


def test_bad_json_is_400_with_error_and_request_id(client: httpx.Client) -> None:
    reply = client.post(
        "/v1/rank", content=b'{"item_ids": []}', headers={"X-Request-Id": "r9"}
    )
    assert reply.status_code == 400
    assert reply.json() == {
        "error": "item_ids is empty; send at least one item id",
        "request_id": "r9",
    }


@pytest.mark.parametrize("url", [PB_URL, "/v1/rank"])
def test_body_over_the_limit_is_413(client: httpx.Client, url: str) -> None:
    reply = client.post(url, content=b"x" * 5000)
    assert reply.status_code == 413
    assert "over the limit of 4096 bytes" in reply.text


def test_streamed_body_over_the_limit_is_413(client: httpx.Client) -> None:
    # No Content-Length: the limit is enforced while reading.
    chunks = iter([b"x" * 3000, b"x" * 3000])
    reply = client.post("/v1/rank", content=chunks)
    assert reply.status_code == 413


def test_ranker_failure_is_500_and_the_server_keeps_serving(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="recship.serving.app"):
        failed = client.post("/v1/rank", json={"item_ids": ["boom"]})
    again = client.post("/v1/rank", json={"item_ids": ["ok"]})

    assert failed.status_code == 500
    assert "internal error" in failed.json()["error"]
    assert "ranker exploded" not in failed.text
    assert any("ranker exploded" in (r.exc_text or "") for r in caplog.records)
    assert again.status_code == 200
    pb_failed = client.post(PB_URL, content=_pb_body(["boom"]))
    assert pb_failed.status_code == 500


def test_every_response_carries_a_request_id(client: httpx.Client) -> None:
    for reply in (
        client.get("/health"),
        client.get("/ready"),
        client.get("/openapi.json"),
        client.get("/no/such/route"),
        client.post("/api/predict/other", content=b""),
    ):
        assert len(reply.headers["x-request-id"]) >= 16, reply.url


def test_unusable_incoming_request_id_is_replaced(client: httpx.Client) -> None:
    reply = client.get("/health", headers={"X-Request-Id": "x" * 500})
    assert reply.headers["x-request-id"] != "x" * 500


def test_health_is_200_and_ready_follows_the_ranker() -> None:
    ranker = LengthRanker(ready=False)
    with _serve(build_app(ranker)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 503

        ranker.ready = True

        assert client.get("/ready").status_code == 200
        assert client.get("/ready").json() == {"ready": True}


def test_openapi_document_describes_the_json_api(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "/v1/rank" in document["paths"]


def test_full_queue_answers_503_at_once() -> None:
    ranker = BlockedRanker()
    app = build_app(ranker, worker_threads=1, max_queue_size=1)
    results: list[int] = []

    with _serve(app) as client:

        def post() -> None:
            results.append(
                client.post("/v1/rank", json={"item_ids": ["a"]}).status_code
            )

        # One request runs (blocked in the ranker), one waits in the queue.
        running = threading.Thread(target=post)
        running.start()
        assert ranker.entered.acquire(timeout=10)
        queued = threading.Thread(target=post)
        queued.start()
        _wait_for(lambda: app.state.admission.in_flight == 2)

        started = time.monotonic()
        refused = client.post("/v1/rank", json={"item_ids": ["a"]})
        refused_pb = client.post(PB_URL, content=_pb_body(["a"]))
        refused_in_s = time.monotonic() - started

        ranker.release.set()
        running.join(10)
        queued.join(10)

    assert refused.status_code == 503
    assert "at capacity" in refused.json()["error"]
    assert refused_pb.status_code == 503
    assert refused_in_s < 5  # at once, not after the blocked work
    assert results == [200, 200]
    assert app.state.admission.in_flight == 0


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_app_rejects_impossible_pool_settings() -> None:
    from recship.errors import ConfigError

    with pytest.raises(ConfigError, match="worker_threads=0"):
        build_app(LengthRanker(), worker_threads=0)


def test_json_reply_is_compact_json(client: httpx.Client) -> None:
    reply = client.post("/v1/rank", json={"item_ids": ["a"]})
    assert json.loads(reply.content)["item_ids"] == ["a"]
