"""Prepare the real Taobao sample rows for the documented commands."""

from pathlib import Path

import pyarrow as pa

from recship.data.reader import write_table
from recship.data.taobao import ITEM_COLUMNS, ITEM_ID, load_fuxictr_csv


def item_table(rows: pa.Table) -> pa.Table:
    """One row per item (its last occurrence), with the item columns."""
    items = rows.select(ITEM_COLUMNS)
    ids = items.column(ITEM_ID).to_pylist()
    last = {item_id: index for index, item_id in enumerate(ids)}
    return items.take(pa.array(sorted(last.values())))


def convert_fuxictr_sample(input_path: str, output_dir: str) -> dict[str, str]:
    """Write `rows.parquet` (every real row, our schema) and `items.parquet`.

    The sample has 100 rows, too few for a train/eval split: both training
    and evaluation read rows.parquet, and its AUC only shows that the chain
    runs.
    """
    rows = load_fuxictr_csv(input_path)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"rows": str(out / "rows.parquet"), "items": str(out / "items.parquet")}
    write_table(rows, paths["rows"])
    write_table(item_table(rows), paths["items"])
    return paths
