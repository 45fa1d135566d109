"""The benchmark's workload: rank request bodies and a closed-loop load
generator over loopback HTTP.

One request is one user and N candidate items, drawn from the generated
eval and item tables; the same bytes go to every server. The load generator
runs `concurrency` threads, each sending the next request as soon as its
previous answer arrives, bounded both in request count and in time.
"""

import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import numpy as np

from recship.data.reader import read_table
from recship.data.taobao import CONTEXT_COLUMNS, ITEM_ID, USER_COLUMNS
from recship.errors import RecshipError


def build_rank_body(
    eval_path: str, items_path: str, num_items: int, seed: int = 0
) -> dict:
    """A JSON rank request: a user with a median-length click history and
    `num_items` candidates from the item table."""
    rows = read_table(eval_path, "ParquetDataset")
    sequences = rows.column(USER_COLUMNS[-3]).to_pylist()
    lengths = np.array([len(s.split("|")) if s else 0 for s in sequences])
    with_history = np.flatnonzero(lengths > 0)
    if len(with_history) == 0:
        raise RecshipError(f"{eval_path}: no row has a click history to bench with")
    median = np.median(lengths[with_history])
    pick = int(with_history[np.argmin(np.abs(lengths[with_history] - median))])
    row = rows.slice(pick, 1).to_pylist()[0]

    item_ids = read_table(items_path, "ParquetDataset").column(ITEM_ID).to_pylist()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(
        len(item_ids), size=min(num_items, len(item_ids)), replace=False
    )
    return {
        "user_features": {c: row[c] for c in USER_COLUMNS if row.get(c) is not None},
        "item_ids": [str(item_ids[int(i)]) for i in chosen],
        "context_features": {c: [row[c]] for c in CONTEXT_COLUMNS},
    }


@dataclass
class LoadResult:
    """Latencies of one load level.

    Attributes:
        concurrency: client threads.
        items_per_request: N.
        latencies_ms: one per successful request, in completion order.
        wall_s: from the first send to the last answer.
        errors: failed requests (non-200 or transport errors).
    """

    concurrency: int
    items_per_request: int
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    @property
    def items_per_s(self) -> float:
        done = len(self.latencies_ms) * self.items_per_request
        return done / self.wall_s if self.wall_s > 0 else 0.0


def post_once(url: str, body: bytes, timeout_s: float = 60.0) -> float:
    """One request; its latency in ms. Raises on a non-200 answer."""
    started = time.perf_counter()
    response = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=timeout_s,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RecshipError(
            f"{url} answered {response.status_code}: {response.text[:300]}"
        )
    return elapsed


def run_load(
    url: str,
    body: dict,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Closed-loop load: `concurrency` threads until `max_requests` answers
    or `max_seconds`, whichever comes first."""
    payload = json.dumps(body).encode()
    result = LoadResult(concurrency, len(body["item_ids"]))
    lock = threading.Lock()
    sent = [0]
    deadline = time.monotonic() + max_seconds

    def take_turn() -> bool:
        with lock:
            if sent[0] >= max_requests or time.monotonic() >= deadline:
                return False
            sent[0] += 1
            return True

    def client() -> None:
        with httpx.Client(timeout=60.0) as session:
            while take_turn():
                started = time.perf_counter()
                try:
                    response = session.post(
                        url,
                        content=payload,
                        headers={"Content-Type": "application/json"},
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if ok:
                        result.latencies_ms.append(elapsed)
                    else:
                        result.errors += 1

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - started
    return result
