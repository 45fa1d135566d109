import pytest
import torch

from recship.config.protos import model_pb2
from recship.models.modules import MLP
from recship.models.tower_split import SplitTower


@pytest.mark.parametrize("scripted", [False, True])
def test_split_tower_equals_the_tower_on_the_joined_input(scripted):
    torch.manual_seed(0)
    tower = MLP(10, model_pb2.MLP(hidden_units=[8, 4])).eval()
    # User columns interleaved with item ones: [u0 u0 | i0 i0 i0 | u1 | i1 ...].
    user_spans, item_spans = [(0, 2), (5, 6)], [(2, 5), (6, 10)]
    split = SplitTower(tower, user_spans, item_spans).eval()
    module = torch.jit.script(split) if scripted else split

    user = torch.randn(1, 3)
    item = torch.randn(6, 7)
    joined = torch.cat(
        [user[:, :2].expand(6, 2), item[:, :3], user[:, 2:].expand(6, 1), item[:, 3:]],
        dim=1,
    )
    with torch.no_grad():
        expected = tower(joined)
        got = module(user, item)
        per_row = module(user.expand(6, 3), item)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(per_row, expected, rtol=0, atol=1e-6)
