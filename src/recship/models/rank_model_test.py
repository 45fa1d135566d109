import pytest
import torch
from torchrec.fx import symbolic_trace

from recship.config.protos import model_pb2
from recship.data.reader import read_table
from recship.export.quantization import quantize_model
from recship.features.fg import FeatureGenerator, generate_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.models.modules import DINAttention
from recship.testing.tiny import build_tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_tiny_world(tmp_path_factory.mktemp("world"), num_rows=600)


@pytest.fixture(scope="module")
def inputs(world):
    generator = FeatureGenerator(model_feature_specs(world.config))
    batch = read_table(world.data["eval"], "ParquetDataset").slice(0, 64)
    return generate_tensors(generator, batch)


def _model(world):
    torch.manual_seed(0)
    return build_model(world.config).eval()


def test_outputs_are_probabilities_of_the_logits(world, inputs):
    out = _model(world)(inputs)
    assert out["logits"].shape == (64,)
    torch.testing.assert_close(out["probs"], torch.sigmoid(out["logits"]))


def test_scripted_model_matches_eager(world, inputs):
    model = _model(world)
    scripted = torch.jit.script(symbolic_trace(model))
    with torch.no_grad():
        torch.testing.assert_close(scripted(inputs)["probs"], model(inputs)["probs"])


@pytest.mark.parametrize(
    ("mode", "tol"), [("FP16", 1e-3), ("INT8", 1e-2), ("INT4", 5e-2)]
)
def test_quantized_scripted_model_stays_close_to_eager(world, inputs, mode, tol):
    model = _model(world)
    with torch.no_grad():
        expected = model(inputs)["probs"]
        quantized = torch.jit.script(symbolic_trace(quantize_model(model, mode, mode)))
        got = quantized(inputs)["probs"]
    assert not torch.equal(got, expected)  # quantization happened
    torch.testing.assert_close(got, expected, atol=tol, rtol=0)


def test_scores_do_not_depend_on_batch_composition(world, inputs):
    model = _model(world)
    with torch.no_grad():
        whole = model(inputs)["probs"]
    generator = FeatureGenerator(model_feature_specs(world.config))
    batch = read_table(world.data["eval"], "ParquetDataset").slice(0, 64)
    with torch.no_grad():
        singles = torch.cat(
            [
                model(generate_tensors(generator, batch.slice(i, 1)))["probs"]
                for i in range(8)
            ]
        )
    torch.testing.assert_close(singles, whole[:8])


def _attention():
    torch.manual_seed(0)
    return DINAttention(4, model_pb2.MLP(hidden_units=[8])).eval()


def test_din_ignores_padding_steps():
    attention = _attention()
    query, sequence = torch.randn(2, 4), torch.randn(2, 3, 4)
    lengths = torch.tensor([2, 3])
    padded = torch.cat([sequence, torch.randn(2, 2, 4)], dim=1)
    torch.testing.assert_close(
        attention(query, sequence, lengths), attention(query, padded, lengths)
    )


def test_din_pools_an_empty_sequence_to_zeros():
    pooled = _attention()(torch.randn(1, 4), torch.zeros(1, 1, 4), torch.tensor([0]))
    assert torch.count_nonzero(pooled) == 0
