"""Ranking models: MultiTower and MultiTowerDIN.

A model maps the FG inputs (`Dict[str, Tensor]`, see `recship.features.fg`)
to `{"logits": [B], "probs": [B]}`. Losses and metrics live in training.
"""

import torch
from torch import nn

from recship.config.protos import model_pb2
from recship.models.embedding import EmbeddingGroups, GroupSpec
from recship.models.modules import MLP, DINAttention


class MultiTowerDIN(nn.Module):
    """One MLP tower per DEEP group, one DIN tower per SEQUENCE group, then a
    final MLP over their concatenation. With no DIN towers it is MultiTower.

    Args:
        groups: the resolved feature groups.
        config: a `MultiTower` or `MultiTowerDIN` message.
    """

    def __init__(
        self, groups: list[GroupSpec], config: model_pb2.MultiTowerDIN
    ) -> None:
        super().__init__()
        by_name = {g.name: g for g in groups}
        self.embedding = EmbeddingGroups(groups)
        self._tower_inputs = [t.input for t in config.towers]
        self._din_inputs = [t.input for t in getattr(config, "din_towers", [])]

        self.towers = nn.ModuleDict(
            {t.input: MLP(by_name[t.input].width, t.mlp) for t in config.towers}
        )
        self.din_towers = nn.ModuleDict(
            {
                t.input: DINAttention(by_name[t.input].width, t.attn_mlp)
                for t in getattr(config, "din_towers", [])
            }
        )
        width = sum(m.out_features for m in self.towers.values())
        width += sum(m.out_features for m in self.din_towers.values())
        self.final = MLP(width, config.final) if config.HasField("final") else None
        self.output = nn.Linear(self.final.out_features if self.final else width, 1)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        grouped = self.embedding(inputs)

        parts = [self.towers[name](grouped[name]) for name in self._tower_inputs]
        for name in self._din_inputs:
            parts.append(
                self.din_towers[name](
                    grouped[f"{name}.query"],
                    grouped[f"{name}.sequence"],
                    grouped[f"{name}.lengths"],
                )
            )
        hidden = torch.cat(parts, dim=1)
        if self.final is not None:
            hidden = self.final(hidden)

        logits = self.output(hidden).squeeze(1)
        return {"logits": logits, "probs": torch.sigmoid(logits)}
