"""Online/offline consistency: score the rows of a rank request offline.

`request_rows` joins a rank request into the table an offline job would
score (the user's features on every row, each candidate's item row, the
context), independently of the server's own code path; `compare_scores`
reports how far the server's scores are from offline predict's.
"""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recship.serving.request import RankRequest


def request_rows(
    request: RankRequest,
    item_table: pa.Table,
    id_column: str,
    columns: list[str] | None = None,
) -> pa.Table:
    """One row per candidate found in `item_table`, in request order.

    `columns` (the FG input columns) that neither the request nor the item
    table holds become all-null columns, as the server treats them.
    """
    keys = pa.table(
        {
            "__key": pa.array(request.item_ids, pa.string()),
            "__position": pa.array(np.arange(len(request.item_ids))),
        }
    )
    items = item_table.append_column(
        "__key", item_table.column(id_column).cast(pa.string())
    )
    joined = keys.join(items, keys="__key", join_type="inner").sort_by("__position")
    count = joined.num_rows

    out = {name: joined.column(name) for name in item_table.column_names}
    for name, value in request.user_features.items():
        out[name] = pa.array([value] * count)
    for name, values in request.context_features.items():
        if len(values) == 1:
            out[name] = pa.array(values * count)
        else:
            positions = joined.column("__position").to_numpy()
            out[name] = pa.array([values[p] for p in positions])
    for name in columns or []:
        if name not in out:
            out[name] = pa.nulls(count, pa.string())
    return pa.table(out)


@dataclass
class Comparison:
    """Online against offline scores of the same items."""

    compared: int
    max_abs_diff: float
    offline_only: int
    online_only: int


def compare_scores(
    online: dict[str, float], offline_ids: list[str], offline_scores: np.ndarray
) -> Comparison:
    """Compare by item id; ids present on one side only are counted, not compared."""
    offline = dict(zip(offline_ids, offline_scores.tolist(), strict=True))
    shared = [item for item in offline if item in online]
    diffs = [abs(online[item] - offline[item]) for item in shared]
    return Comparison(
        compared=len(shared),
        max_abs_diff=max(diffs) if diffs else float("nan"),
        offline_only=len(set(offline) - set(online)),
        online_only=len(set(online) - set(offline)),
    )
