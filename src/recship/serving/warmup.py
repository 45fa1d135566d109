"""Warm-up before readiness, and saving live requests for the next warm-up.

The first forwards of a TorchScript model are slow (the profiling executor
records and then optimizes each input shape), and so are the first FG calls
and allocations of a size. `run_warmup` therefore ranks, before the server
reports ready:

1. every saved request in `warmup_data_path` (`*.pb`, serialized
   `PBRequest`s), `warmup_cnt_per_file` times each;
2. synthetic requests of each of `warmup_item_counts` items (item ids from
   the item store when it has them, one made-up value per feature),
   `warmup_rounds` times each.

`WarmupRecorder` saves the first `warmup_pb_files_count` answered requests
into `warmup_data_path` as `live-<pid>-<n>.pb`, so the next start warms up on
real traffic.
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from recship.errors import RecshipError
from recship.features.spec import FeatureSpec
from recship.serving.protocol_json import decode_json_request
from recship.serving.protocol_pb import decode_pb_request, encode_pb_request
from recship.serving.request import RankRequest
from recship.serving.request_log import RequestRecord

logger = logging.getLogger(__name__)

# Length of synthetic sequences when the feature does not bound it.
_DEFAULT_SEQUENCE_LENGTH = 10

# Sequence lengths of the warm-up rounds, as fractions of the longest (a
# fraction under 1/length gives 1 step); `variant` n takes entry n % 6.
_SEQUENCE_FRACTIONS = (1.0, 0.0, 1 / 3, 1 / 6, 1 / 2, 0.04)


@dataclass
class WarmupReport:
    """What a warm-up did.

    Attributes:
        saved_requests: rank calls made from saved request files.
        synthetic_requests: rank calls made from synthetic requests.
        failures: rank calls that raised (logged, not fatal).
        seconds: time the warm-up took.
    """

    saved_requests: int = 0
    synthetic_requests: int = 0
    failures: int = 0
    seconds: float = 0.0


def run_warmup(
    ranker: Any,
    *,
    data_path: str = "",
    cnt_per_file: int = 1,
    item_counts: list[int] | tuple[int, ...] = (1, 10, 100, 200, 1000),
    rounds: int = 6,
    live_path: Callable[[RankRequest], object] | None = None,
) -> WarmupReport:
    """Ranks saved and synthetic requests so later ones run at steady speed.

    Args:
        ranker: the ranker to warm; synthetic requests need its `artifact`
            (for the feature specs), and use its `item_store` when present.
        data_path: directory of saved `*.pb` requests; "" for none.
        cnt_per_file: times each saved request is ranked.
        item_counts: item counts of the synthetic requests.
        rounds: times each synthetic request is ranked.
        live_path: serves a request the way the HTTP routes do (the app's
            `serve_warmup`: JSON and PB bodies decoded, ranked and encoded on
            its worker threads); None calls `ranker.rank` on this thread.

    Returns:
        What was done. Failures are logged and counted, never raised: a
        request that cannot be ranked must not keep the server unready.
    """
    report = WarmupReport()
    started = time.perf_counter()

    for path, request in _saved_requests(data_path):
        for _ in range(cnt_per_file):
            report.saved_requests += 1
            report.failures += _rank_quietly(ranker, request, str(path), live_path)

    specs = _specs_of(ranker)
    if specs is not None:
        item_ids = _store_item_ids(ranker, max(item_counts, default=0))
        # Round by round over every size: each size's inputs come back after
        # the others', as in live traffic (warming one size to the end, then
        # the next, left the first live request 1.5x slower than steady).
        for round_ in range(rounds):
            for count in item_counts:
                request = build_synthetic_request(
                    specs, item_ids, count, variant=round_
                )
                report.synthetic_requests += 1
                report.failures += _rank_quietly(
                    ranker, request, f"{count} items", live_path
                )

    report.seconds = time.perf_counter() - started
    logger.info(
        "warm-up: %d saved and %d synthetic requests in %.2f s (%d failed)",
        report.saved_requests,
        report.synthetic_requests,
        report.seconds,
        report.failures,
    )
    return report


def build_synthetic_request(
    specs: list[FeatureSpec], item_ids: list[str], count: int, variant: int = 0
) -> RankRequest:
    """A request of `count` items with one plausible value per feature.

    Item features travel in the request, so every item is scored (and so
    runs FG and the model) whether or not the store knows it; except in odd
    variants when the ids come from the item store, which read the store's
    rows as live requests do (the ranker's gathered item inputs).

    Variants also vary the sequences' length (full, 1, a third, a sixth,
    half, 2; `_SEQUENCE_FRACTIONS`): the model's first calls on a shape are
    slower (TorchScript's profiling executor, allocations of a new size), and
    a live user's history is rarely full, so one length only would leave the
    first live requests slow.

    Args:
        specs: the model's feature specs.
        item_ids: ids to use first (from the item store); made-up ids fill
            the rest.
        count: number of items.
        variant: which variant (the warm-up round).
    """
    ids = [item_ids[i % len(item_ids)] for i in range(count)] if item_ids else []
    ids = ids or [f"warmup-{i}" for i in range(count)]
    request = RankRequest(item_ids=ids, request_id="warmup")
    from_store = bool(item_ids) and variant % 2 == 1
    for spec in specs:
        value = _plausible_value(spec, variant)
        side = spec.request_side
        if side == "user":
            request.user_features[spec.column] = value
        elif side == "context":
            request.context_features[spec.column] = [value]
        elif not from_store:
            request.item_features[spec.column] = [value] * count
    return request


class WarmupRecorder:
    """Saves the first `count` answered requests as warm-up files.

    A sink of `RequestLog`: it runs on the log's writer thread, never on the
    request path. JSON requests are saved re-encoded as `PBRequest`.

    Args:
        directory: the `warmup_data_path`.
        count: how many requests this process saves.
    """

    def __init__(self, directory: str | Path, count: int) -> None:
        self.directory = Path(directory)
        self.count = count
        self.saved = 0
        self._lock = threading.Lock()

    def __call__(self, record: RequestRecord) -> None:
        """Saves `record` if it succeeded and fewer than `count` are saved."""
        if record.status != 200 or not record.body:
            return
        with self._lock:
            if self.saved >= self.count:
                return
            self.saved += 1
            index = self.saved
        body = record.body
        if record.protocol == "json":
            body = encode_pb_request(decode_json_request(body))
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"live-{os.getpid()}-{index}.pb"
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(body)
        partial.replace(path)


def _saved_requests(data_path: str) -> list[tuple[Path, RankRequest]]:
    """The decodable `*.pb` requests of a directory, in name order."""
    if not data_path:
        return []
    directory = Path(data_path)
    if not directory.is_dir():
        logger.warning("warm-up: %s is not a directory; no saved requests", directory)
        return []
    requests = []
    for path in sorted(directory.glob("*.pb")):
        try:
            requests.append((path, decode_pb_request(path.read_bytes())))
        except (OSError, RecshipError) as err:
            logger.warning("warm-up: skipping %s: %s", path, err)
    return requests


def _rank_quietly(
    ranker: Any,
    request: RankRequest,
    what: str,
    live_path: Callable[[RankRequest], object] | None = None,
) -> int:
    """Ranks one request (through `live_path` when given); 1 (and a log
    line) when it fails, else 0."""
    try:
        if live_path is not None:
            live_path(request)
        else:
            ranker.rank(request)
    except Exception as err:  # noqa: BLE001 - warm-up reports, never raises
        logger.warning("warm-up request (%s) failed: %s", what, err)
        return 1
    return 0


def _specs_of(ranker: Any) -> list[FeatureSpec] | None:
    """The ranker's feature specs, or None when it has no artifact."""
    artifact = getattr(ranker, "artifact", None)
    generator = getattr(artifact, "generator", None)
    return list(generator.specs) if generator is not None else None


def _store_item_ids(ranker: Any, limit: int) -> list[str]:
    """Up to `limit` item ids of the ranker's item store, when it has a table."""
    store = getattr(ranker, "item_store", None)
    table = getattr(store, "table", None)
    id_column = getattr(store, "id_column", None)
    if not isinstance(table, pa.Table) or not id_column or limit <= 0:
        return []
    column = table.column(id_column).slice(0, limit)
    return [str(v) for v in column.to_pylist() if v is not None]


def _plausible_value(spec: FeatureSpec, variant: int = 0) -> str:
    """A raw value the feature accepts: a small id, a vocabulary word, a
    number, or a sequence of those (its length by `variant`, from
    `_SEQUENCE_FRACTIONS`)."""
    if spec.vocab_list:
        one = spec.vocab_list[0]
    elif spec.kind == "id_feature":
        one = "1" if spec.num_buckets != 1 else "0"
    else:
        one = spec.separator.join(["1.0"] * max(spec.value_dim, 1))
    if spec.is_sequence:
        full = spec.sequence_length or _DEFAULT_SEQUENCE_LENGTH
        lengths = [max(1, round(full * f)) for f in _SEQUENCE_FRACTIONS]
        length = min(lengths[variant % len(lengths)], full)
        return spec.sequence_delim.join([one] * length)
    return one
