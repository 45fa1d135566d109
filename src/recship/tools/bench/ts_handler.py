"""TorchServe handler of the benchmark baseline: a rank request in, scores out.

Runs inside TorchServe's Python worker (.venv-torchserve, recship importable
through PYTHONPATH=src). It does the same work per request as recship's
server on the same JSON body: look up the candidates' item rows, run
recship's FG from the export's fg.json on N rows (user features repeated on
every row, as an untiled server must), score with the plain TorchScript
model, and answer `{"item_ids": [...], "probs": [...]}`. Only the server
framework and the model path differ from recship's.
"""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

try:  # the plain export's jagged ops live in fbgemm_gpu
    import fbgemm_gpu  # noqa: F401
except ImportError:  # pragma: no cover
    pass

from recship.features.fg import FeatureGenerator, to_tensors
from recship.features.spec import specs_from_fg_json

EMPTY_SCORE = 0.0


class _Scorer:
    def __init__(self, model_dir: str) -> None:
        settings = json.loads((Path(model_dir) / "bench_settings.json").read_text())
        export_dir = Path(settings["export_dir"])
        threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
        torch.set_num_threads(threads)
        self.model = torch.jit.load(str(export_dir / "scripted_model.pt"))
        self.model.eval()
        fg_json = json.loads((export_dir / "fg.json").read_text())
        self.generator = FeatureGenerator(specs_from_fg_json(fg_json))
        self.sides = {s.column: s.request_side for s in self.generator.specs}
        self.items = pq.read_table(settings["items_path"]).combine_chunks()
        ids = self.items.column(settings["id"]).cast(pa.string()).to_pylist()
        self.rows = {item_id: row for row, item_id in enumerate(ids)}

    def score(self, request: dict) -> dict:
        item_ids = [str(i) for i in request["item_ids"]]
        index = np.array([self.rows.get(i, -1) for i in item_ids], dtype=np.int64)
        known = index >= 0
        count = int(known.sum())
        probs = np.full(len(item_ids), EMPTY_SCORE, dtype=np.float32)
        if count:
            items = self.items.take(pa.array(index[known]))
            columns = {}
            for column, side in self.sides.items():
                if side == "user" and column in request["user_features"]:
                    columns[column] = pa.array(
                        [request["user_features"][column]] * count
                    )
                elif side == "context" and column in request["context_features"]:
                    columns[column] = pa.array(
                        request["context_features"][column][:1] * count
                    )
                elif column in items.column_names:
                    columns[column] = items.column(column)
            inputs = self.generator.generate(columns, count, missing_ok=True)
            with torch.inference_mode():
                probs[known] = self.model(to_tensors(inputs))["probs"].numpy()
        return {"item_ids": item_ids, "probs": probs.tolist()}


_scorer: _Scorer | None = None


def handle(data, context):
    """TorchServe's entry point: one answer per request of the batch."""
    global _scorer
    if _scorer is None:
        _scorer = _Scorer(context.system_properties["model_dir"])
    if data is None:
        return None
    answers = []
    for row in data:
        body = row.get("body") or row.get("data")
        if isinstance(body, (bytes, bytearray)):
            body = json.loads(body)
        answers.append(json.dumps(_scorer.score(body)))
    return answers
