"""User-feature tiling (TorchEasyRec's INPUT_TILE) for MultiTowerDIN.

A rank request scores N items for one user, so every user-side input is the
same on all N rows. A tiled model accepts user-side inputs with batch 1 and
item-side inputs with batch B:

- mode 2: the user-side inputs are expanded to B rows inside the model,
  then the model runs as trained (FG of the user side runs once);
- mode 3: the user-side embeddings are also looked up once and expanded
  after pooling, and the DIN attention runs in its split form
  (`SplitDINAttention`), so the user's sequence is embedded and projected
  once instead of once per item.

Both modes also accept untiled inputs (user side with batch B, e.g. offline
predict), and score them like the untiled model.
"""

import torch
from torch import nn
from torchrec import JaggedTensor, KeyedJaggedTensor

from recship.errors import ModelError
from recship.models.din_split import SplitDINAttention
from recship.models.embedding import GroupSpec, _padded_length
from recship.models.rank_model import MultiTowerDIN
from recship.models.tower_split import SplitTower

TILE_MODES = (0, 2, 3)


@torch.fx.wrap
def _batch_size(tensor: torch.Tensor) -> int:
    return tensor.shape[0]


@torch.fx.wrap
def _sequence_steps(lengths: torch.Tensor, cap: int) -> int:
    # fx.wrap patches only the calling module, so the untiled model's helper
    # is wrapped again here.
    return _padded_length(lengths, cap)


