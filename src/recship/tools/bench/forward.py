"""The model's own forward time on prepared tensors, in this process.

The request's model inputs are built once, the way the server builds them
(item rows from the item table, FG tiled when the export is), and then only
`model(inputs)` is timed: the floor that serving overhead is measured
against.
"""

import time

import numpy as np
import pyarrow as pa
import torch

from recship.data.reader import read_table
from recship.data.taobao import ITEM_ID
from recship.export.artifact import load_artifact
from recship.export.tiling import TiledFeatureGenerator
from recship.features.fg import to_tensors


def prepare_inputs(export_dir: str, body: dict, items_path: str):
    """(scripted model, model inputs) of one rank request body."""
    artifact = load_artifact(export_dir)
    items = read_table(items_path, "ParquetDataset")
    position = {str(v): i for i, v in enumerate(items.column(ITEM_ID).to_pylist())}
    index = [position[i] for i in body["item_ids"] if i in position]
    rows = items.take(pa.array(index, pa.int64()))
    count = len(index)

    columns = {}
    for spec in artifact.generator.specs:
        side, column = spec.request_side, spec.column
        if side == "user" and column in body["user_features"]:
            columns[column] = pa.array([body["user_features"][column]] * count)
        elif side == "context" and column in body["context_features"]:
            columns[column] = pa.array(body["context_features"][column][:1] * count)
        elif column in rows.column_names:
            columns[column] = rows.column(column)
    generator = artifact.generator
    if artifact.model_acc.get("input_tile", 0):
        generator = TiledFeatureGenerator(generator)
    inputs = to_tensors(generator.generate(columns, count, missing_ok=True))
    return artifact.model, inputs


def time_forward(model, inputs: dict[str, torch.Tensor], rounds: int = 30) -> float:
    """Median forward time in ms, after warm-up calls."""
    with torch.inference_mode():
        for _ in range(5):
            model(inputs)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            model(inputs)
            times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))
