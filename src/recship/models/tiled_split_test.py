import pytest
import torch
from torchrec.fx import symbolic_trace

from recship.export.aot import split_model
from recship.export.quantization import quantize_model
from recship.models.builder import build_model
from recship.models.tiled_split import ROWS_KEY, user_side_keys
from recship.models.tiling import TiledMultiTowerDIN
from recship.models.tiling_test import ROWS, _inputs, _user_with_history, world

__all__ = ["world"]  # the module fixture, shared with tiling_test


@pytest.mark.parametrize("mode", [2, 3])
@pytest.mark.parametrize("form", ["eager", "scripted", "quantized"])
def test_split_parts_score_like_the_tiled_model(world, mode, form):
    torch.manual_seed(0)
    model = build_model(world.config).eval()
    if form == "quantized":
        model = quantize_model(model, "INT8", "INT8")
    untiled, tiled, user = _inputs(world, _user_with_history(world))
    tiled_model = TiledMultiTowerDIN(model, user, mode).eval()
    sparse, dense, _ = split_model(tiled_model)
    if form != "eager":
        sparse = torch.jit.script(symbolic_trace(sparse))

    with torch.no_grad():
        for inputs in (tiled, untiled):
            expected = tiled_model(inputs)["probs"]
            got = dense(sparse(inputs))["probs"]
            assert got.shape == (ROWS,)
            assert float((got - expected).abs().max()) <= 1e-6


def test_mode3_lookups_keep_the_user_side_once(world):
    model = build_model(world.config).eval()
    _, tiled, user = _inputs(world, _user_with_history(world))
    tiled_model = TiledMultiTowerDIN(model, user, 3).eval()
    sparse, _, user_keys = split_model(tiled_model)
    with torch.no_grad():
        grouped = sparse(tiled)

    assert user_keys == user_side_keys(tiled_model)
    assert "seq.sequence" in user_keys and "deep/user_id" in user_keys
    assert all(grouped[key].shape[0] == 1 for key in user_keys)
    assert grouped["deep/adgroup_id"].shape[0] == ROWS
    assert torch.equal(grouped[ROWS_KEY], torch.zeros(ROWS, dtype=torch.long))
