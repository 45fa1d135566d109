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
from recship.features.fg import FeatureGenerator, to_tensors
from recship.features.fg_row import RowFeatureGenerator
from recship.serving.bypass import bypass_inputs
from recship.serving.debug_features import describe_generated, describe_raw
from recship.serving.feature_join import FeatureJoiner
from recship.serving.item_cache import ItemCache
from recship.serving.item_inputs import ItemInputs, build_item_inputs
from recship.serving.item_store import ItemStore
from recship.serving.request import RankRequest, RankResponse

logger = logging.getLogger(__name__)

# "row N" in FG's error messages.
_ROW = re.compile(r"\brow (\d+)\b")

# `ItemStore.derived` key of the item-side model inputs (`item_inputs.py`).
ITEM_INPUTS = "item_inputs"


def _tile(name: str, value: Any, count: int) -> pa.Array:
    try:
        return pa.array([value] * count)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        TypeError,
        OverflowError,
        UnicodeError,
    ) as exc:
        raise BadRequestError(
            f"feature {name!r}: value {value!r} is not usable: {exc}"
        ) from exc


def _per_item(name: str, values: list[Any], keep: np.ndarray) -> pa.Array:
    kept = [v for v, k in zip(values, keep, strict=True) if k]
    try:
        return pa.array(kept)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        TypeError,
        OverflowError,
        UnicodeError,
    ) as exc:
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
        # Tiled exports also gather item-side inputs generated once per item
        # table load instead of running FG on the request's N item rows.
        self._item_generators: dict[tuple[str, ...], FeatureGenerator] = {}
        self._item_specs = (
            {s.name: s for s in self._tiler.item.specs} if self._tiler else {}
        )
        self._context_rows: dict[tuple[str, ...], RowFeatureGenerator] = {}
        self._user_row = (
            RowFeatureGenerator(self._tiler.user) if self._tiler is not None else None
        )
        if self._tiler is not None and item_store is not None:
            self._derive_item_inputs(item_store)
        self.ready = True

    def _derive_item_inputs(self, item_store: ItemStore | ItemCache) -> None:
        specs = self.artifact.generator.specs
        if isinstance(item_store, ItemCache):
            item_store.add_derivation(
                ITEM_INPUTS, lambda table: build_item_inputs(specs, table)
            )
        elif ITEM_INPUTS not in item_store.derived:
            item_store.derived[ITEM_INPUTS] = build_item_inputs(specs, item_store.table)

    def close(self) -> None:
        """Stops the feature store's and item cache's background threads."""
        if self.feature_joiner is not None:
            self.feature_joiner.close()

    def _columns(
        self,
        request: RankRequest,
        known: np.ndarray,
        store_rows: pa.Table | None,
        only: list[str] | None = None,
    ) -> dict[str, pa.Array]:
        count = int(known.sum())
        columns: dict[str, pa.Array] = {}
        for column, side in self._sides.items():
            if only is not None and column not in only:
                continue
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
        gathered = None
        if self.item_store is not None and not bypass:
            items, positions = self.item_store.lookup_positions(request.item_ids)
            found = positions >= 0
            known = found | bool(request.item_features)
            gathered = self._gather_plan(request, items, positions, known)
            if gathered is None:
                rows = items.table.take(pa.array(positions[found]))
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
            if gathered is None:
                columns = {} if bypass else self._columns(request, known, store_rows)
            timings["features"] = time.perf_counter() - started
            started = time.perf_counter()
            if gathered is None:
                generated = self._generate(request, columns, known)
            else:
                generated = self._generate_gathered(request, gathered, known)
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
            response.generate_features = describe_generated(generated, known)
        if request.debug_level >= 2 and scored and not bypass:
            response.raw_features = describe_raw(
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

    def _gather_plan(
        self,
        request: RankRequest,
        items: ItemStore,
        positions: np.ndarray,
        known: np.ndarray,
    ) -> tuple[ItemStore, np.ndarray] | None:
        """(items, table rows [N_scored]) when the request's item-side inputs
        can be gathered from `items.derived`, else None (FG on the rows).

        Gathering needs a tiled export, no debug output, every scorable item
        in the table, and user-side columns that only the request carries
        (FG would otherwise read them from the first item row).
        """
        if self._tiler is None or request.debug_level != 0:
            return None
        if ITEM_INPUTS not in items.derived:
            return None
        rows = positions[known]
        if len(rows) and int(rows.min()) < 0:
            return None
        sent = request.user_features
        stored = items.table.column_names
        for column in self._tiler.user_columns:
            if column not in sent and (
                column in request.item_features or column in stored
            ):
                return None
        return items, rows

    def _generate_gathered(
        self,
        request: RankRequest,
        plan: tuple[ItemStore, np.ndarray],
        known: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Tiled model inputs: FG of the user row, gathered item-side inputs,
        and FG of the item-side features the request overrides (the same
        precedence as `_columns`)."""
        items, rows = plan
        item_inputs: ItemInputs = items.derived[ITEM_INPUTS]
        count = len(rows)

        # Item-side features the table's inputs answer, and those FG runs on.
        usable = [
            name
            for name, column in item_inputs.columns.items()
            if column not in request.item_features
            and not (
                self._sides[column] == "context" and column in request.context_features
            )
        ]
        rest = tuple(s.name for s in self._tiler.item.specs if s.name not in usable)
        shared = self._shared_context(request, rest, count)
        if shared:
            rest = tuple(name for name in rest if f"{name}.values" not in shared)
        generator = self._item_generators.get(rest)
        if generator is None:
            wanted = set(rest)
            specs = [s for s in self._tiler.item.specs if s.name in wanted]
            generator = self._item_generators.setdefault(rest, FeatureGenerator(specs))

        # Raw columns: the user row once (in plain Python when its cells
        # allow, `fg_row.py`); the FG'd item side on N rows.
        try:
            inputs = self._user_row.generate(request.user_features)
        except FeatureError:
            inputs = None  # the vectorized FG below raises it, in order
        user_columns = {
            column: _tile(column, request.user_features[column], 1)
            for column in self._tiler.user_columns
            if column in request.user_features and inputs is None
        }
        needed = [c for c in generator.input_columns if c in items.table.column_names]
        store_rows = items.table.select(needed).take(pa.array(rows)) if needed else None
        columns = self._columns(request, known, store_rows, generator.input_columns)
        try:
            if inputs is None:
                inputs = self._tiler.user.generate(user_columns, 1, missing_ok=True)
            inputs.update(generator.generate(columns, count, missing_ok=True))
        except FeatureError as exc:
            raise BadRequestError(_name_item(str(exc), request, known)) from exc
        inputs.update(shared)
        inputs.update(item_inputs.gather(rows, usable))
        return inputs

    def _shared_context(
        self, request: RankRequest, rest: tuple[str, ...], count: int
    ) -> dict[str, np.ndarray]:
        """Inputs of the context features in `rest` that the request gives
        one value for all items: FG of that one cell, repeated for the
        `count` items (FG is row by row, so N equal rows give N equal
        inputs); {} when there are none or the cells need the vectorized FG.
        """
        names = tuple(
            name
            for name in rest
            if (spec := self._item_specs[name]).request_side == "context"
            and not spec.is_sequence
            and len(request.context_features.get(spec.column, ())) == 1
        )
        if not names:
            return {}
        row_generator = self._context_rows.get(names)
        if row_generator is None:
            specs = [self._item_specs[name] for name in names]
            row_generator = self._context_rows.setdefault(
                names, RowFeatureGenerator(FeatureGenerator(specs))
            )
        cells = {
            self._item_specs[name].column: request.context_features[
                self._item_specs[name].column
            ][0]
            for name in names
        }
        try:
            row = row_generator.generate(cells)
        except FeatureError:
            return {}  # the vectorized FG raises it with the item's row
        if row is None:
            return {}
        return {name: _repeat_row(name, array, count) for name, array in row.items()}

    def _align_rows(self, found: np.ndarray, rows: pa.Table) -> pa.Table:
        # Items described only by the request have no store row; give them
        # null rows so store columns stay aligned with the scorable items.
        index = np.full(len(found), -1, dtype=np.int64)
        index[found] = np.arange(int(found.sum()))
        return rows.take(pa.array(index, mask=index < 0))


def _repeat_row(name: str, array: np.ndarray, count: int) -> np.ndarray:
    """One row's model input as `count` equal rows: `.lengths` [1] and
    `.values` of a sparse feature [L] repeat whole, dense [1, D] by row."""
    if name.endswith(".lengths"):
        return np.repeat(array, count)
    if array.ndim == 2:
        return np.repeat(array, count, axis=0)
    return np.tile(array, count)


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
