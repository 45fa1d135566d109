"""DIN attention with its first layer split into user, item and pair parts.

The attention MLP of `DINAttention` starts with a Linear over
[q, k, q - k, q * k]. Cutting its weight W [H, 4D] into four [H, D] blocks
W_q, W_k, W_d, W_p, the layer is, exactly,

    W [q, k, q - k, q * k] + b = (W_q + W_d) q + b + (W_k - W_d) k + W_p (q * k)

so the item part is computed once per item ([B, H]), the sequence part once
per sequence step ([T, H] when every item shares the user's sequence), and
only the pair part once per (item, step). Only floating-point rounding tells
the two forms apart.
"""

import torch
from torch import nn

from recship.models.modules import DINAttention


class SplitDINAttention(nn.Module):
    """The split form of a trained `DINAttention`, for inference.

    The sequence may have one row for all items (the user side looked up
    once, INPUT_TILE=3) or one row per item; both broadcast.

    Args:
        attention: the trained module; its weights are read once, here.
    """

    def __init__(self, attention: DINAttention) -> None:
        super().__init__()
        first = attention.mlp.layers[0]
        if not isinstance(first, nn.Linear):  # pragma: no cover - MLP builds Linear
            raise TypeError("the attention MLP must start with nn.Linear")
        dim = attention.out_features
        weight = first.weight.detach()
        w_q, w_k, w_d, w_p = (weight[:, i * dim : (i + 1) * dim] for i in range(4))
        bias = first.bias.detach() if first.bias is not None else None
        hidden = weight.shape[0]

        # Transposed to [D, H] so each part is one plain matmul.
        self.register_buffer("item_weight", (w_q + w_d).t().contiguous())
        self.register_buffer("sequence_weight", (w_k - w_d).t().contiguous())
        self.register_buffer("pair_weight", w_p.t().contiguous())
        self.register_buffer(
            "bias", bias.clone() if bias is not None else torch.zeros(hidden)
        )
        self.rest = nn.Sequential(*list(attention.mlp.layers)[1:])
        self.score = attention.score
        self.out_features = dim

    def forward(
        self,
        query: torch.Tensor,
        sequence: torch.Tensor,
        lengths: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pool `sequence` [U, T, D] by `query` [B, D]; `lengths` [U] -> [B, D].

        Without `rows`, U is 1 (one sequence shared by all B items, broadcast)
        or B. With `rows` [B] (int64), item b reads sequence row `rows[b]`,
        for any U: the form AOTInductor compiles, where U and B are separate
        dynamic sizes that must not meet in a broadcast.
        """
        batch, dim = query.shape[0], query.shape[1]
        steps = sequence.shape[1]
        hidden = self.bias.shape[0]

        # First layer: item part [B, 1, H] + sequence part [U, T, H], then the
        # pair part [B * T, D] @ [D, H] added in one addmm.
        item_part = torch.matmul(query, self.item_weight) + self.bias
        sequence_part = torch.matmul(sequence, self.sequence_weight)
        if rows is not None:
            # The sequence part is still computed once per user row; only its
            # sum with the item part is per item, as in the broadcast form.
            sequence_part = sequence_part.index_select(0, rows)
            sequence = sequence.index_select(0, rows)
            lengths = lengths.index_select(0, rows)
        base = (item_part.unsqueeze(1) + sequence_part).reshape(batch * steps, hidden)
        pairs = (query.unsqueeze(1) * sequence).reshape(batch * steps, dim)
        first = torch.addmm(base, pairs, self.pair_weight)

        # The rest of the attention MLP runs per (item, step) as before.
        scores = self.score(self.rest(first)).reshape(batch, steps)
        mask = torch.arange(steps, device=lengths.device).unsqueeze(
            0
        ) < lengths.unsqueeze(1)
        scores = scores.masked_fill(~mask, -1e9)
        weights = torch.softmax(scores, dim=1) * mask.to(scores.dtype)

        # [B, 1, T] @ [U, T, D] -> [B, 1, D]
        return torch.matmul(weights.unsqueeze(1), sequence).squeeze(1)
