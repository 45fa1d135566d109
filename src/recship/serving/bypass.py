"""`fg_mode: bypass`: requests that carry model inputs FG already made.

A caller that runs FG itself (or replays FG output logged elsewhere) sends
the model inputs instead of raw features, and the server skips FG. Two
forms carry them; see docs/serving.md:

- per item, keyed by feature name (protobuf: `meta_data["fg_mode"] =
  "bypass"`; JSON: `"fg_mode": "bypass"`): `item_features[name]` holds one
  value per item, `user_features[name]` one value for all items and
  `context_features[name]` one per item or one for all. A value is the
  feature's row: a list of ids for an embedded feature (an empty list for
  none), a list of `value_dim` numbers for a dense one;
- flat, JSON only: `"generated_features"` maps each model input name to its
  array exactly as FG outputs it: `name.values` (ids, concatenated over
  items) with `name.lengths` (one count per item), or `name.values` as a
  list of per-item rows of numbers for a dense feature.

Ids are checked against each feature's embedding table size, so a bypass
request can name a wrong feature or id but cannot crash the model.
"""

from typing import Any

import numpy as np

from recship.errors import BadRequestError
from recship.features.spec import FeatureSpec
from recship.serving.request import RankRequest


def bypass_inputs(specs: list[FeatureSpec], request: RankRequest) -> dict[str, Any]:
    """The model inputs a bypass request carries, checked against `specs`.

    Args:
        specs: the model's features.
        request: a request with `fg_mode == "bypass"`.

    Returns:
        Input name to array, as `FeatureGenerator.generate` returns them for
        N = len(item_ids) rows: sparse `name.values` int64 [sum of lengths]
        and `name.lengths` int32 [N]; dense `name.values` float32 [N, dim].

    Raises:
        BadRequestError: a feature is missing, unknown, of the wrong kind or
            shape, or holds an id outside its table; the message names it.
    """
    count = len(request.item_ids)
    if request.generated_features:
        if request.user_features or request.item_features or request.context_features:
            raise BadRequestError(
                "a bypass request with generated_features carries no "
                "user_features, item_features or context_features"
            )
        inputs = _from_flat(specs, request.generated_features, count)
    else:
        inputs = _from_rows(specs, request, count)
    _check_sequences(specs, inputs)
    return inputs


def _from_flat(
    specs: list[FeatureSpec], generated: dict[str, Any], count: int
) -> dict[str, Any]:
    """Inputs from the flat `generated_features` form."""
    expected = set()
    inputs: dict[str, Any] = {}
    for spec in specs:
        values_key = f"{spec.name}.values"
        expected.add(values_key)
        where = f"generated_features[{values_key!r}]"
        if values_key not in generated:
            raise BadRequestError(f"{where} is missing; bypass needs every input")
        if not spec.is_sparse:
            rows = generated[values_key]
            inputs[values_key] = _dense_rows(spec, rows, count, where)
            continue
        lengths_key = f"{spec.name}.lengths"
        expected.add(lengths_key)
        if lengths_key not in generated:
            raise BadRequestError(
                f"generated_features[{lengths_key!r}] is missing; send one "
                "length per item"
            )
        lengths = _integers(
            generated[lengths_key], f"generated_features[{lengths_key!r}]"
        )
        if len(lengths) != count or (lengths < 0).any():
            raise BadRequestError(
                f"generated_features[{lengths_key!r}] must hold {count} "
                "non-negative lengths, one per item"
            )
        values = _integers(generated[values_key], where)
        if int(lengths.sum()) != len(values):
            raise BadRequestError(
                f"{where} has {len(values)} ids but its lengths add up to "
                f"{int(lengths.sum())}"
            )
        _check_ids(spec, values, np.repeat(np.arange(count), lengths), where)
        inputs[values_key] = values
        inputs[lengths_key] = lengths.astype(np.int32)
    unknown = sorted(set(generated) - expected)
    if unknown:
        raise BadRequestError(
            f"generated_features has unknown input(s) {unknown}; the model's "
            f"inputs are {sorted(expected)}"
        )
    return inputs


