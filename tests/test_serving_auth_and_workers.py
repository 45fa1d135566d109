"""Request signing (with the public eas-prediction SDK) and several server
processes sharing one port."""

import os
import re
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from recship.errors import ServingError
from recship.serving.app import build_app
from recship.serving.auth import Authenticator, sign_request
from recship.serving.metrics import ServingMetrics
from recship.serving.operations import Operations
from recship.serving.protocol_pb import encode_pb_request
from recship.serving.request import RankRequest, RankResponse
from recship.serving.server import ServerHandle
from recship.serving.settings import ServiceSettings
from recship.serving.supervisor import Supervisor
from recship.testing.eas import run_eas_client

SERVICE = "signed"
TOKEN = "s3cret-token"
PB_PATH = f"/api/predict/{SERVICE}"
DATE = "Mon, 01 Jan 2024 00:00:00 GMT"


class LengthRanker:
    ready = True

    def rank(self, request: RankRequest) -> RankResponse:
        scores = np.array([len(i) / 100 for i in request.item_ids], dtype=np.float32)
        return RankResponse(item_ids=request.item_ids, outputs={"probs": scores})


@pytest.fixture(scope="module")
def signed_server() -> Iterator[ServerHandle]:
    operations = Operations(
        authenticator=Authenticator(TOKEN), metrics=ServingMetrics("1")
    )
    app = build_app(LengthRanker(), service_name=SERVICE, operations=operations)
    with ServerHandle(app) as server:
        yield server


def test_sdk_with_the_token_is_answered(signed_server):
    reply = run_eas_client(
        signed_server.url, SERVICE, {"item_ids": ["ab", "abc"], "token": TOKEN}
    )
    np.testing.assert_allclose(reply["outputs"]["probs"], [0.02, 0.03], rtol=1e-6)


def test_sdk_with_a_wrong_token_gets_401(signed_server):
    with pytest.raises(ServingError, match="signature does not match") as caught:
        run_eas_client(signed_server.url, SERVICE, {"item_ids": ["a"], "token": "x"})
    assert caught.value.status == 401


def test_unsigned_requests_get_401_on_both_protocols(signed_server):
    body = encode_pb_request(RankRequest(item_ids=["a"]))
    pb = httpx.post(signed_server.url + PB_PATH, content=body)
    js = httpx.post(signed_server.url + "/v1/rank", json={"item_ids": ["a"]})
    assert pb.status_code == 401 and "Authorization" in pb.text
    assert js.status_code == 401 and "Authorization" in js.json()["error"]


def test_signed_json_and_tampered_bodies(signed_server):
    body = b'{"item_ids": ["abcd"]}'
    headers = sign_request(
        TOKEN, path="/v1/rank", body=body, content_type="application/json", date=DATE
    )
    good = httpx.post(signed_server.url + "/v1/rank", content=body, headers=headers)
    tampered = httpx.post(
        signed_server.url + "/v1/rank", content=b'{"item_ids": ["x"]}', headers=headers
    )
    other_path = httpx.post(signed_server.url + PB_PATH, content=body, headers=headers)
    assert good.status_code == 200 and good.json()["outputs"]["probs"] == [0.04]
    assert tampered.status_code == 401 and "Content-MD5" in tampered.json()["error"]
    assert other_path.status_code == 401


def test_health_ready_and_metrics_stay_open(signed_server):
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(signed_server.url + path).status_code == 200
    metrics = httpx.get(signed_server.url + "/metrics").text
    assert re.search(
        r'recship_requests_total\{protocol="pb",status="401"\} [1-9]', metrics
    )


def test_two_worker_processes_answer_on_one_port(tiny_export):
    world, export_dir = tiny_export
    settings = ServiceSettings(
        model_path=str(export_dir),
        item_table=world.data["items"],
        item_id_column="adgroup_id",
        port=0,
        workers=2,
        warmup_rounds=0,
    )
    supervisor = Supervisor(settings)
    supervisor.start()
    try:
        pids = _ready_pids(supervisor.url, want=2, timeout_s=180)
        body = encode_pb_request(RankRequest(item_ids=["1", "2", "3"]))
        answered = 0
        for _ in range(20):
            with httpx.Client(base_url=supervisor.url) as client:  # new connection
                reply = client.post("/api/predict/recship", content=body)
                assert reply.status_code == 200
                answered += 1
        metrics = httpx.get(supervisor.url + "/metrics").text
    finally:
        supervisor.stop()

    assert len(pids) == 2 and os.getpid() not in pids
    total = re.search(
        r'recship_requests_total\{protocol="pb",status="200"\} ([0-9.]+)', metrics
    )
    # Any worker's /metrics sums over both processes.
    assert total is not None and float(total.group(1)) == answered


def _ready_pids(url: str, want: int, timeout_s: float) -> set[int]:
    """Pids seen on /health over fresh connections once /ready answers 200,
    until `want` distinct ones are seen."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(pids) < want:
        assert time.monotonic() < deadline, f"only saw worker pids {pids}"
        try:
            with httpx.Client(base_url=url, timeout=5) as client:
                if client.get("/ready").status_code == 200:
                    pids.add(client.get("/health").json()["pid"])
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return pids