@torch.fx.wrap
def _expand_jagged(
    values: torch.Tensor, lengths: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    # One row of ids [L] with lengths [1] repeated to B rows: [B * L], [B].
    if lengths.shape[0] == batch:
        return values, lengths
    return values.repeat(batch), lengths.repeat(batch)


@torch.fx.wrap
def _expand_rows(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    # [1, ...] to [B, ...] as a view; [B, ...] unchanged.
    if tensor.shape[0] == batch:
        return tensor
    return tensor.expand([batch] + list(tensor.shape[1:]))


@torch.fx.wrap
def _pad_lengths(lengths: torch.Tensor, batch: int) -> torch.Tensor:
    # Lengths [U] of the user side as lengths [B] of a KJT of stride B: the
    # rows past U are empty, so they cost no lookups.
    if lengths.shape[0] == batch:
        return lengths
    return torch.cat([lengths, lengths.new_zeros(batch - lengths.shape[0])])


@torch.fx.wrap
def _user_rows_dense(
    values: torch.Tensor, lengths: torch.Tensor, steps: int
) -> torch.Tensor:
    # The jagged embeddings [sum(lengths), D] of U rows, padded to [U, T, D].
    offsets = torch.ops.fbgemm.asynchronous_complete_cumsum(lengths.long())
    return torch.ops.fbgemm.jagged_to_padded_dense(values, [offsets], [steps], 0.0)


class TiledMultiTowerDIN(nn.Module):
    """A trained `MultiTowerDIN` that takes the user side once per request.

    Args:
        model: the trained (and possibly quantized) model; its modules are
            shared, not copied, so quantize before or after wrapping.
        user_features: names of the features whose inputs come with batch 1.
        mode: 2 or 3 (see the module docstring).
    """

    def __init__(
        self, model: MultiTowerDIN, user_features: list[str], mode: int
    ) -> None:
        super().__init__()
        if mode not in (2, 3):
            raise ModelError(f"input_tile {mode} is not 2 or 3 (0 means untiled)")
        groups = model.embedding._groups
        specs = {f.name: f for g in groups for f in g.features}
        user = set(user_features) & set(specs)
        item = [name for name in specs if name not in user]
        if not item:
            raise ModelError("input tiling needs at least one item-side feature")

        self.model = model
        self.mode = mode
        self._groups = {g.name: g for g in groups}
        self._user = user
        self._sparse = {name for name, spec in specs.items() if spec.is_sparse}
        first = specs[item[0]]
        self._batch_key = f"{first.name}.{'lengths' if first.is_sparse else 'values'}"
        self._input_names = [
            f"{name}.{part}"
            for name in specs
            for part in (
                ("values", "lengths") if specs[name].is_sparse else ("values",)
            )
        ]
        self.split_din = nn.ModuleDict(
            {
                name: SplitDINAttention(attention)
                for name, attention in model.din_towers.items()
            }
            if mode == 3
            else {}
        )
        # DEEP towers over user and item features take the user part of
        # their first layer once (`SplitTower`).
        self.split_towers = nn.ModuleDict(
            _split_towers(model, self._groups, user) if mode == 3 else {}
        )

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inputs as the untiled model's, user side with batch 1 or B."""
        batch = _batch_size(inputs[self._batch_key])
        if self.mode == 2:
            return self.model(self._expand_inputs(inputs, batch))
        return self._forward_lookup_once(inputs, batch)

    def _expand_inputs(
        self, inputs: dict[str, torch.Tensor], batch: int
    ) -> dict[str, torch.Tensor]:
        expanded: dict[str, torch.Tensor] = {}
        for name in self._input_names:
            base, part = name.rsplit(".", 1)
            if base not in self._user:
                expanded[name] = inputs[name]
            elif base not in self._sparse:
                expanded[name] = _expand_rows(inputs[name], batch)
            elif part == "values":
                values, lengths = _expand_jagged(
                    inputs[name], inputs[f"{base}.lengths"], batch
                )
                expanded[name] = values
                expanded[f"{base}.lengths"] = lengths
        return expanded

    def _forward_lookup_once(
        self, inputs: dict[str, torch.Tensor], batch: int
    ) -> dict[str, torch.Tensor]:
        # Embedding lookups: user rows once (the rest of their KJT rows are
        # empty), item rows B times.
        embedding = self.model.embedding
        pooled: dict[str, torch.Tensor] = {}
        if embedding.ebc is not None:
            kjt = self._build_kjt(embedding._pooled_keys, inputs, batch)
            pooled = embedding.ebc(kjt).to_dict()
        jagged = {}
        if embedding.ec is not None:
            jagged = embedding.ec(
                self._build_kjt(embedding._jagged_keys, inputs, batch)
            )

        # Towers, with user-side parts expanded to B rows after pooling.
        hidden = [
            self._split_tower(name, inputs, pooled)
            if name in self.split_towers
            else self.model.towers[name](self._deep_group(name, inputs, pooled, batch))
            for name in self.model._tower_inputs
        ]
        for name in self.model._din_inputs:
            hidden.append(self._din_tower(name, inputs, jagged, batch))

        x = torch.cat(hidden, dim=1)
        if self.model.final is not None:
            x = self.model.final(x)
        logits = self.model.output(x).squeeze(1)
        return {"logits": logits, "probs": torch.sigmoid(logits)}

    def _split_tower(
        self,
        name: str,
        inputs: dict[str, torch.Tensor],
        pooled: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """A split DEEP tower's [B, D_out]: user parts [U, D_u] as looked up,
        item parts [B, D_i]."""
        user, item = [], []
        for f in self._groups[name].features:
            value = pooled[f.name] if f.is_sparse else inputs[f"{f.name}.values"]
            if f.name in self._user:
                if f.is_sparse:
                    value = value[: _batch_size(inputs[f"{f.name}.lengths"])]
                user.append(value)
            else:
                item.append(value)
        return self.split_towers[name](torch.cat(user, dim=1), torch.cat(item, dim=1))

    def _deep_group(
        self,
        name: str,
        inputs: dict[str, torch.Tensor],
        pooled: dict[str, torch.Tensor],
        batch: int,
    ) -> torch.Tensor:
        """A DEEP group's [B, D_g] input, user-side parts expanded."""
        features = []
        for f in self._groups[name].features:
            value = pooled[f.name] if f.is_sparse else inputs[f"{f.name}.values"]
            if f.name in self._user:
                if f.is_sparse:
                    value = value[: _batch_size(inputs[f"{f.name}.lengths"])]
                value = _expand_rows(value, batch)
            features.append(value)
        return torch.cat(features, dim=1)

    def _din_tower(
        self,
        name: str,
        inputs: dict[str, torch.Tensor],
        jagged: dict[str, JaggedTensor],
        batch: int,
    ) -> torch.Tensor:
        """A DIN tower's [B, D_s] output; the sequence keeps its U rows."""
        group = self._groups[name]
        queries = []
        for f in group.query_features:
            query = jagged[f.name].to_padded_dense(1).squeeze(1)
            if f.name in self._user:
                lengths = inputs[f"{f.name}.lengths"]
                query = _expand_rows(query[: _batch_size(lengths)], batch)
            queries.append(query)
        first = group.sequence_features[0].name
        return self.split_din[name](
            torch.cat(queries, dim=1),
            self._din_sequence(group, inputs, jagged),
            inputs[f"{first}.lengths"],
        )

    def _din_sequence(
        self,
        group: GroupSpec,
        inputs: dict[str, torch.Tensor],
        jagged: dict[str, JaggedTensor],
    ) -> torch.Tensor:
        """A SEQUENCE group's [U, T, D_s] sequence, looked up once per user row."""
        first = group.sequence_features[0].name
        lengths = inputs[f"{first}.lengths"]
        steps = _sequence_steps(lengths, self.model.embedding._seq_caps[first])
        sequence = [
            _user_rows_dense(jagged[f.name].values(), lengths, steps)
            for f in group.sequence_features
        ]
        return torch.cat(sequence, dim=2)

    def _build_kjt(
        self, keys: list[str], inputs: dict[str, torch.Tensor], batch: int
    ) -> KeyedJaggedTensor:
        values = torch.cat([inputs[f"{k}.values"] for k in keys])
        lengths = torch.cat(
            [
                _pad_lengths(inputs[f"{k}.lengths"], batch)
                if k in self._user
                else inputs[f"{k}.lengths"]
                for k in keys
            ]
        )
        return KeyedJaggedTensor.from_lengths_sync(
            keys=keys, values=values, lengths=lengths
        )


def _split_towers(
    model: MultiTowerDIN, groups: dict[str, GroupSpec], user: set[str]
) -> dict[str, SplitTower]:
    """`SplitTower`s of the DEEP towers whose group has features of both sides."""
    towers = {}
    for name in model._tower_inputs:
        spans: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        start = 0
        for f in groups[name].features:
            width = f.embedding_dim if f.is_sparse else f.value_dim
            spans[f.name in user].append((start, start + width))
            start += width
        if spans[True] and spans[False]:
            towers[name] = SplitTower(model.towers[name], spans[True], spans[False])
    return towers
