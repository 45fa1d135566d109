"""Item-side model inputs generated once per item table, gathered per request.

Item features are static between item cache refreshes, so FG of the item
side need not run on every request: `build_item_inputs` runs it once over
the whole item table (when the cache loads or refreshes), and
`ItemInputs.gather` assembles the model inputs of a request's N items with
NumPy fancy indexing.

FG works element by element and row by row for these features (hashing,
vocabularies, boundaries, defaults of empty cells), so a gathered row is
bit-identical to FG on that row alone; `item_inputs_test.py` checks it.
Features FG cannot generate over the whole table (a bad value in some row)
are left out and keep running FG per request, where the error names the
item.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recship.errors import FeatureError
from recship.features.fg import FeatureGenerator
from recship.features.spec import FeatureSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _SparseInputs:
    """One sparse feature over the table: ids [sum L], offsets [R + 1]."""

    values: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    single: bool  # every row has exactly one id


class ItemInputs:
    """The item-side model inputs of every row of an item table.

    Args:
        sparse: feature name to its ids over all rows.
        dense: feature name to its values [R, value_dim].
        columns: feature name to the raw column it was generated from.
    """

    def __init__(
        self,
        sparse: dict[str, _SparseInputs],
        dense: dict[str, np.ndarray],
        columns: dict[str, str],
    ) -> None:
        self._sparse = sparse
        self._dense = dense
        self.columns = columns

    @property
    def features(self) -> list[str]:
        """Names of the features held."""
        return list(self.columns)

    def gather(self, rows: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Model inputs of features `names` for table rows `rows` [N].

        Returns:
            `f.values` int64 [sum of lengths] and `f.lengths` int32 [N] for a
            sparse feature, `f.values` float32 [N, value_dim] for a dense one,
            as `FeatureGenerator.generate` gives for those rows.
        """
        inputs: dict[str, np.ndarray] = {}
        for name in names:
            dense = self._dense.get(name)
            if dense is not None:
                inputs[f"{name}.values"] = dense[rows]
                continue
            sparse = self._sparse[name]
            lengths = sparse.lengths[rows]
            if sparse.single:
                values = sparse.values[rows]
            else:
                # Element index of every gathered id: row start + position.
                starts = np.repeat(sparse.offsets[rows], lengths)
                firsts = np.repeat(np.cumsum(lengths) - lengths, lengths)
                values = sparse.values[starts + np.arange(len(starts)) - firsts]
            inputs[f"{name}.values"] = values
            inputs[f"{name}.lengths"] = lengths
        return inputs


def item_side_specs(specs: list[FeatureSpec]) -> list[FeatureSpec]:
    """Specs that may be generated from item table rows: not user side (user
    features and sequences come with the request)."""
    return [s for s in specs if s.request_side != "user"]


def build_item_inputs(specs: list[FeatureSpec], table: pa.Table) -> ItemInputs:
    """FG of the item-side features of `specs` whose column `table` holds,
    over every row of `table`.

    A feature whose FG fails on the table is left out (logged): requests
    then run FG for it, and get the error naming the item.
    """
    sparse: dict[str, _SparseInputs] = {}
    dense: dict[str, np.ndarray] = {}
    columns: dict[str, str] = {}
    present = set(table.column_names)
    for spec in item_side_specs(specs):
        if spec.column not in present:
            continue
        try:
            inputs = FeatureGenerator([spec]).generate(
                {spec.column: table.column(spec.column)}, table.num_rows
            )
        except FeatureError as exc:
            logger.warning("item inputs: %s runs FG per request: %s", spec.name, exc)
            continue
        values = inputs[f"{spec.name}.values"]
        if spec.is_sparse:
            lengths = inputs[f"{spec.name}.lengths"]
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            single = bool((lengths == 1).all())
            sparse[spec.name] = _SparseInputs(values, lengths, offsets, single)
        else:
            dense[spec.name] = values
        columns[spec.name] = spec.column
    return ItemInputs(sparse, dense, columns)
