"""Replaying saved requests against a server: `recship replay`.

Saved requests are the slow requests a server kept (`save_long_request`,
under `<request_log_path>/long_requests/`) and warm-up files
(`warmup_data_path`): `*.pb` files hold PBRequest bytes and go to the given
`/api/predict/<service>` URL; `*.json` files hold JSON API bodies and go to
`/v1/rank` of the same server. The report counts statuses and latencies.
"""

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from recship.errors import ConfigError

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".pb": "application/octet-stream", ".json": "application/json"}


@dataclass
class ReplayReport:
    """What a replay got back.

    Attributes:
        sent: requests sent.
        statuses: HTTP status to count; 0 counts connection failures.
        latencies_ms: client-side latency of each answered request.
        failures: (file, status, first 200 characters of the body) of
            requests not answered 200.
    """

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[tuple[str, int, str]] = field(default_factory=list)

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of latencies (0 when nothing was answered)."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def summary(self) -> str:
        """One line: counts by status and latency percentiles."""
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"replayed {self.sent} requests ({statuses}); latency ms "
            f"p50 {self.percentile_ms(50):.2f}, p99 {self.percentile_ms(99):.2f}, "
            f"max {max(self.latencies_ms, default=0.0):.2f}"
        )


def find_saved_requests(input_path: str | Path) -> list[Path]:
    """The `*.pb` and `*.json` files of a file or directory, in name order.

    Raises:
        ConfigError: the path does not exist or holds no saved request.
    """
    path = Path(input_path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in CONTENT_TYPES)
    else:
        raise ConfigError(f"--input_path {path} does not exist")
    files = [f for f in files if f.suffix in CONTENT_TYPES]
    if not files:
        raise ConfigError(
            f"--input_path {path} holds no saved requests (*.pb or *.json)"
        )
    return files


def replay_requests(
    input_path: str | Path,
    url: str,
    *,
    concurrency: int = 1,
    repeat: int = 1,
    timeout_s: float = 30.0,
) -> ReplayReport:
    """Sends every saved request under `input_path` to a server.

    Args:
        input_path: a saved request file or a directory of them.
        url: the protobuf endpoint, `http://host:port/api/predict/<service>`;
            JSON files go to `/v1/rank` on the same host and port.
        concurrency: requests in flight at once.
        repeat: times each file is sent.
        timeout_s: limit per request.

    Returns:
        The report.
    """
    if concurrency < 1 or repeat < 1:
        raise ConfigError("--concurrency and --repeat must be at least 1")
    files = find_saved_requests(input_path) * repeat
    json_url = _json_url(url)
    report = ReplayReport()

    with (
        httpx.Client(timeout=timeout_s) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):

        def send(path: Path) -> tuple[Path, int, float, str]:
            target = json_url if path.suffix == ".json" else url
            headers = {"Content-Type": CONTENT_TYPES[path.suffix]}
            body = path.read_bytes()
            started = time.perf_counter()
            try:
                reply = client.post(target, content=body, headers=headers)
            except httpx.HTTPError as err:
                return path, 0, 0.0, str(err)
            elapsed_ms = (time.perf_counter() - started) * 1000
            return path, reply.status_code, elapsed_ms, reply.text[:200]

        for path, status, elapsed_ms, text in pool.map(send, files):
            report.sent += 1
            report.statuses[status] += 1
            if status:
                report.latencies_ms.append(elapsed_ms)
            if status != 200:
                report.failures.append((str(path), status, text))
    return report


def _json_url(url: str) -> str:
    """`/v1/rank` on the host and port of `url`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"--url {url!r} is not an http URL such as "
            "http://127.0.0.1:8080/api/predict/recship"
        )
    return urlunsplit((parts.scheme, parts.netloc, "/v1/rank", "", ""))
