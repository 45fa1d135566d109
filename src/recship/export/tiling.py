"""User-feature tiling (INPUT_TILE) at export and at request time.

Which features count as user side is decided here once, from the feature
specs, for both the exporter (which builds the tiled model) and the server
(which runs FG on the user row once and on the item rows N times):
a feature is user side when a rank request carries it with the user, i.e.
its `request_side` is "user" (user features and the click sequences).

Modes, as TorchEasyRec's INPUT_TILE: 0 (or absent) untiled; 2 user-side FG
once, expanded inside the model; 3 user-side embeddings looked up once too.
"""

import logging
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from recship.errors import ExportError
from recship.features.fg import ArrayLike, FeatureGenerator, to_tensors
from recship.features.spec import FeatureSpec
from recship.models.rank_model import MultiTowerDIN
from recship.models.tiling import TILE_MODES, TiledMultiTowerDIN

logger = logging.getLogger(__name__)

# Largest |prob difference| between tiled and untiled inputs of one model.
TILED_PROB_TOLERANCE = 1e-5


def user_side_features(specs: list[FeatureSpec]) -> list[str]:
    """Names of the features a tiled model takes with batch 1."""
    return [spec.name for spec in specs if spec.request_side == "user"]


def tile_model(model: nn.Module, specs: list[FeatureSpec], mode: int) -> nn.Module:
    """`model` unchanged for mode 0, else its tiled form (sharing weights).

    Raises:
        ExportError: the mode is unknown or the model cannot be tiled.
    """
    if mode not in TILE_MODES:
        raise ExportError(f"input_tile {mode} is not one of {TILE_MODES}")
    if mode == 0:
        return model
    if not isinstance(model, MultiTowerDIN):
        raise ExportError(
            f"input_tile {mode}: {type(model).__name__} cannot be tiled yet; "
            "export with input_tile 0"
        )
    return TiledMultiTowerDIN(model, user_side_features(specs), mode)


class TiledFeatureGenerator:
    """FG split by side: the user row once, item and context rows N times.

    Args:
        generator: the export's FG over every feature.
    """

    def __init__(self, generator: FeatureGenerator) -> None:
        user = set(user_side_features(generator.specs))
        self.user = FeatureGenerator([s for s in generator.specs if s.name in user])
        self.item = FeatureGenerator([s for s in generator.specs if s.name not in user])
        self.user_columns = set(self.user.input_columns)

    def generate(
        self, columns: Mapping[str, ArrayLike], num_rows: int, *, missing_ok: bool
    ) -> dict[str, np.ndarray]:
        """Model inputs: user side [1] rows from each user column's first cell,
        the rest [num_rows] rows (see `FeatureGenerator.generate`)."""
        user_columns = {
            name: _first_cell(column)
            for name, column in columns.items()
            if name in self.user_columns
        }
        inputs = self.user.generate(user_columns, 1, missing_ok=missing_ok)
        inputs.update(self.item.generate(columns, num_rows, missing_ok=missing_ok))
        return inputs


def request_inputs(
    generator: FeatureGenerator, batch: pa.RecordBatch | pa.Table
) -> dict[str, torch.Tensor]:
    """Model inputs of `batch` as one request: user side [1] from the first
    row, as the server sends a tiled model."""
    columns = {name: batch.column(name) for name in batch.schema.names}
    tiler = TiledFeatureGenerator(generator)
    return to_tensors(tiler.generate(columns, batch.num_rows, missing_ok=False))


def _first_cell(column: ArrayLike) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks else column.combine_chunks()
    return column.slice(0, 1)


def check_tiled_scores(
    untiled: nn.Module,
    tiled: torch.jit.ScriptModule,
    generator: FeatureGenerator,
    batch: pa.RecordBatch | pa.Table,
) -> float:
    """Max |prob diff| of `tiled` on tiled inputs against `untiled` on the
    same rows with the first row's user side on every row.

    Raises:
        ExportError: the difference is over `TILED_PROB_TOLERANCE`.
    """
    tiler = TiledFeatureGenerator(generator)
    columns = {name: batch.column(name) for name in batch.schema.names}
    same_user = {
        name: (
            pa.concat_arrays([_first_cell(column)] * batch.num_rows)
            if name in tiler.user_columns
            else column
        )
        for name, column in columns.items()
    }
    with torch.no_grad():
        expected = untiled(to_tensors(generator.generate(same_user, batch.num_rows)))
        got = tiled(request_inputs(generator, batch))
    diff = float((got["probs"] - expected["probs"]).abs().max())
    if not np.isfinite(diff) or diff > TILED_PROB_TOLERANCE:
        raise ExportError(
            f"the tiled model's scores differ from the untiled model's by {diff:.3e} "
            f"(limit {TILED_PROB_TOLERANCE}); export with input_tile 0 and report it"
        )
    logger.info("tiled vs untiled scores: max prob diff %.2e", diff)
    return diff
