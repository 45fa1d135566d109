"""INPUT_TILE end to end: export a tiled model, rank with it, compare scores."""

import json

import numpy as np
import pytest
import torch

from recship.data.reader import read_table
from recship.export.aot import AotModel
from recship.export.artifact import load_artifact
from recship.export.exporter import ExportOptions, export_model
from recship.features.fg import generate_tensors
from recship.predict.predictor import PredictOptions, predict
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


def _torchscript_probs(export_dir, world) -> np.ndarray:
    # The export's plain (tiled) TorchScript model on every eval row at once.
    loaded = load_artifact(export_dir, use_aot=False)
    table = read_table(world.data["eval"], "ParquetDataset")
    with torch.no_grad():
        return loaded.model(generate_tensors(loaded.generator, table))["probs"].numpy()


@pytest.mark.parametrize(
    "mode, quant", [(2, "FP32"), (3, "FP32"), (2, "INT8"), (3, "INT8")]
)
def test_tiled_aot_export_scores_like_tiled_torchscript(
    tiny_export, tmp_path, mode, quant
):
    world, _ = tiny_export
    export_dir = tmp_path / f"aot-{quant.lower()}-tile{mode}"
    result = export_model(
        world.config,
        export_dir,
        options=ExportOptions(
            quant_emb=quant,
            quant_ec_emb=quant,
            input_tile=mode,
            enable_aot=True,
            aot_keep_slower=True,
        ),
    )
    acc = json.loads((export_dir / "model_acc.json").read_text())
    assert acc["input_tile"] == mode and acc["aot"] == result.aot
    assert acc["aot"]["kept"] and acc["aot"]["bench_user_once"]
    assert acc["aot"]["bench_rows"] == 200

    # The server sends the user side once to the AOT model; scores equal the
    # same export's tiled TorchScript model's.
    store = ItemStore.load(world.data["items"], "adgroup_id")
    aot_artifact = load_artifact(export_dir)
    assert isinstance(aot_artifact.model, AotModel)
    request = _request(world)
    got = Ranker(aot_artifact, store, item_empty_score=-1.0).rank(request)
    scripted = load_artifact(export_dir, use_aot=False)
    want = Ranker(scripted, store, item_empty_score=-1.0).rank(request)
    assert got.outputs["probs"][-1] == -1.0
    np.testing.assert_allclose(got.outputs["probs"], want.outputs["probs"], atol=1e-5)

    # Offline predict (user side on every row) runs the AOT model too.
    out = predict(
        export_dir,
        world.data["eval"],
        tmp_path / "predicted",
        PredictOptions(batch_size=200, progress=False),
    )
    probs = read_table(out.part_file, "parquet").column("probs").to_numpy()
    np.testing.assert_allclose(probs, _torchscript_probs(export_dir, world), atol=1e-5)
