"""Embedding groups: model inputs to per-group dense tensors via TorchRec.

Pooled lookups (features of DEEP groups) go through one TorchRec
`EmbeddingBagCollection`; sequence groups (their query features and sequence
sub-features) go through one `EmbeddingCollection`. Tables are named by
`embedding_name` (default `<feature>_emb`), so a sequence sub-feature shares
its table with the query feature of the same name inside the collection.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torchrec import (
    EmbeddingBagCollection,
    EmbeddingBagConfig,
    EmbeddingCollection,
    EmbeddingConfig,
    KeyedJaggedTensor,
    PoolingType,
)

from recship.config.protos import model_pb2
from recship.errors import ModelError
from recship.features.spec import FeatureSpec


@dataclass(frozen=True)
class GroupSpec:
    """A feature group of the model config, resolved to feature specs."""

    name: str
    group_type: int
    features: tuple[FeatureSpec, ...]

    @property
    def is_sequence(self) -> bool:
        return self.group_type == model_pb2.SEQUENCE

    @property
    def query_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if not f.is_sequence)

    @property
    def sequence_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.is_sequence)

    @property
    def width(self) -> int:
        """D of a DEEP group's output, or of a SEQUENCE group's query."""
        features = self.query_features if self.is_sequence else self.features
        return sum(f.embedding_dim if f.is_sparse else f.value_dim for f in features)


def build_group_specs(
    model_config: model_pb2.ModelConfig, specs: list[FeatureSpec]
) -> list[GroupSpec]:
    """Resolve the config's feature groups to feature specs."""
    by_name = {spec.name: spec for spec in specs}
    groups = []
    for group in model_config.feature_groups:
        features = tuple(by_name[name] for name in group.feature_names)
        groups.append(GroupSpec(group.group_name, group.group_type, features))
        if group.group_type != model_pb2.SEQUENCE:
            continue
        resolved = groups[-1]
        seq_width = sum(f.embedding_dim for f in resolved.sequence_features)
        if any(not f.is_sparse for f in resolved.features):
            raise ModelError(f"sequence group {group.group_name!r}: only id features")
        if not resolved.sequence_features or seq_width != resolved.width:
            raise ModelError(
                f"sequence group {group.group_name!r}: query features are "
                f"{resolved.width} wide and sequence features {seq_width}; DIN "
                "needs both sides present and equally wide"
            )
    return groups


def _table_configs(
    features: list[FeatureSpec], pooled: bool
) -> list[EmbeddingBagConfig] | list[EmbeddingConfig]:
    tables: dict[str, list[FeatureSpec]] = {}
    for feature in features:
        tables.setdefault(feature.embedding_name, []).append(feature)
    configs = []
    for name, members in tables.items():
        first = members[0]
        for other in members[1:]:
            if (other.num_embeddings, other.embedding_dim) != (
                first.num_embeddings,
                first.embedding_dim,
            ):
                raise ModelError(
                    f"features {first.name!r} and {other.name!r} share embedding "
                    f"{name!r} but differ in size or dim"
                )
        feature_names = [m.name for m in members]
        if pooled:
            pooling = PoolingType.MEAN if first.pooling == "mean" else PoolingType.SUM
            configs.append(
                EmbeddingBagConfig(
                    name=name,
                    embedding_dim=first.embedding_dim,
                    num_embeddings=first.num_embeddings,
                    feature_names=feature_names,
                    pooling=pooling,
                )
            )
        else:
            configs.append(
                EmbeddingConfig(
                    name=name,
                    embedding_dim=first.embedding_dim,
                    num_embeddings=first.num_embeddings,
                    feature_names=feature_names,
                )
            )
    return configs


@torch.fx.wrap
def _padded_length(lengths: torch.Tensor, cap: int) -> int:
    # NOTE: pad to the longest sequence in the batch, not the configured
    # maximum, so short histories cost short attention.
    longest = int(lengths.max().item()) if lengths.numel() > 0 else 0
    return max(1, min(longest, cap))


class EmbeddingGroups(nn.Module):
    """Looks up every feature group.

    forward returns, per DEEP group `g`, `g` -> [B, D_g]; per SEQUENCE group
    `s`: `s.query` -> [B, D_s], `s.sequence` -> [B, T, D_s] and
    `s.lengths` -> [B].
    """

    def __init__(self, groups: list[GroupSpec]) -> None:
        super().__init__()
        self._groups = groups
        pooled = _unique(
            [f for g in groups if not g.is_sequence for f in g.features if f.is_sparse]
        )
        jagged = _unique([f for g in groups if g.is_sequence for f in g.features])
        self._pooled_keys = [f.name for f in pooled]
        self._jagged_keys = [f.name for f in jagged]
        self.ebc = (
            EmbeddingBagCollection(tables=_table_configs(pooled, True))
            if pooled
            else None
        )
        self.ec = (
            EmbeddingCollection(tables=_table_configs(jagged, False))
            if jagged
            else None
        )
        self._seq_caps = {
            f.name: f.sequence_length or 1 for f in jagged if f.is_sequence
        }

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled: dict[str, torch.Tensor] = {}
        if self.ebc is not None:
            pooled = self.ebc(_build_kjt(self._pooled_keys, inputs)).to_dict()
        jagged = {}
        if self.ec is not None:
            jagged = self.ec(_build_kjt(self._jagged_keys, inputs))

        out: dict[str, torch.Tensor] = {}
        for group in self._groups:
            if not group.is_sequence:
                parts = [
                    pooled[f.name] if f.is_sparse else inputs[f"{f.name}.values"]
                    for f in group.features
                ]
                out[group.name] = torch.cat(parts, dim=1)
                continue
            queries = [
                jagged[f.name].to_padded_dense(1).squeeze(1)
                for f in group.query_features
            ]
            first = group.sequence_features[0].name
            lengths = inputs[f"{first}.lengths"]
            steps = _padded_length(lengths, self._seq_caps[first])
            sequence = [
                jagged[f.name].to_padded_dense(steps) for f in group.sequence_features
            ]
            out[f"{group.name}.query"] = torch.cat(queries, dim=1)
            out[f"{group.name}.sequence"] = torch.cat(sequence, dim=2)
            out[f"{group.name}.lengths"] = lengths
        return out


def _unique(features: list[FeatureSpec]) -> list[FeatureSpec]:
    return list({f.name: f for f in features}.values())


def _build_kjt(keys: list[str], inputs: dict[str, torch.Tensor]) -> KeyedJaggedTensor:
    values = torch.cat([inputs[f"{k}.values"] for k in keys])
    lengths = torch.cat([inputs[f"{k}.lengths"] for k in keys])
    return KeyedJaggedTensor.from_lengths_sync(
        keys=keys, values=values, lengths=lengths
    )
