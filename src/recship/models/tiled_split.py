"""A tiled MultiTowerDIN cut at its embedding lookups, for AOT compilation.

AOTInductor compiles the dense part of a model (see `recship.export.aot`);
the lookups stay TorchScript. For a tiled model (`TiledMultiTowerDIN`) the
cut depends on the mode:

- mode 2 expands the user side before the lookups, so the sparse part is
  that expansion plus the lookups (`ExpandedLookups`), and the dense part is
  the untiled model's own;
- mode 3 looks the user side up once, so the sparse part (`TiledLookups`)
  hands over user-side tensors with U rows and item-side tensors with B
  rows, and the dense part (`TiledDense`) expands the user side and runs the
  split DIN attention.

U is 1 for a rank request (the user side sent once) and B for untiled rows
(offline predict). A compiled program cannot broadcast a dynamic U against a
dynamic B, so the sparse part also hands over `rows` [B], the user row of
each item (all 0, or 0..B-1), and the dense part gathers with it.
"""

import torch
from torch import nn

from recship.models.tiling import TiledMultiTowerDIN

ROWS_KEY = "__rows__"


@torch.fx.wrap
def _rows_of(users: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    # The user row of each of the B items: [B] int64, all 0 when U is 1.
    count = batch.shape[0]
    if users.shape[0] == count:
        return torch.arange(count, device=users.device)
    return torch.zeros(count, dtype=torch.long, device=users.device)


@torch.fx.wrap
def _count(tensor: torch.Tensor) -> int:
    # fx.wrap patches only the calling module, so tiling's helper is not reused.
    return tensor.shape[0]


@torch.fx.wrap
def _leading(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # The first rows of `tensor`, as many as `like` has.
    return tensor[: like.shape[0]]


def user_side_keys(tiled: TiledMultiTowerDIN) -> list[str]:
    """Keys of `TiledLookups`' output that have U rows rather than B."""
    keys = []
    for group in tiled._groups.values():
        if group.is_sequence:
            keys += [f"{group.name}.sequence", f"{group.name}.lengths"]
        features = group.query_features if group.is_sequence else group.features
        keys += [f"{group.name}/{f.name}" for f in features if f.name in tiled._user]
    return keys


class ExpandedLookups(nn.Module):
    """Mode 2's sparse part: user side expanded to B rows, then the lookups.

    forward returns what the untiled model's `embedding` returns.
    """

    def __init__(self, tiled: TiledMultiTowerDIN) -> None:
        super().__init__()
        self.tiled = tiled

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        batch = _count(inputs[self.tiled._batch_key])
        expanded = self.tiled._expand_inputs(inputs, batch)
        return self.tiled.model.embedding(expanded)


class TiledLookups(nn.Module):
    """Mode 3's sparse part: every lookup once, nothing expanded.

    forward returns, per feature `f` of a DEEP group or DIN query of group
    `g`, `g/f` -> [B, D_f] (item side) or [U, D_f] (user side); per SEQUENCE
    group `s`, `s.sequence` -> [U, T, D_s] and `s.lengths` -> [U]; and
    `__rows__` -> [B].
    """

    def __init__(self, tiled: TiledMultiTowerDIN) -> None:
        super().__init__()
        self.tiled = tiled
        self._groups = list(tiled._groups.values())
        self._user = tiled._user
        user_inputs = [
            f"{f.name}.{'lengths' if f.is_sparse else 'values'}"
            for g in self._groups
            for f in g.features
            if f.name in tiled._user
        ]
        self._rows_key = user_inputs[0] if user_inputs else tiled._batch_key

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tiled = self.tiled
        batch_input = inputs[tiled._batch_key]
        batch = _count(batch_input)
        embedding = tiled.model.embedding
        pooled: dict[str, torch.Tensor] = {}
        if embedding.ebc is not None:
            kjt = tiled._build_kjt(embedding._pooled_keys, inputs, batch)
            pooled = embedding.ebc(kjt).to_dict()
        jagged = {}
        if embedding.ec is not None:
            jagged = embedding.ec(
                tiled._build_kjt(embedding._jagged_keys, inputs, batch)
            )

        out: dict[str, torch.Tensor] = {}
        for group in self._groups:
            if not group.is_sequence:
                for f in group.features:
                    if not f.is_sparse:
                        out[f"{group.name}/{f.name}"] = inputs[f"{f.name}.values"]
                    elif f.name in self._user:
                        # The KJT rows past U are empty; drop them.
                        out[f"{group.name}/{f.name}"] = _leading(
                            pooled[f.name], inputs[f"{f.name}.lengths"]
                        )
                    else:
                        out[f"{group.name}/{f.name}"] = pooled[f.name]
                continue
            for f in group.query_features:
                query = jagged[f.name].to_padded_dense(1).squeeze(1)
                if f.name in self._user:
                    query = _leading(query, inputs[f"{f.name}.lengths"])
                out[f"{group.name}/{f.name}"] = query
            out[f"{group.name}.sequence"] = tiled._din_sequence(group, inputs, jagged)
            out[f"{group.name}.lengths"] = inputs[
                f"{group.sequence_features[0].name}.lengths"
            ]
        out[ROWS_KEY] = _rows_of(inputs[self._rows_key], batch_input)
        return out


class TiledDense(nn.Module):
    """Mode 3's dense part: `TiledLookups`' output -> model outputs.

    Shares the trained modules of `tiled` (towers, split DIN, final MLP).
    """

    def __init__(self, tiled: TiledMultiTowerDIN) -> None:
        super().__init__()
        model = tiled.model
        self.towers = model.towers
        self.split_din = tiled.split_din
        self.final = model.final
        self.output = model.output
        groups = tiled._groups
        self._tower_parts = {
            name: [(f"{name}/{f.name}", f.name in tiled._user) for f in g.features]
            for name, g in groups.items()
            if name in model._tower_inputs
        }
        self._tower_inputs = list(model._tower_inputs)
        self._din_inputs = list(model._din_inputs)
        self._query_parts = {
            name: [
                (f"{name}/{f.name}", f.name in tiled._user)
                for f in groups[name].query_features
            ]
            for name in self._din_inputs
        }

    def forward(self, grouped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows = grouped[ROWS_KEY]
        hidden = [
            self.towers[name](self._gather(grouped, self._tower_parts[name], rows))
            for name in self._tower_inputs
        ]
        for name in self._din_inputs:
            hidden.append(
                self.split_din[name](
                    self._gather(grouped, self._query_parts[name], rows),
                    grouped[f"{name}.sequence"],
                    grouped[f"{name}.lengths"],
                    rows,
                )
            )
        x = torch.cat(hidden, dim=1)
        if self.final is not None:
            x = self.final(x)
        logits = self.output(x).squeeze(1)
        return {"logits": logits, "probs": torch.sigmoid(logits)}

    @staticmethod
    def _gather(
        grouped: dict[str, torch.Tensor],
        parts: list[tuple[str, bool]],
        rows: torch.Tensor,
    ) -> torch.Tensor:
        # [B, D] of the group: user-side parts read at each item's user row.
        return torch.cat(
            [
                grouped[key].index_select(0, rows) if user else grouped[key]
                for key, user in parts
            ],
            dim=1,
        )
