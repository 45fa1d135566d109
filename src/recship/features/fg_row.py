"""FG of one row in plain Python: the server's per-request user row.

`FeatureGenerator.generate` is vectorized with Arrow, which costs a few
microseconds per compute call whatever the batch size; a tiled model's user
row is one row through about eight calls per feature, so FG of that row took
longer than FG of the 200 item rows once gathered. `RowFeatureGenerator`
does the same work on Python values for the common cells (None, an int, a
string of delimited integer ids or plain decimals, a list of ints or of
strings) and answers None for anything else (floats where ids go, booleans,
odd whitespace, nested lists, ids beyond int64 ...), so the caller runs the
vectorized path, which stays the one definition of FG: the fast path must
give bit-identical inputs where it answers (`fg_row_test.py` checks it
against `generate` on random cells of every kind).
"""

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from recship.features.fg import FeatureGenerator
from recship.features.spec import FeatureSpec

_INT = re.compile(r"-?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = 2**64 - 1


class _Unhandled(Exception):
    """A cell outside the fast path's cases: use the vectorized FG."""


class RowFeatureGenerator:
    """FG of a single row from Python values, or None to fall back.

    Args:
        generator: the vectorized FG whose outputs this reproduces.
    """

    def __init__(self, generator: FeatureGenerator) -> None:
        self.generator = generator
        self._vocab = {}
        for spec in generator.specs:
            if spec.vocab_list and len(set(spec.vocab_list)) == len(spec.vocab_list):
                self._vocab[spec.name] = {w: i for i, w in enumerate(spec.vocab_list)}

    def generate(self, values: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """Model inputs of one row, as `generator.generate` on
        `{column: pa.array([value])}` with `missing_ok=True` gives them.

        Args:
            values: raw column name to the row's cell (a Python value); an
                absent column is an empty cell.

        Returns:
            Input name to array (`f.values`/`f.lengths` for sparse features,
            `f.values` [1, value_dim] for dense ones), or None when a cell is
            one the fast path does not take (the vectorized FG then decides,
            errors included).
        """
        inputs: dict[str, np.ndarray] = {}
        try:
            for spec in self.generator.specs:
                elements = _elements(spec, values.get(spec.column))
                if spec.is_sparse:
                    ids, lengths = self._sparse(spec, elements)
                    inputs[f"{spec.name}.values"] = ids
                    inputs[f"{spec.name}.lengths"] = lengths
                else:
                    inputs[f"{spec.name}.values"] = _dense(spec, elements)
        except _Unhandled:
            return None
        # Sequence siblings are aligned by the vectorized FG's own code.
        self.generator._align_sequences(inputs)
        return inputs

    def _sparse(
        self, spec: FeatureSpec, elements: list[int | str]
    ) -> tuple[np.ndarray, np.ndarray]:
        default_id = self.generator._default_ids[spec.name]
        if spec.is_sequence:
            if spec.sequence_length > 0:
                elements = elements[: spec.sequence_length]
            fill = default_id or 0
            ids = [fill if i is None else i for i in self._ids(spec, elements)]
        else:
            # Empty strings are no elements; invalid ids are dropped.
            kept = [e for e in elements if e != ""]
            ids = [i for i in self._ids(spec, kept) if i is not None]
            if not ids and default_id is not None:
                ids = [default_id]
        return np.array(ids, dtype=np.int64), np.array([len(ids)], dtype=np.int32)

    def _ids(self, spec: FeatureSpec, elements: list[int | str]) -> list[int | None]:
        """Embedding row of each element; None where it is not usable."""
        if not elements:
            return []
        if spec.boundaries:
            bounds = np.asarray(spec.boundaries)
            out = []
            for value in _floats(elements):
                if value is None:
                    out.append(None)
                else:
                    out.append(int(np.searchsorted(bounds, value, side="right")))
            return out
        if spec.hash_bucket_size:
            return [
                None if t == "" else _fnv1a(t) % spec.hash_bucket_size
                for t in map(str, elements)
            ]
        if spec.vocab_list:
            vocab = self._vocab.get(spec.name)
            if vocab is None:
                raise _Unhandled
            size = len(spec.vocab_list)
            return [None if t == "" else vocab.get(t, size) for t in map(str, elements)]
        out = []
        for element in elements:
            if element == "":
                out.append(None)
                continue
            if isinstance(element, str):
                if _INT.fullmatch(element) is None:
                    raise _Unhandled
                element = int(element)
                if not _INT64_MIN <= element <= _INT64_MAX:
                    raise _Unhandled
            out.append(element if 0 <= element < spec.num_buckets else None)
        return out


def _elements(spec: FeatureSpec, cell: Any) -> list[int | str]:
    """The cell's elements, as `_explode` makes them: a string split on the
    feature's delimiter, a list as is, a scalar alone; None for none."""
    kind = type(cell)
    if cell is None:
        return []
    if kind is int:
        if not _INT64_MIN <= cell <= _INT64_MAX:
            raise _Unhandled
        return [cell]
    if kind is str:
        delimiter = spec.sequence_delim if spec.is_sequence else spec.separator
        if not delimiter or not _utf8(cell):
            raise _Unhandled
        return cell.split(delimiter) if cell else []
    if kind is list and cell:
        first = type(cell[0])
        if first not in (int, str) or any(type(e) is not first for e in cell):
            raise _Unhandled
        if first is int and not all(_INT64_MIN <= e <= _INT64_MAX for e in cell):
            raise _Unhandled
        if first is str and not all(map(_utf8, cell)):
            raise _Unhandled
        return list(cell)
    raise _Unhandled


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _floats(elements: list[int | str]) -> list[float | None]:
    """Float value of each element; None where empty or not finite."""
    out: list[float | None] = []
    for element in elements:
        if element == "":
            out.append(None)
        elif isinstance(element, str):
            if _DECIMAL.fullmatch(element) is None:
                raise _Unhandled
            value = float(element)
            out.append(value if np.isfinite(value) else None)
        else:
            # Arrow's unsafe int64 -> float64 cast rounds like float().
            out.append(float(element))
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _dense(spec: FeatureSpec, elements: list[int | str]) -> np.ndarray:
    kept = [e for e in elements if e != ""]
    default = float(spec.default_value)
    if not kept:
        return np.full((1, spec.value_dim), default, dtype=np.float32)
    if len(kept) != spec.value_dim:
        raise _Unhandled  # the vectorized FG raises the error
    values = [default if v is None else v for v in _floats(kept)]
    if any(abs(v) > _FLOAT32_MAX for v in values if math.isfinite(v)):
        raise _Unhandled  # the vectorized FG raises the error
    return np.array([values], dtype=np.float64).astype(np.float32)


def _fnv1a(text: str) -> int:
    """64-bit FNV-1a of the UTF-8 bytes, as `hashing.hash_strings`."""
    value = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * _FNV_PRIME) & _MASK64
    return value
