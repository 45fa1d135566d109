"""What the server does around ranking: signing, metrics, logs, warm-up.

`build_app` takes one `Operations` and calls it at fixed points of every
request (`authenticate` after reading the body, `finish` once the status is
known) and of its lifespan (`start`, `close`). `build_operations` makes one
from `ServiceSettings`.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recship.serving.auth import Authenticator
from recship.serving.metrics import ServingMetrics
from recship.serving.request_log import RequestLog, RequestRecord
from recship.serving.settings import ServiceSettings
from recship.serving.warmup import WarmupRecorder, run_warmup

logger = logging.getLogger(__name__)

# Ranker attributes that may hold a feature store with `stats.snapshot()`.
_STORE_ATTRIBUTES = ("feature_store", "item_store", "user_store", "item_cache")


@dataclass
class RequestTrace:
    """One request on its way through the server.

    Attributes:
        request_id: its id (the JSON body's own id once decoded).
        protocol: "pb" or "json".
        started: `time.perf_counter()` when the handler began.
        stages: seconds per stage, filled as stages end.
        items: candidate items, once decoded.
        model_version: the version that scored it.
    """

    request_id: str
    protocol: str
    started: float = field(default_factory=time.perf_counter)
    stages: dict[str, float] = field(default_factory=dict)
    items: int = 0
    model_version: str = ""


class Operations:
    """Signing, metrics, request logging and warm-up of one server process.

    Every part is optional. Without a warm-up the process is ready at once.

    Args:
        authenticator: checks request signatures; None accepts all.
        metrics: Prometheus metrics; None serves no `/metrics`.
        request_log: receives a record per request; None logs nothing.
        warmup: run on a background thread at startup; readiness waits for
            it to return.
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator | None = None,
        metrics: ServingMetrics | None = None,
        request_log: RequestLog | None = None,
        warmup: Callable[[], object] | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.metrics = metrics
        self.request_log = request_log
        self.warmup = warmup
        self.warmed = warmup is None
        self.queue_depth: Callable[[], int] = lambda: 0
        # Set by `build_app`: serves one request the way the HTTP routes do
        # (encode, then decode, rank and encode on a pool thread), for the
        # warm-up; None ranks with the ranker alone.
        self.live_path: Callable[[Any], object] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Starts the warm-up thread (the app's lifespan calls this)."""
        if self.warmup is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run_warmup, name="recship-warmup", daemon=True
        )
        self._thread.start()

    def wait_warm(self, timeout_s: float) -> bool:
        """Waits for the warm-up to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.warmed

    def close(self) -> None:
        """Writes out the request log."""
        if self.request_log is not None:
            self.request_log.close()

    def authenticate(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> None:
        """Raises `AuthError` (401) for an unsigned or badly signed request."""
        if self.authenticator is not None:
            self.authenticator.check(method, path, headers, body)

    def begin(self) -> None:
        """Notes a request's arrival (queue depth)."""
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.queue_depth())

    def finish(
        self, trace: RequestTrace, status: int, body: bytes, error: str = ""
    ) -> None:
        """Records an answered request in the metrics and the request log.

        Never blocks on I/O: the log record is queued, or dropped when the
        queue is full.
        """
        seconds = time.perf_counter() - trace.started
        if self.metrics is not None:
            self.metrics.queue_depth.set(self.queue_depth())
            self.metrics.observe(
                trace.protocol, status, seconds, trace.stages, trace.items
            )
        if self.request_log is None or not self.request_log.has_work:
            return
        record = RequestRecord(
            request_id=trace.request_id,
            protocol=trace.protocol,
            status=status,
            items=trace.items,
            seconds=seconds,
            stages=dict(trace.stages),
            model_version=trace.model_version,
            body=body if self.request_log.keeps_bodies else b"",
            error=error,
        )
        if not self.request_log.submit(record) and self.metrics is not None:
            self.metrics.log_dropped.inc()

    def _run_warmup(self) -> None:
        """Warm-up thread: run it, then report ready whatever happened."""
        try:
            if self.warmup is not None:
                self.warmup()
        except Exception:  # noqa: BLE001 - a failed warm-up must not hang readiness
            logger.exception("warm-up failed; serving without it")
        finally:
            self.warmed = True


def build_operations(settings: ServiceSettings, ranker: Any) -> Operations:
    """The operations that `settings` ask for, around `ranker`.

    Args:
        settings: the service settings.
        ranker: the ranker to warm up and to read store counters from.
    """
    authenticator = Authenticator(settings.token) if settings.token else None
    metrics = ServingMetrics(
        getattr(ranker, "model_version", ""), lambda: store_stats(ranker)
    )

    sinks = []
    if settings.warmup_pb_files_count:
        sinks.append(
            WarmupRecorder(settings.warmup_data_path, settings.warmup_pb_files_count)
        )
    request_log = RequestLog(
        settings.request_log_path or None,
        queue_size=settings.request_log_queue_size,
        long_request_threshold_ms=settings.long_request_threshold,
        save_long_request=settings.save_long_request,
        sinks=sinks,
    )

    def warmup() -> None:
        run_warmup(
            ranker,
            data_path=settings.warmup_data_path,
            cnt_per_file=settings.warmup_cnt_per_file,
            item_counts=settings.warmup_item_counts,
            rounds=settings.warmup_rounds,
            live_path=operations.live_path,
        )

    has_warmup = settings.warmup_rounds > 0 or settings.warmup_data_path
    operations = Operations(
        authenticator=authenticator,
        metrics=metrics,
        request_log=request_log,
        warmup=warmup if has_warmup else None,
    )
    return operations


def store_stats(ranker: Any) -> dict[str, dict[str, Any]]:
    """Stats snapshots of the feature stores a ranker holds, by name: those
    its feature joiner reports, then any store attribute with `stats`."""
    snapshots = {}
    joiner_stats = getattr(getattr(ranker, "feature_joiner", None), "stats", None)
    if callable(joiner_stats):
        snapshots.update(joiner_stats())
    for name in _STORE_ATTRIBUTES:
        if name in snapshots or (name == "item_store" and "item_cache" in snapshots):
            continue
        stats = getattr(getattr(ranker, name, None), "stats", None)
        snapshot = getattr(stats, "snapshot", None)
        if callable(snapshot):
            snapshots[name] = snapshot()
    return snapshots
