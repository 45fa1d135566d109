"""INPUT_TILE end to end: export a tiled model, rank with it, compare scores."""

import json

import numpy as np
import pytest

from recship.data.reader import read_table
from recship.export.artifact import load_artifact
from recship.export.exporter import ExportOptions, export_model
from recship.serving.item_store import ItemStore
from recship.serving.ranker import Ranker
from recship.serving.request import RankRequest


def _request(world, num_items: int = 30) -> RankRequest:
    rows = read_table(world.data["eval"], "ParquetDataset").to_pylist()
    row = next(r for r in rows if r["click_50_seq__adgroup_id"])
    items = read_table(world.data["items"], "ParquetDataset").column("adgroup_id")
    user_columns = [
        "user_id", "cms_segid", "cms_group_id", "final_gender_code", "age_level",
        "pvalue_level", "shopping_level", "occupation", "new_user_class_level",
        "click_50_seq__adgroup_id", "click_50_seq__cate_id", "click_50_seq__brand",
    ]  # fmt: skip
    return RankRequest(
        user_features={c: row[c] for c in user_columns if row[c] is not None},
        item_ids=[str(v) for v in items.to_pylist()[:num_items]] + ["no-such-item"],
        context_features={"pid": [row["pid"]]},
    )


def _scores(export_dir, world, request: RankRequest, debug_level: int = 0):
    store = ItemStore.load(world.data["items"], "adgroup_id")
    ranker = Ranker(load_artifact(export_dir), store, item_empty_score=-1.0)
    request.debug_level = debug_level
    return ranker.rank(request).outputs["probs"]


@pytest.fixture(scope="module")
def fp32_exports(tiny_export, tmp_path_factory):
    world, _ = tiny_export
    root = tmp_path_factory.mktemp("tiled")
    exports = {}
    for mode in (0, 2, 3):
        exports[mode] = root / f"fp32-tile{mode}"
        export_model(
            world.config,
            exports[mode],
            options=ExportOptions(
                quant_emb="FP32", quant_ec_emb="FP32", input_tile=mode
            ),
        )
    return world, exports


@pytest.mark.parametrize("mode", [2, 3])
def test_tiled_fp32_export_ranks_like_untiled(fp32_exports, mode):
    world, exports = fp32_exports
    request = _request(world)
    expected = _scores(exports[0], world, request)
    got = _scores(exports[mode], world, request)

    acc = json.loads((exports[mode] / "model_acc.json").read_text())
    assert acc["input_tile"] == mode
    assert got[-1] == -1.0  # the unknown item
    assert np.abs(got - expected).max() <= 1e-6
    assert len(np.unique(got[:-1])) > 10


def test_tiled_export_debug_request_describes_every_item(fp32_exports):
    world, exports = fp32_exports
    request = _request(world, num_items=5)
    tiled = _scores(exports[3], world, request, debug_level=1)
    assert np.abs(tiled - _scores(exports[0], world, request)).max() <= 1e-6


def test_tiled_int8_export_ranks_like_untiled_int8(tiny_export, tmp_path):
    world, untiled_export = tiny_export
    tiled_export = tmp_path / "int8-tile3"
    export_model(world.config, tiled_export, options=ExportOptions(input_tile=3))
    request = _request(world)
    expected = _scores(untiled_export, world, request)
    got = _scores(tiled_export, world, request)
    assert np.abs(got - expected).max() <= 1e-6
