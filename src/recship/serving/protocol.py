"""Checks and conventions shared by the protobuf and the JSON wire protocols.

Both decoders (`protocol_pb`, `protocol_json`) build a `RankRequest` and hand
it to `check_rank_request`, so a request is held to the same rules whichever
protocol carried it. Every failure is a `BadRequestError` whose message names
the field, and the item index where one applies.
"""

import math
from collections.abc import Iterable, Mapping

import numpy as np

from recship.errors import BadRequestError, ServingError
from recship.serving.request import RankRequest, RankResponse, RawValue

# How a request's features are made: by the server's FG, or already by the
# caller (see `serving/bypass.py`).
FG_MODES = ("normal", "bypass")

# Highest debug level: 0 scores only, 1 generated features, 2 raw ones too.
MAX_DEBUG_LEVEL = 2


def check_rank_request(request: RankRequest) -> RankRequest:
    """Checks that a decoded request is complete and consistent.

    Args:
        request: a request as a wire decoder built it.

    Returns:
        The same request, for chaining.

    Raises:
        BadRequestError: no items, an empty item id, a per-item feature whose
            length is not the number of items, or a debug level out of range.
    """
    num_items = len(request.item_ids)
    if num_items == 0:
        raise BadRequestError("item_ids is empty; send at least one item id")
    for index, item_id in enumerate(request.item_ids):
        if not item_id:
            raise BadRequestError(f"item_ids[{index}] is empty; send a non-empty id")

    for name, values in request.item_features.items():
        if len(values) != num_items:
            raise BadRequestError(
                f"item_features[{name!r}] has {len(values)} values but item_ids "
                f"has {num_items}; send one value per item"
            )
    for name, values in request.context_features.items():
        if len(values) not in (1, num_items):
            raise BadRequestError(
                f"context_features[{name!r}] has {len(values)} values but "
                f"item_ids has {num_items}; send one value per item, or one "
                "value for all items"
            )

    if request.fg_mode not in FG_MODES:
        raise BadRequestError(
            f"fg_mode is {request.fg_mode!r}; use 'normal' (the server runs FG) "
            "or 'bypass' (the request carries generated features)"
        )
    if request.generated_features and request.fg_mode != "bypass":
        raise BadRequestError(
            "generated_features needs fg_mode 'bypass'; in normal mode send "
            "raw features"
        )

    if not 0 <= request.debug_level <= MAX_DEBUG_LEVEL:
        raise BadRequestError(
            f"debug_level is {request.debug_level}; use 0 (scores), "
            "1 (generated features) or 2 (raw features too)"
        )
    return request


def check_finite(values: Iterable[float], where: str) -> None:
    """Rejects NaN and infinite values.

    Args:
        values: float values of one feature value (a list, or a map's values).
        where: the field path to name in the error, e.g. `user_features['x']`.

    Raises:
        BadRequestError: a value is NaN or infinite.
    """
    for index, value in enumerate(values):
        if not math.isfinite(value):
            raise BadRequestError(
                f"{where} holds a non-finite number ({value}) at position {index}; "
                "send finite numbers, or leave the value out"
            )


def check_finite_scalar(value: float, where: str) -> None:
    """Rejects a NaN or infinite scalar feature value.

    Args:
        value: the value.
        where: the field path to name in the error.

    Raises:
        BadRequestError: the value is NaN or infinite.
    """
    if not math.isfinite(value):
        raise BadRequestError(
            f"{where} is a non-finite number ({value}); send a finite number, "
            "or leave the value out"
        )


def check_rank_response(response: RankResponse) -> None:
    """Checks that a ranker's response fits its request before encoding it.

    Args:
        response: what the ranker returned.

    Raises:
        ServingError: (500) an output whose first dimension is not the number
            of items, or debug features for a different number of items. These
            are server bugs, not client errors.
    """
    num_items = len(response.item_ids)
    for name, scores in response.outputs.items():
        shape = np.shape(scores)
        if not shape or shape[0] != num_items:
            raise ServingError(
                f"model output {name!r} has shape {list(shape)}, expected "
                f"[{num_items}, ...] for {num_items} items"
            )
    for field_name, rows in (
        ("generate_features", response.generate_features),
        ("raw_features", response.raw_features),
    ):
        if rows and len(rows) != num_items:
            raise ServingError(
                f"{field_name} has {len(rows)} rows for {num_items} items"
            )


def describe_value(value: RawValue) -> str:
    """Names the type of a raw value for an error message."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
