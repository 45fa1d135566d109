"""The embedded item feature store: an item table held in memory.

Rows come from a Parquet (or CSV) table keyed by an item id column; lookups
take the request's item ids as strings and return the rows of those found.
"""

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from recship.data.reader import read_table
from recship.errors import DataError

logger = logging.getLogger(__name__)


class ItemStore:
    """Item features by item id, in memory.

    Args:
        table: one row per item.
        id_column: the column holding item ids.
    """

    def __init__(self, table: pa.Table, id_column: str) -> None:
        if id_column not in table.column_names:
            raise DataError(
                f"item table has no id column {id_column!r}; "
                f"columns: {table.column_names}"
            )
        self.table = table.combine_chunks()
        self.id_column = id_column
        # What the server derives from the table once per load (e.g. the
        # item-side model inputs, `item_inputs.py`), by name.
        self.derived: dict[str, Any] = {}
        ids = self.table.column(id_column).cast(pa.string()).to_pylist()
        # Later rows win for duplicated ids, as a later write would.
        self._rows = {
            item_id: row for row, item_id in enumerate(ids) if item_id is not None
        }
        # NOTE: debug, not info: the item cache builds one at every refresh.
        logger.debug(
            "item store: %d items, %d columns", len(self._rows), table.num_columns
        )

    @classmethod
    def load(
        cls, path: str | Path, id_column: str, dataset_type: str = "ParquetDataset"
    ):
        """An item store from a Parquet or CSV table."""
        return cls(read_table(str(path), dataset_type), id_column)

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, item_ids: list[str]) -> tuple[np.ndarray, pa.Table]:
        """Rows of `item_ids` that exist.

        Returns:
            found: bool [N], True where the id is in the store;
            rows: the found items' rows, in request order.
        """
        indices = self.positions(item_ids)
        found = indices >= 0
        return found, self.table.take(pa.array(indices[found]))

    def lookup_positions(self, item_ids: list[str]) -> tuple["ItemStore", np.ndarray]:
        """This store and the row of every id (-1 where absent), int64 [N]."""
        return self, self.positions(item_ids)

    def positions(self, item_ids: list[str]) -> np.ndarray:
        """Row of every id in `table`, int64 [N]; -1 where the id is absent."""
        rows = [self._rows.get(item_id, -1) for item_id in item_ids]
        return np.asarray(rows, dtype=np.int64)
