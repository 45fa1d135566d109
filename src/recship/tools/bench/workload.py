"""The benchmark's workload: rank request bodies and a closed-loop load
generator over loopback HTTP (keep-alive `http.client` connections, one per
client thread).

One request is one user and N candidate items, drawn from the generated
eval and item tables; the same bytes go to every server. The load generator
runs `concurrency` threads, each sending the next request as soon as its
previous answer arrives, bounded both in request count and in time.
"""

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

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


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server under test.

    `http.client` rather than httpx: the load generator shares the measured
    machine's cores with the server, so each request should cost it as
    little CPU as possible (httpx spends several times more per request).
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path or "/"
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        """Opens the connection now, if it is not open."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout_s
            )
            self._conn.connect()

    def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, answer body); reconnects once after a dropped connection."""
        try:
            return self._post(body)
        except (OSError, http.client.HTTPException):
            self.close()
        return self._post(body)

    def _post(self, body: bytes) -> tuple[int, bytes]:
        self.connect()
        self._conn.request("POST", self.path, body, _HEADERS)
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_HEADERS = {"Content-Type": "application/json", "Connection": "keep-alive"}


def first_request_ms(url: str, body: bytes) -> float:
    """Latency in ms of the first rank request after readiness, sent on a
    connection opened beforehand (as a steady client's is), so it counts the
    server's first-request cost, not the client's connection setup.

    Raises:
        RecshipError: the answer is not 200.
    """
    connection = _Connection(url, 60.0)
    try:
        connection.connect()
        started = time.perf_counter()
        status, answer = connection.post(body)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        connection.close()
    if status != 200:
        raise RecshipError(f"{url} answered {status}: {answer[:300]!r}")
    return elapsed


def post_once(url: str, body: bytes, timeout_s: float = 60.0) -> float:
    """One request on a new connection; its latency in ms. Raises on a
    non-200 answer."""
    connection = _Connection(url, timeout_s)
    try:
        started = time.perf_counter()
        status, answer = connection.post(body)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        connection.close()
    if status != 200:
        raise RecshipError(f"{url} answered {status}: {answer[:300]!r}")
    return elapsed


def run_load(
    url: str,
    body: dict,
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Closed-loop load: `concurrency` threads, each on its own keep-alive
    connection, until `max_requests` answers or `max_seconds`, whichever
    comes first."""
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
        connection = _Connection(url, 60.0)
        try:
            while take_turn():
                started = time.perf_counter()
                try:
                    status, _ = connection.post(payload)
                    ok = status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if ok:
                        result.latencies_ms.append(elapsed)
                    else:
                        result.errors += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_s = time.perf_counter() - started
    return result
