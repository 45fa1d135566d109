"""`recship infer-data`: requests from real rows and from the feature config."""

import json

import numpy as np
import pyarrow.compute as pc

from recship.cli.main import main
from recship.data.reader import read_table
from recship.export.artifact import load_artifact
from recship.serving.protocol_json import decode_json_request
from recship.serving.protocol_pb import decode_pb_request
from recship.tools import infer_data


def test_requests_from_table_group_rows_by_user(tiny_export):
    world, export_dir = tiny_export
    loaded = load_artifact(export_dir)
    requests = infer_data.requests_from_table(
        loaded,
        world.data["eval"],
        user_id_column="user_id",
        item_id_column="adgroup_id",
        max_requests=5,
    )
    table = read_table(world.data["eval"], "parquet")
    assert len(requests) == 5
    for request in requests:
        user = request.user_features["user_id"]
        rows = table.filter(pc.equal(table.column("user_id"), user))
        # One candidate per row of that user, in table order.
        assert request.item_ids == [
            str(v) for v in rows.column("adgroup_id").to_pylist()
        ]
        assert request.item_features["price"] == rows.column("price").to_pylist()
        assert request.context_features["pid"] == rows.column("pid").to_pylist()
        assert "click_50_seq__brand" in request.user_features
        assert "adgroup_id" not in request.user_features


def test_written_files_decode_to_the_same_requests(tiny_export, tmp_path):
    world, export_dir = tiny_export
    loaded = load_artifact(export_dir)
    requests = infer_data.synthetic_requests(loaded, num_requests=3, num_items=7)
    written = infer_data.write_requests(requests, tmp_path)
    assert len(written) == 6
    for index, request in enumerate(requests):
        base = tmp_path / f"request-{index:05d}"
        for decoded in (
            decode_pb_request(base.with_suffix(".pb").read_bytes()),
            decode_json_request(base.with_suffix(".json").read_bytes()),
        ):
            assert decoded.item_ids == request.item_ids
            assert decoded.user_features == request.user_features
            assert decoded.item_features == request.item_features


def test_synthetic_values_follow_the_feature_config(tiny_export):
    _, export_dir = tiny_export
    loaded = load_artifact(export_dir)
    specs = {s.column: s for s in loaded.generator.specs}
    (request,) = infer_data.synthetic_requests(
        loaded, num_requests=1, num_items=50, seed=3, item_id_column="adgroup_id"
    )
    assert len(request.item_ids) == 50
    assert request.item_ids == [str(v) for v in request.item_features["adgroup_id"]]
    for column, values in request.item_features.items():
        spec = specs[column]
        if spec.num_buckets:
            assert all(0 <= v < spec.num_buckets for v in values)
    assert 0 <= request.user_features["age_level"] < specs["age_level"].num_buckets
    prices = np.array(request.item_features["price"])
    assert prices.min() >= 0 and prices.max() <= 1.5 * max(specs["price"].boundaries)
    # Sub-features of one sequence have the same number of steps.
    steps = {
        len(request.user_features[c].split("|")) for c in specs if specs[c].is_sequence
    }
    assert len(steps) == 1 and 1 <= steps.pop() <= 50


def test_show_scores_online_and_offline_alike(tiny_export):
    world, export_dir = tiny_export
    loaded = load_artifact(export_dir)
    for request in infer_data.synthetic_requests(
        loaded, num_requests=1, num_items=20
    ) + infer_data.requests_from_table(
        loaded,
        world.data["eval"],
        user_id_column="user_id",
        item_id_column="adgroup_id",
        max_requests=1,
    ):
        shown = infer_data.show_request(loaded, request)
        assert len(shown.features) == len(request.item_ids)
        assert "user_id" in shown.features[0]
        assert shown.max_abs_diff < 1e-6
        table = infer_data.format_shown(shown)
        assert request.item_ids[0] in table and "max |online - offline|" in table


def test_cli_writes_requests_and_shows_one(tiny_export, tmp_path, capsys):
    world, export_dir = tiny_export
    code = main(
        [
            "infer-data",
            f"--scripted_model_path={export_dir}",
            f"--input_path={world.data['eval']}",
            "--num_requests=2",
            f"--output_dir={tmp_path}",
            "--show=1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "wrote 2 requests (4 files)" in out
    assert "online probs" in out and "offline probs" in out
    assert json.loads((tmp_path / "request-00001.json").read_text())["item_ids"]
