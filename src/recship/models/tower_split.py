"""A DEEP tower whose first Linear is split into a user part and an item part.

A DEEP group that mixes user-side and item-side features feeds its tower
x = [u, i] (in the group's feature order, interleaved or not). The first
layer W x + b splits exactly, by W's columns, into

    W x + b = (W_u u + b) + W_i i

so with INPUT_TILE 3 the user part is computed once per request ([1, H])
and only the item part per item ([B, H]). Only floating-point rounding tells
the two forms apart.
"""

import torch
from torch import nn

from recship.models.modules import MLP


class SplitTower(nn.Module):
    """The split form of a trained DEEP tower `MLP`, for inference.

    Args:
        tower: the trained tower; its first layer must be `nn.Linear`.
        user_columns: for each user-side feature of the group, in group
            order, its (start, end) columns in the tower's input.
        item_columns: the same for the item-side features.
    """

    def __init__(
        self,
        tower: MLP,
        user_columns: list[tuple[int, int]],
        item_columns: list[tuple[int, int]],
    ) -> None:
        super().__init__()
        first = tower.layers[0]
        if not isinstance(first, nn.Linear):  # pragma: no cover - MLP builds Linear
            raise TypeError("the tower MLP must start with nn.Linear")
        weight = first.weight.detach()
        hidden = weight.shape[0]

        # Transposed to [D_u, H] and [D_i, H] so each part is one addmm.
        self.register_buffer("user_weight", _columns(weight, user_columns).t())
        self.register_buffer("item_weight", _columns(weight, item_columns).t())
        bias = first.bias.detach() if first.bias is not None else None
        self.register_buffer(
            "bias", bias.clone() if bias is not None else torch.zeros(hidden)
        )
        self.rest = nn.Sequential(*list(tower.layers)[1:])
        self.out_features = tower.out_features

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """`user` [U, D_u] (U is 1 or B) and `item` [B, D_i] -> [B, D_out]."""
        user_part = torch.addmm(self.bias, user, self.user_weight)
        return self.rest(torch.addmm(user_part, item, self.item_weight))


def _columns(weight: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    # The columns of `spans`, in order, as one contiguous [H, sum] block.
    return torch.cat([weight[:, start:end] for start, end in spans], dim=1)
