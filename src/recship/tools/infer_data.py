"""`recship infer-data`: rank requests for a server, and a debugging view.

Requests come from an export directory's features and either

- real rows of a table, grouped by user id: one request per user, that
  user's features once and one candidate per row (item and context
  features per item); or
- synthetic values drawn from the feature config (`fg.json`): ids inside
  their buckets, vocabulary words, prices around the boundaries, and
  sequences of random length with the same length for every sub-feature.

They are written as Processor protobuf (`.pb`, what the EAS SDK sends) and
JSON (`.json`, the JSON API) files. `show_request` scores one request on the
server's path (the `Ranker`) and the same rows on offline predict's path
(FG over a table), and prints per item the generated features and both
scores side by side.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recship.data.reader import read_table
from recship.errors import DataError
from recship.export.artifact import LoadedArtifact
from recship.features.fg import generate_tensors
from recship.features.spec import FeatureSpec
from recship.serving.protocol_json import encode_json_request
from recship.serving.protocol_pb import encode_pb_request
from recship.serving.ranker import Ranker
from recship.serving.request import RankRequest

logger = logging.getLogger(__name__)


def _sides(loaded: LoadedArtifact) -> dict[str, str]:
    """Raw column -> the request part that carries it (user/item/context)."""
    return {spec.column: spec.request_side for spec in loaded.generator.specs}


def requests_from_table(
    loaded: LoadedArtifact,
    table_path: str,
    *,
    user_id_column: str,
    item_id_column: str,
    dataset_type: str = "ParquetDataset",
    max_requests: int = 10,
    max_items: int = 200,
) -> list[RankRequest]:
    """One request per user of the table's first `max_requests` users.

    The user's features are those of its first row; each row of the user
    (up to `max_items`) is one candidate item.
    """
    sides = _sides(loaded)
    columns = list(dict.fromkeys([user_id_column, item_id_column, *sides]))
    table = read_table(table_path, dataset_type=dataset_type, columns=columns)
    if table.num_rows == 0:
        raise DataError(f"{table_path} has no rows to build requests from")

    # Users in order of first appearance; each user's rows in table order.
    users = pc.unique(table.column(user_id_column)).to_pylist()[:max_requests]
    requests = []
    for user in users:
        rows = table.filter(pc.equal(table.column(user_id_column), user))
        rows = rows.slice(0, max_items).to_pydict()
        request = RankRequest(item_ids=[str(v) for v in rows[item_id_column]])
        for column, side in sides.items():
            if side == "user":
                if rows[column][0] is not None:
                    request.user_features[column] = rows[column][0]
            elif side == "context":
                request.context_features[column] = rows[column]
            else:
                request.item_features[column] = rows[column]
        requests.append(request)
    return requests


def _synthetic_ids(
    spec: FeatureSpec, rng: np.random.Generator, count: int
) -> list[Any]:
    if spec.vocab_list:
        return [str(v) for v in rng.choice(list(spec.vocab_list), count)]
    if spec.num_buckets:
        return rng.integers(0, spec.num_buckets, count).tolist()
    if spec.boundaries:
        top = max(spec.boundaries) * 1.5 or 1.0
        return np.round(rng.uniform(0.0, top, count), 2).tolist()
    if spec.kind == "raw_feature":
        return np.round(rng.normal(0.0, 1.0, count), 4).tolist()
    return rng.integers(1, 10 * max(spec.hash_bucket_size, 1), count).tolist()


def synthetic_requests(
    loaded: LoadedArtifact,
    *,
    num_requests: int = 10,
    num_items: int = 200,
    seed: int = 0,
    item_id_column: str | None = None,
) -> list[RankRequest]:
    """Requests with values drawn from each feature's definition."""
    rng = np.random.default_rng(seed)
    specs = {spec.column: spec for spec in loaded.generator.specs}
    requests = []
    for _ in range(num_requests):
        request = RankRequest()
        lengths: dict[str, int] = {}
        for column, spec in specs.items():
            if spec.is_sequence:
                # Sub-features of one sequence describe the same steps.
                cap = max(spec.sequence_length, 1)
                steps = lengths.setdefault(
                    spec.sequence_name, int(rng.integers(1, cap + 1))
                )
                delim = spec.sequence_delim or "|"
                ids = _synthetic_ids(spec, rng, steps)
                request.user_features[column] = delim.join(str(v) for v in ids)
            elif spec.request_side == "user":
                request.user_features[column] = _synthetic_ids(spec, rng, 1)[0]
            elif spec.request_side == "context":
                request.context_features[column] = _synthetic_ids(spec, rng, num_items)
            else:
                request.item_features[column] = _synthetic_ids(spec, rng, num_items)
        ids = request.item_features.get(item_id_column or "")
        request.item_ids = (
            [str(v) for v in ids] if ids else [f"item-{i}" for i in range(num_items)]
        )
        requests.append(request)
    return requests


