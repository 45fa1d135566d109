"""Serving operations on a real tiny model behind a real server.

Warm-up before readiness, request and slow-request logs with replay,
Prometheus metrics, the body-size limit, debug levels and output selection
on both protocols, and `fg_mode: bypass`.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import numpy as np
import pytest

from recship.data.reader import read_table
from recship.serving.app import build_app
from recship.serving.operations import Operations, build_operations
from recship.serving.protocol_pb import decode_pb_response, encode_pb_request
from recship.serving.request import RankRequest
from recship.serving.server import ServerHandle
from recship.serving.service import build_ranker
from recship.serving.settings import ServiceSettings
from recship.serving.supervisor import build_service_app, service_options
from recship.tools.replay import replay_requests

PB_URL = "/api/predict/recship"
USER = ["user_id", "cms_segid", "age_level", "click_50_seq__adgroup_id",
        "click_50_seq__cate_id", "click_50_seq__brand"]  # fmt: skip


@contextmanager
def serving(app) -> Iterator[httpx.Client]:
    """Serves `app` on loopback until ready; yields a client bound to it."""
    with ServerHandle(app) as server:
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
            deadline = time.monotonic() + 120
            while client.get("/ready").status_code != 200:
                assert time.monotonic() < deadline, "server never became ready"
                time.sleep(0.05)
            yield client


@pytest.fixture(scope="module")
def settings(tiny_export) -> ServiceSettings:
    world, export_dir = tiny_export
    return ServiceSettings(
        model_path=str(export_dir),
        item_table=world.data["items"],
        item_id_column="adgroup_id",
        item_empty_score=-1.0,
        warmup_item_counts=[1, 10],
        warmup_rounds=1,
    )


@pytest.fixture(scope="module")
def rows(tiny_export):
    world, _ = tiny_export
    return read_table(world.data["eval"], "ParquetDataset")


def rank_request(rows, count: int = 5, **extra) -> RankRequest:
    row = rows.slice(0, 1).to_pylist()[0]
    return RankRequest(
        user_features={c: row[c] for c in USER if row[c] is not None},
        item_ids=[str(v) for v in rows.column("adgroup_id").to_pylist()[:count]],
        context_features={"pid": [row["pid"]]},
        **extra,
    )


def json_body(request: RankRequest) -> dict:
    return {
        "user_features": request.user_features,
        "item_ids": request.item_ids,
        "context_features": request.context_features,
        "outputs": request.outputs,
        "debug_level": request.debug_level,
    }


@pytest.fixture(scope="module")
def logged(settings, tmp_path_factory):
    """A server logging every request, calling every request slow, saving
    slow ones and the first two requests for warm-up."""
    root = tmp_path_factory.mktemp("logged")
    logged_settings = replace(
        settings,
        request_log_path=str(root / "log"),
        long_request_threshold=0.0001,
        save_long_request=True,
        warmup_data_path=str(root / "warmup"),
        warmup_pb_files_count=2,
    )
    app = build_service_app(logged_settings)
    with serving(app) as client:
        yield client, app, root, logged_settings


def test_readiness_waits_for_the_warm_up(settings):
    ranker = build_ranker(service_options(settings))
    release = threading.Event()
    operations = Operations(warmup=lambda: release.wait(30))
    with ServerHandle(build_app(ranker, operations=operations)) as server:
        assert httpx.get(server.url + "/health").status_code == 200
        assert httpx.get(server.url + "/ready").status_code == 503

        release.set()
        operations.wait_warm(30)

        assert httpx.get(server.url + "/ready").status_code == 200


def test_warm_up_ranks_every_size_before_ready(settings):
    ranker = build_ranker(service_options(settings))
    sizes = []
    rank = ranker.rank
    threads = set()
    ranker.rank = lambda request, **kw: (
        threads.add(threading.current_thread().name)
        or sizes.append(len(request.item_ids))
        or rank(request, **kw)
    )
    warm = replace(settings, warmup_item_counts=[1, 7, 33], warmup_rounds=2)
    operations = build_operations(warm, ranker)
    app = build_app(ranker, operations=operations)
    with serving(app):
        # 2 rounds, each through the JSON and the PB route's own path.
        assert sorted(sizes) == [1] * 4 + [7] * 4 + [33] * 4
    # On the admission pool's threads, where live requests run.
    assert threads and all(name.startswith("recship-rank") for name in threads)


def test_live_requests_are_saved_and_warm_the_next_start(logged, rows):
    client, app, root, logged_settings = logged
    for count in (3, 4, 5):
        body = encode_pb_request(rank_request(rows, count))
        assert client.post(PB_URL, content=body).status_code == 200
    app.state.operations.request_log.flush()

    saved = sorted((root / "warmup").glob("live-*.pb"))
    assert len(saved) == 2

    ranker = build_ranker(service_options(logged_settings))
    sizes = []
    rank = ranker.rank
    ranker.rank = lambda request, **kw: (
        sizes.append(len(request.item_ids)) or rank(request)
    )
    warm = replace(logged_settings, warmup_cnt_per_file=3, warmup_item_counts=[])
    build_operations(warm, ranker).warmup()
    assert sizes.count(3) + sizes.count(4) + sizes.count(5) >= 6


def test_request_log_lines_have_stages_and_slow_requests_replay(logged, rows):
    client, app, root, _ = logged
    reply = client.post(PB_URL, content=encode_pb_request(rank_request(rows, 6)))
    request_id = reply.headers["x-request-id"]
    client.post("/v1/rank", json={"item_ids": []})
    app.state.operations.request_log.flush()

    lines = [
        json.loads(line)
        for path in (root / "log").glob("requests-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    mine = next(line for line in lines if line["request_id"] == request_id)
    assert mine["status"] == 200 and mine["items"] == 6 and mine["slow"] is True
    assert set(mine["stages_ms"]) == {"parse", "features", "fg", "model", "respond"}
    assert mine["model_version"] == "export"
    assert any(line["status"] == 400 and line["protocol"] == "json" for line in lines)

    saved = root / "log" / "long_requests"
    assert any(p.name.endswith(f"{request_id}.pb") for p in saved.iterdir())
    url = str(client.base_url).rstrip("/") + PB_URL
    count = len(list(saved.iterdir()))
    report = replay_requests(saved, url, concurrency=2)
    # The 400 request was saved too (it was slow); replaying it gives 400.
    assert report.statuses[200] >= 1
    assert set(report.statuses) <= {200, 400}
    assert report.sent == count


def test_metrics_count_requests_stages_items_and_model(logged, rows):
    client, _, _, _ = logged
    client.post(PB_URL, content=encode_pb_request(rank_request(rows, 8)))
    client.post(PB_URL, content=b"\xff\xff not a protobuf")

    text = client.get("/metrics").text

    assert 'recship_requests_total{protocol="pb",status="200"}' in text
    assert 'recship_requests_total{protocol="pb",status="400"}' in text
    for stage in ("parse", "features", "fg", "model", "respond"):
        assert f'recship_stage_latency_seconds_count{{stage="{stage}"}}' in text
    assert "recship_request_items_bucket" in text
    assert "recship_queue_depth 0.0" in text
    assert 'recship_model_info{version="export"} 1.0' in text
    assert 'recship_feature_store_state{field="items"' in text


def test_body_over_the_limit_is_refused_with_413(settings, rows):
    small_body = encode_pb_request(rank_request(rows, 1))
    big_body = encode_pb_request(rank_request(rows, 200))
    assert len(small_body) < 1000 < len(big_body)
    app = build_service_app(replace(settings, max_body_bytes=1000, warmup_rounds=0))
    with serving(app) as client:
        small = client.post(PB_URL, content=small_body)
        big = client.post(PB_URL, content=big_body)
        chunked = client.post(PB_URL, content=iter([big_body[:600], big_body[600:]]))
    assert small.status_code == 200
    assert big.status_code == 413
    assert "limit of 1000 bytes" in big.text
    assert chunked.status_code == 413


@pytest.mark.parametrize("protocol", ["pb", "json"])
def test_debug_levels_and_output_selection(logged, rows, protocol):
    client, _, _, _ = logged

    def call(request: RankRequest):
        if protocol == "pb":
            reply = client.post(PB_URL, content=encode_pb_request(request))
            assert reply.status_code == 200, reply.text
            return decode_pb_response(reply.content)
        reply = client.post("/v1/rank", json=json_body(request))
        assert reply.status_code == 200, reply.text
        return reply.json()

    def field(response, name):
        return getattr(response, name) if protocol == "pb" else response.get(name, [])

    plain = call(rank_request(rows, 4))
    level1 = call(rank_request(rows, 4, debug_level=1))
    level2 = call(rank_request(rows, 4, debug_level=2))

    assert field(plain, "item_ids") == rank_request(rows, 4).item_ids
    assert not field(plain, "generate_features")
    generated = field(level1, "generate_features")
    assert len(generated) == 4 and {"user_id", "adgroup_id"} <= set(generated[0])
    assert not field(level1, "raw_features")
    raw = field(level2, "raw_features")
    assert len(raw) == 4 and raw[0]["adgroup_id"] == rank_request(rows, 4).item_ids[0]
    assert field(level2, "generate_features") == generated

    if protocol == "json":
        selected = call(rank_request(rows, 4, outputs=["probs"]))
        assert set(selected["outputs"]) == {"probs"}
        np.testing.assert_allclose(
            selected["outputs"]["probs"], plain["outputs"]["probs"], rtol=1e-6
        )
    else:
        assert set(plain.outputs) == {"logits", "probs"}


def test_pb_outputs_selection_is_a_400_for_unknown_names(logged, rows):
    client, _, _, _ = logged
    reply = client.post(
        "/v1/rank", json=json_body(rank_request(rows, 2, outputs=["nope"]))
    )
    assert reply.status_code == 400
    assert "nope" in reply.json()["error"]


def test_bypass_with_our_fg_output_gives_the_same_scores(logged, rows, tiny_export):
    client, _, _, _ = logged
    from recship.export.artifact import load_artifact
    from recship.features.fg import FeatureGenerator

    request = rank_request(rows, 6, debug_level=0)
    normal = client.post("/v1/rank", json=json_body(request)).json()

    # FG of the same joined rows, done by the caller.
    world, export_dir = tiny_export
    specs = load_artifact(export_dir).generator.specs
    items = {
        str(r["adgroup_id"]): r
        for r in read_table(world.data["items"], "ParquetDataset").to_pylist()
    }
    import pyarrow as pa

    joined = pa.Table.from_pylist(
        [
            dict(
                items[i],
                **request.user_features,
                pid=request.context_features["pid"][0],
            )
            for i in request.item_ids
        ]
    )
    generated = FeatureGenerator(specs).generate(
        {n: joined.column(n) for n in joined.column_names}, 6, missing_ok=True
    )

    flat = {
        "item_ids": request.item_ids,
        "fg_mode": "bypass",
        "generated_features": {k: v.tolist() for k, v in generated.items()},
    }
    bypass_json = client.post("/v1/rank", json=flat)
    assert bypass_json.status_code == 200, bypass_json.text

    per_item = RankRequest(item_ids=request.item_ids, fg_mode="bypass")
    for spec in specs:
        values = generated[f"{spec.name}.values"]
        lengths = generated.get(f"{spec.name}.lengths")
        if lengths is None:
            per_item.item_features[spec.name] = values.tolist()
        else:
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            per_item.item_features[spec.name] = [
                values[offsets[i] : offsets[i + 1]].tolist() for i in range(6)
            ]
    bypass_pb = client.post(PB_URL, content=encode_pb_request(per_item))
    assert bypass_pb.status_code == 200, bypass_pb.text

    expected = np.float32(normal["outputs"]["probs"])
    np.testing.assert_array_equal(
        np.float32(bypass_json.json()["outputs"]["probs"]), expected
    )
    np.testing.assert_array_equal(
        decode_pb_response(bypass_pb.content).outputs["probs"], expected
    )


def test_bypass_errors_name_the_feature(logged):
    client, _, _, _ = logged
    reply = client.post(
        "/v1/rank",
        json={
            "item_ids": ["1"],
            "fg_mode": "bypass",
            "item_features": {"user_id": [[99999999]]},
        },
    )
    assert reply.status_code == 400
    assert "user_id" in reply.json()["error"]
