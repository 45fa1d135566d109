"""Prometheus metrics of one server process, served at `GET /metrics`.

| metric                                   | kind      | labels            |
|------------------------------------------|-----------|-------------------|
| `recship_requests_total`                 | counter   | protocol, status  |
| `recship_request_latency_seconds`        | histogram | protocol          |
| `recship_stage_latency_seconds`          | histogram | stage             |
| `recship_request_items`                  | histogram |                   |
| `recship_queue_depth`                    | gauge     |                   |
| `recship_model_info`                     | gauge (1) | version           |
| `recship_request_log_dropped_total`      | counter   |                   |
| `recship_feature_store_events_total`     | counter   | store, event      |
| `recship_feature_store_healthy`          | gauge     | store             |
| `recship_feature_store_state`            | gauge     | store, field      |

Each process keeps its own registry. With several processes on one port,
`recship serve` sets `PROMETHEUS_MULTIPROC_DIR` for all of them, and any one
process answers `/metrics` with the sum over all (prometheus_client's
multiprocess mode); the feature-store figures, read live from the store
objects, then come from the answering process only, labelled with its pid.
"""

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# NOTE: the `*_created` series double every counter and histogram and say
# nothing a restart counter would not; this switch is process-wide.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

STAGES = ("parse", "features", "fg", "model", "respond")
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0
)  # fmt: skip
ITEM_BUCKETS = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

# Feature-store counters (`FeatureStoreStats.snapshot()`) exported as events.
_STORE_EVENTS = (
    "hits",
    "misses",
    "errors",
    "fallback_hits",
    "fallback_misses",
    "reloads",
    "reload_errors",
    "full_reloads",
    "row_refreshes",
    "refresh_errors",
)
# Item-cache figures that are levels, not counts.
_STORE_STATES = ("items", "version", "last_refresh_unix")

StoreStats = Callable[[], dict[str, dict[str, Any]]]


class ServingMetrics:
    """The metrics of one server process.

    Args:
        model_version: reported by `recship_model_info`.
        store_stats: returns store name to its stats snapshot (counters named
            as in `_STORE_EVENTS`, plus `healthy`); called at each scrape.
    """

    def __init__(self, model_version: str, store_stats: StoreStats | None = None):
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "recship_requests",
            "Requests answered, by protocol and HTTP status.",
            ["protocol", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "recship_request_latency_seconds",
            "End-to-end request latency in the server, by protocol.",
            ["protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage_latency = Histogram(
            "recship_stage_latency_seconds",
            "Time per request stage (parse, features, fg, model, respond).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.items = Histogram(
            "recship_request_items",
            "Candidate items per request.",
            buckets=ITEM_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "recship_queue_depth",
            "Admitted requests not yet finished (running plus waiting).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "recship_model_info",
            "The model version this process serves (value 1).",
            ["version"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.log_dropped = Counter(
            "recship_request_log_dropped",
            "Request-log records dropped because the writer queue was full.",
            registry=registry,
        )
        self.model_info.labels(version=model_version or "unknown").set(1)
        self._store_collector = _StoreCollector(store_stats)
        if not self.multiprocess:
            registry.register(self._store_collector)

    def observe(
        self,
        protocol: str,
        status: int,
        seconds: float,
        stages: dict[str, float],
        items: int,
    ) -> None:
        """Records one answered request.

        Args:
            protocol: "pb" or "json".
            status: the HTTP status answered.
            seconds: end-to-end time in the server.
            stages: seconds per stage that ran.
            items: candidate items in the request (0 when it did not parse).
        """
        self.requests.labels(protocol=protocol, status=str(status)).inc()
        self.latency.labels(protocol=protocol).observe(seconds)
        for stage, spent in stages.items():
            self.stage_latency.labels(stage=stage).observe(spent)
        if items:
            self.items.observe(items)

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type, for `GET /metrics`."""
        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self._store_collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drops a dead worker's live gauges in multiprocess mode (supervisor)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _StoreCollector(Collector):
    """Reads feature-store counters at scrape time, from the store objects."""

    def __init__(self, store_stats: StoreStats | None) -> None:
        self.store_stats = store_stats

    def collect(self) -> Iterator[Metric]:
        snapshots = self.store_stats() if self.store_stats else {}
        labels = ["store", "event", "pid"]
        events = CounterMetricFamily(
            "recship_feature_store_events",
            "Feature-store lookups and failures (hits, misses, errors...).",
            labels=labels,
        )
        healthy = GaugeMetricFamily(
            "recship_feature_store_healthy",
            "1 while the store's backend answers, 0 while it fails.",
            labels=["store", "pid"],
        )
        state = GaugeMetricFamily(
            "recship_feature_store_state",
            "Item-cache levels: items held, table version, last refresh time.",
            labels=["store", "field", "pid"],
        )
        pid = str(os.getpid())
        for store, snapshot in snapshots.items():
            for event in _STORE_EVENTS:
                if event in snapshot:
                    events.add_metric([store, event, pid], float(snapshot[event]))
            for name in _STORE_STATES:
                if name in snapshot:
                    state.add_metric([store, name, pid], float(snapshot[name]))
            if "healthy" in snapshot:
                healthy.add_metric([store, pid], 1.0 if snapshot["healthy"] else 0.0)
        yield events
        yield healthy
        yield state