def _from_rows(
    specs: list[FeatureSpec], request: RankRequest, count: int
) -> dict[str, Any]:
    """Inputs from the per-item form, keyed by feature name."""
    known = {spec.name for spec in specs}
    for field_name in ("user_features", "item_features", "context_features"):
        unknown = sorted(set(getattr(request, field_name)) - known)
        if unknown:
            raise BadRequestError(
                f"{field_name} names unknown feature(s) {unknown} for bypass; "
                f"the model's features are {sorted(known)}"
            )

    inputs: dict[str, Any] = {}
    for spec in specs:
        rows, where = _rows_of(spec, request, count)
        if not spec.is_sparse:
            inputs[f"{spec.name}.values"] = _dense_rows(spec, rows, count, where)
            continue
        per_row = [_row_ids(row, f"{where}[{i}]") for i, row in enumerate(rows)]
        lengths = np.array([len(r) for r in per_row], dtype=np.int32)
        flat = [v for row in per_row for v in row]
        values = _integers(flat, where)
        _check_ids(spec, values, np.repeat(np.arange(count), lengths), where)
        inputs[f"{spec.name}.values"] = values
        inputs[f"{spec.name}.lengths"] = lengths
    return inputs


def _rows_of(
    spec: FeatureSpec, request: RankRequest, count: int
) -> tuple[list[Any], str]:
    """A feature's N rows, from whichever field carries it."""
    name = spec.name
    if name in request.item_features:
        return request.item_features[name], f"item_features[{name!r}]"
    if name in request.context_features:
        values = request.context_features[name]
        rows = values * count if len(values) == 1 else values
        return rows, f"context_features[{name!r}]"
    if name in request.user_features:
        return [request.user_features[name]] * count, f"user_features[{name!r}]"
    raise BadRequestError(
        f"feature {name!r} is missing from the bypass request; send its "
        "generated value in user_features, item_features or context_features"
    )


def _row_ids(row: Any, where: str) -> list[Any]:
    """One row of an embedded feature: a list of ids, one id, or nothing."""
    if row is None:
        return []
    if isinstance(row, list):
        return row
    if isinstance(row, int) and not isinstance(row, bool):
        return [row]
    raise BadRequestError(f"{where} is {row!r}; send a list of integer ids")


def _integers(values: Any, where: str) -> np.ndarray:
    """An int64 array of a list of integers (integral floats are refused)."""
    if not isinstance(values, list) or not all(
        type(v) is int and -(2**63) <= v < 2**63 for v in values
    ):
        raise BadRequestError(f"{where} must be a list of integer ids")
    return np.array(values, dtype=np.int64)


def _check_ids(
    spec: FeatureSpec, values: np.ndarray, rows: np.ndarray, where: str
) -> None:
    """Refuses ids outside the feature's embedding table."""
    bad = (values < 0) | (values >= spec.num_embeddings)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise BadRequestError(
            f"{where}: id {int(values[index])} of item {int(rows[index])} is "
            f"outside the table of feature {spec.name!r} (0 to "
            f"{spec.num_embeddings - 1})"
        )


def _dense_rows(spec: FeatureSpec, rows: Any, count: int, where: str) -> np.ndarray:
    """A dense feature's [N, value_dim] float32 array from per-item rows."""
    if not isinstance(rows, list) or len(rows) != count:
        raise BadRequestError(f"{where} must hold {count} rows, one per item")
    rows = [[row] if isinstance(row, int | float) else row for row in rows]
    try:
        array = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BadRequestError(
            f"{where} must hold rows of {spec.value_dim} numbers: {err}"
        ) from err
    if array.shape != (count, spec.value_dim) or not np.isfinite(array).all():
        raise BadRequestError(
            f"{where} must hold {count} rows of {spec.value_dim} finite numbers"
        )
    return array.astype(np.float32)


def _check_sequences(specs: list[FeatureSpec], inputs: dict[str, Any]) -> None:
    """Sub-features of one sequence must have the same length in each row."""
    by_sequence: dict[str, list[FeatureSpec]] = {}
    for spec in specs:
        if spec.is_sequence and spec.is_sparse:
            by_sequence.setdefault(spec.sequence_name, []).append(spec)
    for name, members in by_sequence.items():
        lengths = [inputs[f"{m.name}.lengths"] for m in members]
        limit = members[0].sequence_length
        if limit and lengths[0].size and int(lengths[0].max()) > limit:
            row = int(np.argmax(lengths[0]))
            raise BadRequestError(
                f"sequence {name!r}, item {row}: {int(lengths[0][row])} steps, "
                f"more than its sequence_length {limit}"
            )
        for member, other in zip(members[1:], lengths[1:], strict=True):
            differ = np.flatnonzero(other != lengths[0])
            if differ.size:
                row = int(differ[0])
                raise BadRequestError(
                    f"sequence {name!r}, item {row}: {member.name!r} has "
                    f"{int(other[row])} steps but {members[0].name!r} has "
                    f"{int(lengths[0][row])}"
                )
