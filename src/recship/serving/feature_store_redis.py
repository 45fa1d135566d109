"""The Redis feature store: rows read from a running redis-server.

Two clients share the server. The request path (`lookup_row`) uses one with
a short socket timeout (50 ms by default) and no retries of its own, so a
request never waits long on Redis. Background readers (`read_all`,
`read_rows`, `version`: the item cache's refreshes) use one with a longer
timeout.

When a read fails, the store marks itself unhealthy, counts the error and
stops sending request-path reads to Redis for a back-off delay that doubles
after each failure (50 ms up to 2 s). Meanwhile, and whenever a read fails,
user rows come from a bounded LRU of the rows read recently. The first read
that succeeds, on either path, marks the store healthy again and ends the
back-off. The key layout is in redis_layout.py.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import redis

from recship.errors import DataError, ServingError
from recship.serving import redis_layout as layout
from recship.serving.feature_store import (
    FeatureStore,
    FeatureStoreStats,
    check_table_name,
    row_to_dict,
)
from recship.serving.redis_loader import DEFAULT_PREFIX, connect

logger = logging.getLogger(__name__)

_READ_BATCH = 1000


class RecentRows:
    """A bounded, thread-safe LRU of rows by key.

    Args:
        capacity: the most rows kept; the least recently used go first.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[str, dict[str, Any] | None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, key: str, row: dict[str, Any] | None) -> None:
        """Remembers `row` (None: known to be absent) under `key`."""
        if self.capacity <= 0:
            return
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)

    def get(self, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(known, row): whether `key` was seen, and its row if it had one."""
        with self._lock:
            if key not in self._rows:
                return False, None
            self._rows.move_to_end(key)
            return True, self._rows[key]


class Backoff:
    """When to try a failing backend again: delays double up to a ceiling."""

    def __init__(self, initial_s: float = 0.05, max_s: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.delay_s = 0.0
        self._next_try = 0.0

    def ready(self) -> bool:
        """True when a try is due."""
        return time.monotonic() >= self._next_try

    def failed(self) -> float:
        """Records a failure; returns the delay before the next try."""
        self.delay_s = min(self.max_s, self.delay_s * 2 or self.initial_s)
        self._next_try = time.monotonic() + self.delay_s
        return self.delay_s

    def succeeded(self) -> None:
        self.delay_s = 0.0
        self._next_try = 0.0


@dataclass(frozen=True)
class _TableMeta:
    schema: pa.Schema | None
    id_column: str
    version: int


@dataclass
class RedisStoreOptions:
    """Tuning of `RedisFeatureStore`.

    Attributes:
        prefix: the first part of every key.
        timeout_s: socket timeout of request-path reads.
        bulk_timeout_s: socket timeout of background reads.
        recent_rows: capacity of the LRU of recent user rows (0: none).
        backoff_max_s: the longest pause between tries while Redis fails.
    """

    prefix: str = DEFAULT_PREFIX
    timeout_s: float = 0.05
    bulk_timeout_s: float = 5.0
    recent_rows: int = 100_000
    backoff_max_s: float = 2.0


class RedisFeatureStore(FeatureStore):
    """Feature rows in Redis, with a local fallback when Redis is down.

    Args:
        url: where Redis listens, e.g. `redis://127.0.0.1:6379/0`.
        tables: the tables to serve; each must have been loaded (its meta
            hash must exist) unless the store is created before the load.
        options: prefix, timeouts and cache sizes.

    Raises:
        ServingError: Redis cannot be reached at start.
    """

    rows_change_in_place = True

    def __init__(
        self,
        url: str,
        tables: Sequence[str] = ("items", "users"),
        options: RedisStoreOptions | None = None,
    ) -> None:
        self.options = options or RedisStoreOptions()
        self.stats = FeatureStoreStats()
        self.where = layout.describe_url(url)
        self._tables = [check_table_name(t) for t in tables]
        self._fast = connect(url, self.options.timeout_s)
        self._bulk = connect(url, self.options.bulk_timeout_s)
        self._recent = RecentRows(self.options.recent_rows)
        self._backoff = Backoff(self.options.timeout_s, self.options.backoff_max_s)
        self._meta: dict[str, _TableMeta] = {}
        for table in self._tables:
            self._meta[table] = self._read_meta(table)
            if self._meta[table].version == 0:
                logger.warning(
                    "Redis at %s holds no table %r under prefix %r yet; load it "
                    "with `recship featurestore load`",
                    self.where,
                    table,
                    self.options.prefix,
                )

    def tables(self) -> list[str]:
        return list(self._tables)

    def _key(self, table: str, row_id: str) -> str:
        return layout.row_key(self.options.prefix, table, row_id)

    # Health bookkeeping.

    def _failed(self, what: str, exc: Exception) -> None:
        self.stats.add("errors")
        delay = self._backoff.failed()
        if self.stats.healthy:
            logger.warning(
                "Redis at %s failed (%s: %s); answering from cached rows, next try "
                "in %.2fs",
                self.where,
                what,
                exc,
                delay,
            )
        self.stats.healthy = False

    def _succeeded(self) -> None:
        if not self.stats.healthy:
            logger.info("Redis at %s answers again", self.where)
        self._backoff.succeeded()
        self.stats.healthy = True

    def _bulk_call(self, what: str, call: Any) -> Any:
        # Background reads: failures count and raise, for the caller's loop.
        try:
            result = call()
        except (redis.RedisError, OSError) as exc:
            self._failed(what, exc)
            raise ServingError(
                f"Redis at {self.where} is unavailable ({what}): {exc}", status=503
            ) from exc
        self._succeeded()
        return result

    # Table descriptions.

    def _read_meta(self, table: str) -> _TableMeta:
        key = layout.meta_key(self.options.prefix, table)
        reply = self._bulk_call(f"meta of {table}", lambda: self._bulk.hgetall(key))
        if not reply:
            return _TableMeta(None, "", 0)
        schema_bytes = reply.get(layout.META_SCHEMA.encode())
        return _TableMeta(
            schema=layout.deserialize_schema(schema_bytes) if schema_bytes else None,
            id_column=reply.get(layout.META_ID_COLUMN.encode(), b"").decode(),
            version=int(reply.get(layout.META_VERSION.encode(), 0)),
        )

    def _table_meta(self, table: str) -> _TableMeta:
        try:
            return self._meta[table]
        except KeyError:
            raise DataError(
                f"the Redis feature store serves tables {self._tables}, not {table!r}"
            ) from None

    def id_column(self, table: str) -> str:
        return self._table_meta(table).id_column

    def version(self, table: str) -> int:
        """The table's load version in Redis; refreshes its schema on change."""
        key = layout.meta_key(self.options.prefix, table)
        raw = self._bulk_call(
            f"version of {table}", lambda: self._bulk.hget(key, layout.META_VERSION)
        )
        version = int(raw or 0)
        if version != self._table_meta(table).version:
            self._meta[table] = self._read_meta(table)
        return version

    # Reads.

    def read_rows(self, table: str, ids: Sequence[str]) -> pa.Table:
        meta = self._table_meta(table)
        replies: list[dict] = []
        for start in range(0, len(ids), _READ_BATCH):
            batch = ids[start : start + _READ_BATCH]
            pipe = self._bulk.pipeline(transaction=False)
            for row_id in batch:
                pipe.hgetall(self._key(table, row_id))
            replies.extend(self._bulk_call(f"rows of {table}", pipe.execute))
        return layout.decode_rows(meta.schema, [r for r in replies if r])

    def read_all(self, table: str) -> pa.Table:
        self._meta[table] = self._read_meta(table)
        key = layout.ids_key(self.options.prefix, table)
        ids = self._bulk_call(
            f"ids of {table}", lambda: [i.decode() for i in self._bulk.sscan_iter(key)]
        )
        return self.read_rows(table, ids)

    def lookup_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        key = self._key(table, row_id)
        meta = self._table_meta(table)
        if self._backoff.ready():
            try:
                reply = self._fast.hgetall(key)
            except (redis.RedisError, OSError) as exc:
                self._failed(f"row {key}", exc)
            else:
                self._succeeded()
                return self._remember(meta, key, reply)

        # Redis is down or backing off: answer from the recent rows.
        known, row = self._recent.get(key)
        self.stats.add("fallback_hits" if known else "fallback_misses")
        return row

    def _remember(
        self, meta: _TableMeta, key: str, reply: dict
    ) -> dict[str, Any] | None:
        # A row that does not decode is an error of the data, not of Redis:
        # it counts and the request goes on without it.
        if not reply:
            self._recent.put(key, None)
            self.stats.add("misses")
            return None
        try:
            row = row_to_dict(layout.decode_rows(meta.schema, [reply]), 0)
        except DataError as exc:
            self.stats.add("errors")
            logger.warning("Redis row %s is unreadable: %s", key, exc)
            return None
        self._recent.put(key, row)
        self.stats.add("hits")
        return row

    def close(self) -> None:
        self._fast.close()
        self._bulk.close()
