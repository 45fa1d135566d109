"""Protocol-neutral rank requests and responses.

Both wire protocols (the TorchEasyRec Processor protobuf and our JSON API)
decode into `RankRequest` and encode from `RankResponse`, so everything after
parsing is shared.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# A raw feature value as it arrives on the wire: a scalar (int, float, str),
# a list of scalars, a list of lists, or a map of scalar to scalar.
RawValue = Any


@dataclass
class RankRequest:
    """One user, N candidate items, optional context.

    Attributes:
        user_features: feature name to one raw value for the whole request.
        item_ids: the N candidate item ids, as strings.
        item_features: feature name to N raw values, one per item; they
            override the item feature store for those items.
        context_features: feature name to N raw values, or to one value that
            holds for every item.
        outputs: names of model outputs to return; empty means all.
        debug_level: 0 none, 1 return generated features, 2 also raw ones.
        meta_data: free-form string pairs passed through from the caller.
        request_id: an id for logs; the server makes one when absent.
        fg_mode: "normal" (the server runs FG) or "bypass" (the request
            carries model inputs; see `serving/bypass.py`).
        generated_features: with bypass, model input name to its FG output
            (`name.values`, `name.lengths`), the JSON API's flat form.
    """

    user_features: dict[str, RawValue] = field(default_factory=dict)
    item_ids: list[str] = field(default_factory=list)
    item_features: dict[str, list[RawValue]] = field(default_factory=dict)
    context_features: dict[str, list[RawValue]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    debug_level: int = 0
    meta_data: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None
    fg_mode: str = "normal"
    generated_features: dict[str, Any] = field(default_factory=dict)


@dataclass
class RankResponse:
    """Scores for the N items of a `RankRequest`, in request order.

    Attributes:
        item_ids: the request's item ids, echoed.
        outputs: output name to a float32 array of shape [N].
        generate_features: with debug_level >= 1, per item the generated
            features as `name -> string`.
        raw_features: with debug_level >= 2, per item the raw features.
        model_version: the version that scored the request.
    """

    item_ids: list[str]
    outputs: dict[str, np.ndarray]
    generate_features: list[dict[str, str]] = field(default_factory=list)
    raw_features: list[dict[str, str]] = field(default_factory=list)
    model_version: str = ""
