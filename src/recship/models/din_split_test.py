import pytest
import torch

from recship.config.protos import model_pb2
from recship.models.din_split import SplitDINAttention
from recship.models.modules import DINAttention


@pytest.mark.parametrize("use_bn", [False, True])
def test_split_attention_equals_plain_attention(use_bn):
    torch.manual_seed(0)
    plain = DINAttention(12, model_pb2.MLP(hidden_units=[16, 8], use_bn=use_bn))
    plain.eval()
    split = SplitDINAttention(plain).eval()
    query = torch.randn(9, 12)
    sequence = torch.randn(9, 6, 12)
    lengths = torch.tensor([0, 1, 2, 3, 4, 5, 6, 6, 3])
    with torch.no_grad():
        expected = plain(query, sequence, lengths)
        got = split(query, sequence, lengths)
        scripted = torch.jit.script(split)(query, sequence, lengths)
    assert float((got - expected).abs().max()) <= 1e-6
    assert float((scripted - expected).abs().max()) <= 1e-6
    assert torch.equal(got[0], torch.zeros(12))  # no steps pools to zeros


def test_split_attention_broadcasts_one_shared_sequence():
    torch.manual_seed(1)
    plain = DINAttention(8, model_pb2.MLP(hidden_units=[16])).eval()
    split = SplitDINAttention(plain).eval()
    query = torch.randn(5, 8)
    sequence = torch.randn(1, 4, 8)
    lengths = torch.tensor([3])
    with torch.no_grad():
        expected = plain(query, sequence.expand(5, 4, 8), lengths.expand(5))
        got = split(query, sequence, lengths)
    assert got.shape == (5, 8)
    assert float((got - expected).abs().max()) <= 1e-6
