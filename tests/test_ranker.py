"""The Ranker on a real tiny export: feature resolution, FG, model, outputs."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from recship.data.reader import read_table
from recship.errors import BadRequestError
from recship.export.artifact import load_artifact
from recship.features.fg import to_tensors
from recship.serving.item_store import ItemStore
from recship.serving.ranker import Ranker
from recship.serving.request import RankRequest

USER = ["user_id", "cms_segid", "age_level", "click_50_seq__adgroup_id",
        "click_50_seq__cate_id", "click_50_seq__brand"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tiny_export):
    world, export_dir = tiny_export
    artifact = load_artifact(export_dir)
    store = ItemStore.load(world.data["items"], "adgroup_id")
    rows = read_table(world.data["eval"], "ParquetDataset")
    return world, artifact, Ranker(artifact, store, item_empty_score=-1.0), rows


def _request(rows, count=5, **extra):
    row = rows.slice(0, 1).to_pylist()[0]
    return RankRequest(
        user_features={c: row[c] for c in USER if row[c] is not None},
        item_ids=[str(v) for v in rows.column("adgroup_id").to_pylist()[:count]],
        context_features={"pid": [row["pid"]]},
        **extra,
    )


def test_scores_equal_the_model_on_the_same_joined_rows(setup):
    world, artifact, ranker, rows = setup
    request = _request(rows)
    response = ranker.rank(request)

    items = read_table(world.data["items"], "ParquetDataset").to_pylist()
    by_id = {str(r["adgroup_id"]): r for r in items}
    joined = [
        dict(by_id[i], **request.user_features, pid=request.context_features["pid"][0])
        for i in request.item_ids
    ]
    table = pa.Table.from_pylist(joined)
    columns = {name: table.column(name) for name in table.column_names}
    inputs = artifact.generator.generate(columns, table.num_rows, missing_ok=True)
    with torch.no_grad():
        expected = artifact.model(to_tensors(inputs))["probs"]
    np.testing.assert_allclose(response.outputs["probs"], expected.numpy(), atol=1e-7)
    assert response.item_ids == request.item_ids


def test_unknown_items_get_the_empty_score_and_others_are_unchanged(setup):
    _, _, ranker, rows = setup
    request = _request(rows, count=3)
    baseline = ranker.rank(request).outputs["probs"]
    request.item_ids = [request.item_ids[0], "not-an-item", *request.item_ids[1:]]
    scores = ranker.rank(request).outputs["probs"]
    assert scores[1] == -1.0
    np.testing.assert_allclose(np.delete(scores, 1), baseline, atol=1e-7)


def test_request_item_features_override_the_store(setup):
    _, _, ranker, rows = setup
    request = _request(rows, count=2)
    before = ranker.rank(request).outputs["probs"]
    request.item_features = {"price": [1.0, 9999.0]}
    after = ranker.rank(request).outputs["probs"]
    assert not np.allclose(before, after)


def test_context_per_item_equals_one_value_for_all(setup):
    _, _, ranker, rows = setup
    request = _request(rows, count=4)
    shared = ranker.rank(request).outputs["probs"]
    request.context_features = {"pid": request.context_features["pid"] * 4}
    np.testing.assert_array_equal(ranker.rank(request).outputs["probs"], shared)


def test_output_selection_and_debug_features(setup):
    _, _, ranker, rows = setup
    response = ranker.rank(_request(rows, count=2, outputs=["logits"], debug_level=2))
    assert list(response.outputs) == ["logits"]
    assert response.generate_features[0]["user_id"].isdigit()
    assert "price" in response.raw_features[1]
    with pytest.raises(BadRequestError, match="not model outputs"):
        ranker.rank(_request(rows, outputs=["nope"]))


def test_bad_feature_value_is_a_bad_request_naming_the_feature(setup):
    _, _, ranker, rows = setup
    request = _request(rows)
    request.user_features["age_level"] = "old"
    with pytest.raises(BadRequestError, match="age_level"):
        ranker.rank(request)


def test_unencodable_string_is_a_bad_request(setup):
    _, _, ranker, rows = setup
    request = _request(rows)
    request.user_features["cms_segid"] = "\ud800"  # a lone surrogate
    with pytest.raises(BadRequestError, match="cms_segid"):
        ranker.rank(request)
