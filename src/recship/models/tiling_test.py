import pyarrow as pa
import pytest
import torch
from torchrec.fx import symbolic_trace

from recship.data.reader import read_table
from recship.errors import ModelError
from recship.export.quantization import quantize_model
from recship.features.fg import FeatureGenerator, to_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.models.tiling import TiledMultiTowerDIN
from recship.testing.tiny import build_tiny_world

ROWS = 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_tiny_world(tmp_path_factory.mktemp("tiling"), num_rows=400)


def _inputs(world, row: int):
    """(untiled inputs with row's user on every row, tiled inputs, user names)."""
    specs = model_feature_specs(world.config)
    user = [s for s in specs if s.request_side == "user"]
    others = [s for s in specs if s.request_side != "user"]
    table = read_table(world.data["eval"], "ParquetDataset").slice(0, ROWS)
    columns = {name: table.column(name) for name in table.column_names}
    user_columns = {s.column for s in user}
    same_user = dict(columns)
    for name in user_columns:
        same_user[name] = pa.concat_arrays(
            [columns[name].chunk(0)[row : row + 1]] * ROWS
        )
    untiled = to_tensors(FeatureGenerator(specs).generate(same_user, ROWS))
    tiled = to_tensors(
        FeatureGenerator(user).generate(
            {n: columns[n].chunk(0)[row : row + 1] for n in user_columns}, 1
        )
    )
    tiled.update(to_tensors(FeatureGenerator(others).generate(columns, ROWS)))
    return untiled, tiled, [s.name for s in user]


def _user_with_history(world) -> int:
    table = read_table(world.data["eval"], "ParquetDataset").slice(0, ROWS)
    sequences = table.column("click_50_seq__adgroup_id").to_pylist()
    return next(i for i, s in enumerate(sequences) if s and s.count("|") >= 2)


@pytest.mark.parametrize("mode", [2, 3])
@pytest.mark.parametrize("form", ["eager", "scripted", "quantized"])
def test_tiled_model_scores_equal_untiled(world, mode, form):
    torch.manual_seed(0)
    model = build_model(world.config).eval()
    untiled, tiled, user = _inputs(world, _user_with_history(world))
    if form == "quantized":
        model = quantize_model(model, "INT8", "INT8")
    tiled_model = TiledMultiTowerDIN(model, user, mode).eval()
    if form != "eager":
        tiled_model = torch.jit.script(symbolic_trace(tiled_model))

    with torch.no_grad():
        expected = model(untiled)["probs"]
        got_tiled = tiled_model(tiled)["probs"]
        got_untiled = tiled_model(untiled)["probs"]

    assert got_tiled.shape == (ROWS,)
    assert float((got_tiled - expected).abs().max()) <= 1e-6
    assert float((got_untiled - expected).abs().max()) <= 1e-6


def test_tiled_model_gives_each_item_its_own_score(world):
    torch.manual_seed(0)
    model = build_model(world.config).eval()
    _, tiled, user = _inputs(world, _user_with_history(world))
    with torch.no_grad():
        probs = TiledMultiTowerDIN(model, user, 3)(tiled)["probs"]
    assert len(set(probs.tolist())) > ROWS // 2


def test_tiled_model_refuses_unknown_mode(world):
    model = build_model(world.config)
    with pytest.raises(ModelError, match="input_tile 1"):
        TiledMultiTowerDIN(model, ["user_id"], 1)
