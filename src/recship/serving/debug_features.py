"""Debug views of a rank request: generated and raw features per item.

With `debug_level` 1 the server returns, per item, what FG generated for it;
with 2 also the raw values FG read. Items that were not scored get empty
maps, so the lists stay aligned with the request's item ids.
"""

import numpy as np
import pyarrow as pa


def describe_generated(
    generated: dict[str, np.ndarray], known: np.ndarray
) -> list[dict[str, str]]:
    rows = int(known.sum())
    per_item: list[dict[str, str]] = [{} for _ in range(rows)]
    for name, values in generated.items():
        if name.endswith(".lengths"):
            continue
        base = name.removesuffix(".values")
        lengths = generated.get(f"{base}.lengths")
        if lengths is None:
            for i in range(rows):
                per_item[i][base] = ",".join(f"{v:g}" for v in values[i])
            continue
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for i in range(rows):
            per_item[i][base] = ",".join(
                str(v) for v in values[offsets[i] : offsets[i + 1]]
            )
    return _spread(per_item, known)


def describe_raw(
    columns: dict[str, pa.Array], known: np.ndarray
) -> list[dict[str, str]]:
    values = {name: array.to_pylist() for name, array in columns.items()}
    per_item = [
        {name: "" if v[i] is None else str(v[i]) for name, v in values.items()}
        for i in range(int(known.sum()))
    ]
    return _spread(per_item, known)


def _spread(per_item: list[dict[str, str]], known: np.ndarray) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{} for _ in range(len(known))]
    for slot, features in zip(np.flatnonzero(known), per_item, strict=True):
        out[int(slot)] = features
    return out
