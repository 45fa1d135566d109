"""Reusable dense modules: MLP and DIN attention."""

import torch
from torch import nn

from recship.config.protos import model_pb2
from recship.errors import ModelError


def build_activation(name: str) -> nn.Module:
    """An activation module from its config name, e.g. "nn.ReLU"."""
    class_name = name.removeprefix("nn.")
    activation = getattr(nn, class_name, None)
    if not isinstance(activation, type) or not issubclass(activation, nn.Module):
        raise ModelError(f"activation {name!r} is not a torch.nn module (try nn.ReLU)")
    return activation()


class MLP(nn.Module):
    """Stacked Linear, optional BatchNorm, activation and dropout.

    Args:
        in_features: D_in.
        config: the `MLP` message (hidden_units, dropout_ratio, activation,
            use_bn, bias).
    """

    def __init__(self, in_features: int, config: model_pb2.MLP) -> None:
        super().__init__()
        units = list(config.hidden_units)
        if not units:
            raise ModelError("an MLP needs at least one entry in hidden_units")
        dropout = list(config.dropout_ratio)
        if len(dropout) not in (0, 1, len(units)):
            raise ModelError(
                f"dropout_ratio has {len(dropout)} values; give 1 or one per "
                f"hidden layer ({len(units)})"
            )
        if len(dropout) == 1:
            dropout = dropout * len(units)

        layers: list[nn.Module] = []
        width = in_features
        for i, hidden in enumerate(units):
            layers.append(nn.Linear(width, hidden, bias=config.bias))
            if config.use_bn:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(build_activation(config.activation))
            if dropout and dropout[i] > 0:
                layers.append(nn.Dropout(dropout[i]))
            width = hidden
        self.layers = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D_in] to [B, D_out]."""
        return self.layers(x)


class DINAttention(nn.Module):
    """Deep Interest Network attention pooling of a sequence by a query.

    The attention MLP scores every sequence step from [q, k, q - k, q * k];
    scores of padding steps are masked out before the softmax, and a sequence
    with no steps pools to zeros.

    Args:
        dim: D, the width of the query and of each sequence step.
        attn_mlp: the `MLP` config of the scoring network.
    """

    def __init__(self, dim: int, attn_mlp: model_pb2.MLP) -> None:
        super().__init__()
        self.mlp = MLP(4 * dim, attn_mlp)
        self.score = nn.Linear(self.mlp.out_features, 1)
        self.out_features = dim

    def forward(
        self, query: torch.Tensor, sequence: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Pool `sequence` [B, T, D] by `query` [B, D]; `lengths` [B] -> [B, D]."""
        batch, steps, dim = sequence.shape[0], sequence.shape[1], sequence.shape[2]
        expanded = query.unsqueeze(1).expand(batch, steps, dim)
        pairs = torch.cat(
            [expanded, sequence, expanded - sequence, expanded * sequence], dim=2
        )
        scores = self.score(self.mlp(pairs.reshape(batch * steps, 4 * dim)))
        scores = scores.reshape(batch, steps)

        mask = torch.arange(steps, device=lengths.device).unsqueeze(
            0
        ) < lengths.unsqueeze(1)
        scores = scores.masked_fill(~mask, -1e9)
        weights = torch.softmax(scores, dim=1) * mask.to(scores.dtype)
        return torch.sum(weights.unsqueeze(2) * sequence, dim=1)
