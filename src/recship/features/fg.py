"""Feature generation (FG): raw columns to model inputs, vectorized.

One implementation serves training, offline predict and the server, so the
same raw row gives bit-identical model inputs on all three paths. Work is done
per feature over the whole batch with PyArrow and NumPy; there is no loop over
rows.

Model inputs, for a batch of B rows:

- sparse feature `f` (ids, or raw values with boundaries):
  `f.values` int64 [sum of lengths] and `f.lengths` int32 [B];
- dense raw feature `f`: `f.values` float32 [B, value_dim].
"""

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from recship.errors import FeatureError
from recship.features.hashing import hash_to_buckets
from recship.features.spec import FeatureSpec

ArrayLike = pa.Array | pa.ChunkedArray

_INTEGER_TEXT = r"^\s*[+-]?\d+\s*$"
# Dense values become float32 model inputs; beyond this they would be inf.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class _Jagged:
    """Flat elements with per-row lengths: the working form of a feature."""

    def __init__(self, elements: pa.Array, lengths: np.ndarray) -> None:
        self.elements = elements
        self.lengths = lengths.astype(np.int32, copy=False)

    def rows(self) -> np.ndarray:
        """Row index of every element, int64 [len(elements)]."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)


def _as_array(column: ArrayLike) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def _list_lengths(lists: pa.Array) -> np.ndarray:
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    return lengths.to_numpy(zero_copy_only=False)


def _explode(column: pa.Array, delimiter: str) -> _Jagged:
    """Every cell as a list of elements: lists flatten, strings split."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return _Jagged(pc.list_flatten(column), _list_lengths(column))
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        # An empty cell holds no elements (not one empty element).
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        lists = pc.split_pattern(column, pattern=delimiter)
        return _Jagged(pc.list_flatten(lists), _list_lengths(lists))
    if pa.types.is_null(column.type):
        return _Jagged(pa.array([], pa.string()), np.zeros(len(column), np.int32))
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return _Jagged(column.drop_null(), valid.astype(np.int32))


def _keep(jagged: _Jagged, keep: np.ndarray) -> _Jagged:
    rows = jagged.rows()[keep]
    lengths = np.bincount(rows, minlength=len(jagged.lengths))
    return _Jagged(jagged.elements.filter(pa.array(keep)), lengths)


def _drop_empty(jagged: _Jagged) -> _Jagged:
    elements = jagged.elements
    if pa.types.is_string(elements.type) or pa.types.is_large_string(elements.type):
        keep = pc.and_(elements.is_valid(), pc.not_equal(elements, ""))
    else:
        keep = elements.is_valid()
    keep_np = pc.fill_null(keep, False).to_numpy(zero_copy_only=False)
    if keep_np.all():
        return jagged
    return _keep(jagged, keep_np)


def _truncate(jagged: _Jagged, max_length: int) -> _Jagged:
    if max_length <= 0 or int(jagged.lengths.max(initial=0)) <= max_length:
        return jagged
    starts = np.repeat(np.cumsum(jagged.lengths) - jagged.lengths, jagged.lengths)
    position = np.arange(len(jagged.elements)) - starts
    return _keep(jagged, position < max_length)


def _bad_value_error(
    spec: FeatureSpec, jagged: _Jagged, bad: np.ndarray, expected: str
) -> FeatureError:
    index = int(np.nonzero(bad)[0][0])
    row = int(jagged.rows()[index])
    value = jagged.elements[index].as_py()
    return FeatureError(
        f"feature {spec.name!r} (column {spec.column!r}), row {row}: value "
        f"{value!r} is not {expected}"
    )


