"""The model's own forward time on prepared tensors, in this process.

The model inputs are those the server's own code builds for the bench
request: the JSON body goes through the server's decoder and `Ranker`
(item rows from the same item table, FG tiled and item-side inputs gathered
when the export is tiled), and the tensors the ranker hands to the model are
kept. Then only `model(inputs)` is timed, on the same artifact the server
loads (INT8 + INPUT_TILE 3 for recship, the plain export for TorchServe):
the floor that serving overhead is measured against.
"""

import json
import time

import numpy as np
import torch

from recship.data.taobao import ITEM_ID
from recship.export.artifact import load_artifact
from recship.serving.item_store import ItemStore
from recship.serving.protocol_json import decode_json_request
from recship.serving.ranker import Ranker


class _Recorder:
    """Calls the model and keeps the inputs of the last call."""

    def __init__(self, model) -> None:
        self.model = model
        self.inputs: dict[str, torch.Tensor] = {}

    def __call__(self, inputs: dict[str, torch.Tensor]):
        self.inputs = inputs
        return self.model(inputs)


def prepare_inputs(export_dir: str, body: dict, items_path: str):
    """(model, model inputs) of one rank request body, as the server's
    ranker builds them."""
    artifact = load_artifact(export_dir)
    model = artifact.model
    recorder = _Recorder(model)
    artifact.model = recorder
    ranker = Ranker(artifact, ItemStore.load(items_path, ITEM_ID))
    ranker.rank(decode_json_request(json.dumps(body).encode()))
    return model, recorder.inputs


def time_forward(model, inputs: dict[str, torch.Tensor], rounds: int = 50) -> float:
    """Median forward time in ms, after warm-up calls (TorchScript's profiling
    executor optimizes on the first calls of a shape)."""
    with torch.inference_mode():
        for _ in range(10):
            model(inputs)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            model(inputs)
            times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))
