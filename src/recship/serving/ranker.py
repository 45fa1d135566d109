"""Scores one rank request: resolve features, FG, model, select outputs.

User features come from the request and are tiled across the candidate
items; item features from the request override the item store; context
features hold one value per item or one for all. Items that are neither in
the store nor described by the request get `item_empty_score`.
"""

import logging
import re
import time
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from recship.errors import BadRequestError, FeatureError
from recship.export.artifact import LoadedArtifact
from recship.export.tiling import TiledFeatureGenerator
from recship.features.fg import to_tensors
from recship.serving.bypass import bypass_inputs
from recship.serving.feature_join import FeatureJoiner
from recship.serving.item_cache import ItemCache
from recship.serving.item_store import ItemStore
from recship.serving.request import RankRequest, RankResponse

logger = logging.getLogger(__name__)

# "row N" in FG's error messages.
_ROW = re.compile(r"\brow (\d+)\b")


def _tile(name: str, value: Any, count: int) -> pa.Array:
    try:
        return pa.array([value] * count)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise BadRequestError(
            f"feature {name!r}: value {value!r} is not usable: {exc}"
        ) from exc


def _per_item(name: str, values: list[Any], keep: np.ndarray) -> pa.Array:
    kept = [v for v, k in zip(values, keep, strict=True) if k]
    try:
        return pa.array(kept)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise BadRequestError(
            f"item feature {name!r}: mixed or unusable values: {exc}"
        ) from exc


class Ranker:
    """Ranks candidate items for one user with an exported model.

    Args:
        artifact: the loaded export.
        item_store: item features by id (an `ItemCache` refreshed from the
            feature store, or a fixed `ItemStore`); None when requests carry
            them.
        item_empty_score: score of items that cannot be scored.
        model_version: reported with every response.
        feature_joiner: fills user features by user id and `sequence_pk`
            sequences from the feature store before FG; None: requests carry
            every feature.
    """

    def __init__(
        self,
        artifact: LoadedArtifact,
        item_store: ItemStore | ItemCache | None = None,
        *,
        item_empty_score: float = 0.0,
        model_version: str = "",
        feature_joiner: FeatureJoiner | None = None,
    ) -> None:
        self.artifact = artifact
        self.item_store = item_store
        self.feature_joiner = feature_joiner
        self.item_empty_score = item_empty_score
        self.model_version = model_version
        self._sides = {s.column: s.request_side for s in artifact.generator.specs}
        # INPUT_TILE exports take the user side once: FG runs on its first row.
        self._tiler = (
            TiledFeatureGenerator(artifact.generator)
            if artifact.model_acc.get("input_tile", 0)
            else None
        )
        self.ready = True

    def close(self) -> None:
        """Stops the feature store's and item cache's background threads."""
        if self.feature_joiner is not None:
            self.feature_joiner.close()

    def _columns(
        self, request: RankRequest, known: np.ndarray, store_rows: pa.Table | None
    ) -> dict[str, pa.Array]:
        count = int(known.sum())
        columns: dict[str, pa.Array] = {}
        for column, side in self._sides.items():
            if side == "user" and column in request.user_features:
                columns[column] = _tile(column, request.user_features[column], count)
            elif side == "context" and column in request.context_features:
                values = request.context_features[column]
                if len(values) == 1:
                    columns[column] = _tile(column, values[0], count)
                else:
                    columns[column] = _per_item(column, values, known)
            elif column in request.item_features:
                columns[column] = _per_item(
                    column, request.item_features[column], known
                )
            elif store_rows is not None and column in store_rows.column_names:
                columns[column] = store_rows.column(column)
        return columns

    def rank(
        self, request: RankRequest, timings: dict[str, float] | None = None
    ) -> RankResponse:
        """Score every item of `request`, in request order.

        Args:
            request: the request; with `fg_mode == "bypass"` it carries model
                inputs, and the store lookups and FG are skipped.
            timings: when given, filled with seconds per stage: `features`
                (feature store, item lookups), `fg` and `model`.
        """
        timings = {} if timings is None else timings
        started = time.perf_counter()
        item_count = len(request.item_ids)
        if item_count == 0:
            raise BadRequestError("item_ids is empty; send at least one candidate item")
        bypass = request.fg_mode == "bypass"
        if self.feature_joiner is not None and not bypass:
            request = self.feature_joiner.join(request)
        names = request.outputs or self.artifact.output_names
        unknown_outputs = [n for n in names if n not in self.artifact.output_names]
        if unknown_outputs:
            raise BadRequestError(
                f"outputs {unknown_outputs} are not model outputs "
                f"{self.artifact.output_names}"
            )

        # Which items can be scored, and the store rows of those.
        known = np.ones(item_count, dtype=bool)
        store_rows = None
        if self.item_store is not None and not bypass:
            found, rows = self.item_store.lookup(request.item_ids)
            known = found | bool(request.item_features)
            store_rows = rows if found.all() or not request.item_features else None
            if store_rows is None:
                store_rows = self._align_rows(found, rows)

        # FG and the model, on the scorable items only.
        scored = int(known.sum())
        outputs = {
            n: np.full(item_count, self.item_empty_score, np.float32) for n in names
        }
        generated = {}
        if scored:
            columns = {} if bypass else self._columns(request, known, store_rows)
            timings["features"] = time.perf_counter() - started
            started = time.perf_counter()
            generated = self._generate(request, columns, known)
            timings["fg"] = time.perf_counter() - started
            started = time.perf_counter()
            with torch.inference_mode():
                results = self.artifact.model(to_tensors(generated))
            for name in names:
                outputs[name][known] = results[name].numpy()
            timings["model"] = time.perf_counter() - started

        response = RankResponse(
            item_ids=list(request.item_ids),
            outputs=outputs,
            model_version=self.model_version,
        )
        if request.debug_level >= 1 and scored:
            response.generate_features = _describe_generated(generated, known)
        if request.debug_level >= 2 and scored and not bypass:
            response.raw_features = _describe_raw(
                self._columns(request, known, store_rows), known
            )
        return response

    def _generate(
        self, request: RankRequest, columns: dict[str, pa.Array], known: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Model inputs: FG on `columns`, or the request's own with bypass."""
        if request.fg_mode == "bypass":
            return bypass_inputs(self.artifact.generator.specs, request)
        # Debug answers describe features per item, so they go untiled;
        # a tiled model scores untiled inputs the same.
        tiled = self._tiler is not None and request.debug_level == 0
        generator = self._tiler if tiled else self.artifact.generator
        try:
            return generator.generate(columns, int(known.sum()), missing_ok=True)
        except FeatureError as exc:
            raise BadRequestError(_name_item(str(exc), request, known)) from exc

    def _align_rows(self, found: np.ndarray, rows: pa.Table) -> pa.Table:
        # Items described only by the request have no store row; give them
        # null rows so store columns stay aligned with the scorable items.
        index = np.full(len(found), -1, dtype=np.int64)
        index[found] = np.arange(int(found.sum()))
        return rows.take(pa.array(index, mask=index < 0))


def _name_item(message: str, request: RankRequest, known: np.ndarray) -> str:
    """Adds the request item an FG error's `row N` is (rows count only the
    items being scored)."""
    match = _ROW.search(message)
    if match is None:
        return message
    scored = np.flatnonzero(known)
    row = int(match.group(1))
    if row >= len(scored):
        return message
    index = int(scored[row])
    return f"{message} (item_ids[{index}] = {request.item_ids[index]!r})"


def _describe_generated(
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


def _describe_raw(
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