def _to_int64(spec: FeatureSpec, jagged: _Jagged) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids and a validity mask (False where the element is empty)."""
    elements = jagged.elements
    if pa.types.is_integer(elements.type):
        valid = elements.is_valid().to_numpy(zero_copy_only=False)
        return pc.fill_null(elements, 0).to_numpy(zero_copy_only=False).astype(
            np.int64
        ), valid
    if pa.types.is_floating(elements.type):
        values = pc.fill_null(elements, np.nan).to_numpy(zero_copy_only=False)
        valid = np.isfinite(values)
        fractional = valid & (np.floor(values) != values)
        if fractional.any():
            raise _bad_value_error(spec, jagged, fractional, "an integer id")
        # An integral float beyond int64 is no id any table has: missing.
        valid &= np.abs(values) < 2.0**63
        return np.where(valid, values, 0).astype(np.int64), valid
    if pa.types.is_boolean(elements.type):
        return _to_int64(spec, _Jagged(elements.cast(pa.int64()), jagged.lengths))

    text = elements.cast(pa.string())
    valid = pc.fill_null(pc.not_equal(text, ""), False).to_numpy(zero_copy_only=False)
    numeric = pc.fill_null(pc.match_substring_regex(text, _INTEGER_TEXT), False)
    bad = valid & ~numeric.to_numpy(zero_copy_only=False)
    if bad.any():
        raise _bad_value_error(spec, jagged, bad, "an integer id")
    cleaned = pc.if_else(
        pc.and_(numeric, pa.array(valid)), pc.utf8_trim_whitespace(text), "0"
    )
    try:
        return cleaned.cast(pa.int64()).to_numpy(zero_copy_only=False), valid
    except pa.ArrowInvalid as exc:
        raise FeatureError(f"feature {spec.name!r}: id out of the int64 range") from exc


def _to_float64(spec: FeatureSpec, jagged: _Jagged) -> tuple[np.ndarray, np.ndarray]:
    """Float values and a validity mask (False where empty or not finite)."""
    elements = jagged.elements
    if pa.types.is_integer(elements.type) or pa.types.is_floating(elements.type):
        # Unsafe: an int beyond 2**53 becomes the nearest float, not an error.
        values = pc.fill_null(elements.cast(pa.float64(), safe=False), np.nan)
        values = values.to_numpy(zero_copy_only=False)
        return values, np.isfinite(values)
    text = elements.cast(pa.string())
    nonempty = pc.fill_null(pc.not_equal(text, ""), False).to_numpy(
        zero_copy_only=False
    )
    try:
        values = pc.if_else(pa.array(nonempty), text, "nan").cast(pa.float64())
    except pa.ArrowInvalid:
        parsed = [_parse_float(v) for v in text.to_pylist()]  # only on the error path
        bad = np.array([v is None for v in parsed], dtype=bool) & nonempty
        if bad.any():
            raise _bad_value_error(spec, jagged, bad, "a number") from None
        # Forms Python reads and Arrow does not (" 7 ", "1_000").
        values = np.array([np.nan if v is None else v for v in parsed], np.float64)
        return values, np.isfinite(values)
    values = values.to_numpy(zero_copy_only=False)
    return values, np.isfinite(values)


def _parse_float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _to_strings(jagged: _Jagged) -> tuple[pa.Array, np.ndarray]:
    elements = jagged.elements
    if pa.types.is_floating(elements.type):
        values = elements.to_numpy(zero_copy_only=False)
        integral = np.isfinite(values) & (np.floor(values) == values)
        integral &= np.abs(np.nan_to_num(values)) < 2.0**63
        # NOTE: 12.0 must hash like "12" so a float column of ids (CSV, pandas
        # with nulls) and an int column give the same bucket.
        as_int = pc.cast(pa.array(np.where(integral, values, 0)), pa.int64())
        text = pc.if_else(
            pa.array(integral), as_int.cast(pa.string()), elements.cast(pa.string())
        )
    else:
        text = elements.cast(pa.string())
    valid = pc.fill_null(pc.not_equal(text, ""), False).to_numpy(zero_copy_only=False)
    return text, valid


def _to_ids(spec: FeatureSpec, jagged: _Jagged) -> tuple[np.ndarray, np.ndarray]:
    """Embedding row ids of every element and which elements are usable."""
    if spec.boundaries:
        values, valid = _to_float64(spec, jagged)
        ids = np.searchsorted(np.asarray(spec.boundaries), values, side="right")
        return ids.astype(np.int64), valid
    if spec.hash_bucket_size:
        text, valid = _to_strings(jagged)
        return hash_to_buckets(text, spec.hash_bucket_size), valid
    if spec.vocab_list:
        text, valid = _to_strings(jagged)
        index = pc.index_in(text, value_set=pa.array(spec.vocab_list, pa.string()))
        ids = pc.fill_null(index, len(spec.vocab_list)).to_numpy(zero_copy_only=False)
        return ids.astype(np.int64), valid
    ids, valid = _to_int64(spec, jagged)
    # NOTE: ids outside [0, num_buckets) are out of vocabulary; they are
    # treated as missing rather than wrapped onto some other id's row.
    in_range = (ids >= 0) & (ids < spec.num_buckets)
    return np.where(in_range, ids, 0), valid & in_range


class FeatureGenerator:
    """Runs FG for a fixed list of feature specs.

    Args:
        specs: the features to generate, e.g. from `build_feature_specs` or
            `specs_from_fg_json`.
    """

    def __init__(self, specs: list[FeatureSpec]) -> None:
        self.specs = list(specs)
        self._default_ids = {
            s.name: self._default_id(s) for s in self.specs if s.is_sparse
        }

    @property
    def input_columns(self) -> list[str]:
        """Raw columns FG reads, each once, in spec order."""
        return list(dict.fromkeys(spec.column for spec in self.specs))

    def _default_id(self, spec: FeatureSpec) -> int | None:
        if spec.default_value == "":
            return None
        jagged = _Jagged(pa.array([spec.default_value]), np.ones(1, np.int32))
        ids, valid = _to_ids(spec, jagged)
        return int(ids[0]) if valid[0] else None

    def generate(
        self,
        columns: Mapping[str, ArrayLike],
        num_rows: int,
        *,
        missing_ok: bool = False,
    ) -> dict[str, np.ndarray]:
        """Model inputs for `num_rows` rows of raw `columns`.

        Args:
            columns: raw column name to an array of `num_rows` cells.
            num_rows: B, the number of rows.
            missing_ok: treat an absent column as all empty instead of
                failing (the server does this for optional features).

        Returns:
            Input name to array, as described in the module docstring.

        Raises:
            FeatureError: a column is absent, has the wrong length, or holds a
                value the feature cannot take; the message names them.
        """
        inputs: dict[str, np.ndarray] = {}
        for spec in self.specs:
            column = self._column(spec, columns, num_rows, missing_ok)
            try:
                if spec.is_sparse:
                    values, lengths = self._generate_sparse(spec, column)
                    inputs[f"{spec.name}.values"] = values
                    inputs[f"{spec.name}.lengths"] = lengths
                else:
                    inputs[f"{spec.name}.values"] = self._generate_dense(spec, column)
            except (
                pa.ArrowInvalid,
                pa.ArrowTypeError,
                pa.ArrowNotImplementedError,
            ) as exc:
                # Arrow refuses a value of the input (a list of lists where
                # ids go, a number out of range): the input's fault.
                raise FeatureError(
                    f"feature {spec.name!r} (column {spec.column!r}) cannot use "
                    f"values of type {column.type}: {exc}"
                ) from exc
        self._align_sequences(inputs)
        return inputs

    def _align_sequences(self, inputs: dict[str, np.ndarray]) -> None:
        # Sub-features of one sequence describe the same steps. An empty cell
        # beside non-empty siblings (a brand list lost to a null) becomes
        # default ids of the siblings' length; differing non-empty lengths
        # are an error, since steps could no longer be matched.
        sequences: dict[str, list[FeatureSpec]] = {}
        for spec in self.specs:
            if spec.is_sequence and spec.is_sparse:
                sequences.setdefault(spec.sequence_name, []).append(spec)
        for name, members in sequences.items():
            lengths = np.stack([inputs[f"{m.name}.lengths"] for m in members])
            target = lengths.max(axis=0)
            mismatch = (lengths != target) & (lengths != 0)
            if mismatch.any():
                which, row = (int(v[0]) for v in np.nonzero(mismatch))
                raise FeatureError(
                    f"sequence {name!r}, row {row}: {members[which].name!r} has "
                    f"{int(lengths[which, row])} steps but its siblings have "
                    f"{int(target[row])}"
                )
            for index, member in enumerate(members):
                empty = (lengths[index] == 0) & (target > 0)
                if empty.any():
                    fill = self._default_ids[member.name] or 0
                    values = inputs[f"{member.name}.values"]
                    out = np.full(int(target.sum()), fill, dtype=np.int64)
                    out[np.repeat(~empty, target)] = values
                    inputs[f"{member.name}.values"] = out
                    inputs[f"{member.name}.lengths"] = target.astype(np.int32)

    @staticmethod
    def _column(
        spec: FeatureSpec,
        columns: Mapping[str, ArrayLike],
        num_rows: int,
        missing_ok: bool,
    ) -> pa.Array:
        if spec.column not in columns:
            if missing_ok:
                return pa.nulls(num_rows, pa.string())
            raise FeatureError(
                f"feature {spec.name!r} needs input column {spec.column!r}, which is "
                f"absent; present: {sorted(columns)}"
            )
        column = _as_array(columns[spec.column])
        if len(column) != num_rows:
            raise FeatureError(
                f"feature {spec.name!r}: column {spec.column!r} has {len(column)} "
                f"values, expected {num_rows}"
            )
        return column

    def _generate_sparse(
        self, spec: FeatureSpec, column: pa.Array
    ) -> tuple[np.ndarray, np.ndarray]:
        default_id = self._default_ids[spec.name]
        if spec.is_sequence:
            # Sub-features of one sequence must stay aligned position by
            # position, so an empty element becomes the default id (or 0)
            # instead of being dropped.
            jagged = _truncate(
                _explode(column, spec.sequence_delim), spec.sequence_length
            )
            ids, valid = _to_ids(spec, jagged)
            ids = np.where(valid, ids, default_id or 0)
            return ids.astype(np.int64), jagged.lengths

        jagged = _drop_empty(_explode(column, spec.separator))
        ids, valid = _to_ids(spec, jagged)
        if not valid.all():
            jagged = _keep(jagged, valid)
            ids = ids[valid]
        if default_id is None:
            return ids.astype(np.int64), jagged.lengths
        empty = jagged.lengths == 0
        if not empty.any():
            return ids.astype(np.int64), jagged.lengths
        lengths = np.where(empty, 1, jagged.lengths).astype(np.int32)
        filled = np.full(int(lengths.sum()), default_id, dtype=np.int64)
        filled[np.repeat(~empty, lengths)] = ids
        return filled, lengths

    @staticmethod
    def _generate_dense(spec: FeatureSpec, column: pa.Array) -> np.ndarray:
        jagged = _drop_empty(_explode(column, spec.separator))
        values, valid = _to_float64(spec, jagged)
        default = float(spec.default_value)
        rows = len(jagged.lengths)
        out = np.full((rows, spec.value_dim), default, dtype=np.float64)
        complete = jagged.lengths == spec.value_dim
        partial = (jagged.lengths != 0) & ~complete
        if partial.any():
            row = int(np.nonzero(partial)[0][0])
            raise FeatureError(
                f"feature {spec.name!r} (column {spec.column!r}), row {row}: has "
                f"{int(jagged.lengths[row])} values, expected {spec.value_dim}"
            )
        too_large = valid & (np.abs(np.nan_to_num(values)) > _FLOAT32_MAX)
        if too_large.any():
            raise _bad_value_error(spec, jagged, too_large, "within the float32 range")
        values = np.where(valid, values, default)
        out[complete] = values.reshape(-1, spec.value_dim)
        return out.astype(np.float32)


def to_tensors(inputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """FG output as torch tensors (sharing memory where numpy allows)."""
    tensors = {}
    for name, array in inputs.items():
        if not array.flags.writeable or not array.flags.c_contiguous:
            array = np.ascontiguousarray(array).copy()
        tensors[name] = torch.from_numpy(array)
    return tensors


def generate_tensors(
    generator: FeatureGenerator, batch: pa.RecordBatch | pa.Table
) -> dict[str, torch.Tensor]:
    """FG on every row of `batch`, as model input tensors."""
    columns = {name: batch.column(name) for name in batch.schema.names}
    return to_tensors(generator.generate(columns, batch.num_rows))