def write_requests(requests: list[RankRequest], output_dir: str | Path) -> list[Path]:
    """Write `request-<n>.pb` (PBRequest) and `request-<n>.json` per request."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, request in enumerate(requests):
        base = output_dir / f"request-{index:05d}"
        base.with_suffix(".pb").write_bytes(encode_pb_request(request))
        base.with_suffix(".json").write_bytes(encode_json_request(request))
        written += [base.with_suffix(".pb"), base.with_suffix(".json")]
    logger.info("wrote %d requests to %s", len(requests), output_dir)
    return written


def request_table(request: RankRequest, input_columns: list[str]) -> pa.Table:
    """The rows an offline job scores for `request`: one per item.

    Every FG input column is present; those the request lacks are null, as
    an empty cell of a table would be.
    """
    count = len(request.item_ids)
    columns: dict[str, Any] = {name: pa.nulls(count) for name in input_columns}
    for name, value in request.user_features.items():
        columns[name] = [value] * count
    for name, values in request.context_features.items():
        columns[name] = values * count if len(values) == 1 else list(values)
    for name, values in request.item_features.items():
        columns[name] = list(values)
    return pa.table(columns)


@dataclass
class ShownRequest:
    """One request scored online and offline.

    Attributes:
        item_ids: the request's items.
        features: per item, generated feature name -> value (FG output).
        online: per item, the score on the server's path.
        offline: per item, the score on offline predict's path.
        output: the output compared ("probs").
    """

    item_ids: list[str]
    features: list[dict[str, str]]
    online: np.ndarray
    offline: np.ndarray
    output: str

    @property
    def max_abs_diff(self) -> float:
        return float(np.abs(self.online - self.offline).max())


def show_request(
    loaded: LoadedArtifact, request: RankRequest, output: str = "probs"
) -> ShownRequest:
    """Score `request` with a Ranker (debug_level 1) and offline via FG."""
    debug = RankRequest(
        user_features=request.user_features,
        item_ids=request.item_ids,
        item_features=request.item_features,
        context_features=request.context_features,
        outputs=[output],
        debug_level=1,
    )
    response = Ranker(loaded).rank(debug)
    with torch.no_grad():
        rows = request_table(request, loaded.generator.input_columns)
        inputs = generate_tensors(loaded.generator, rows)
        offline = loaded.model(inputs)[output].numpy()
    return ShownRequest(
        list(request.item_ids),
        response.generate_features,
        response.outputs[output],
        offline,
        output,
    )


def format_shown(shown: ShownRequest, max_items: int = 20, width: int = 24) -> str:
    """A text table: item, generated features, online and offline scores."""
    names = list(shown.features[0]) if shown.features else []
    header = ["item_id", *names, f"online {shown.output}", f"offline {shown.output}"]
    rows = [header]
    for i, item in enumerate(shown.item_ids[:max_items]):
        features = [shown.features[i].get(n, "")[:width] for n in names]
        rows.append(
            [item, *features, f"{shown.online[i]:.6f}", f"{shown.offline[i]:.6f}"]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(
        f"{len(shown.item_ids)} items; max |online - offline| = "
        f"{shown.max_abs_diff:.2e}"
    )
    return "\n".join(lines)
