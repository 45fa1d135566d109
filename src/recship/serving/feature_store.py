"""The feature store: rows of user and item features, keyed by id.

A feature store holds named tables (`items`, `users`), each keyed by an id
column. Two backends implement `FeatureStore`:

- `EmbeddedFeatureStore` (feature_store_embedded.py), the default: Parquet or
  CSV files held in memory and reloaded in the background when a file
  changes. It needs no server.
- `RedisFeatureStore` (feature_store_redis.py): one Redis hash per row, the
  online store that other systems can update while the server runs.

The server reads item rows through an `ItemCache` (item_cache.py) and user
rows by user id through `lookup_row`, which never blocks a request for long:
a Redis backend answers from its recent rows when Redis is down.

Every backend counts what it does in `FeatureStoreStats`; see
docs/featurestore.md for what each counter means.
"""

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from recship.errors import ConfigError

ITEMS = "items"
USERS = "users"

_TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")

# Counter names of `FeatureStoreStats`, in the order they are reported.
COUNTER_NAMES = (
    "hits",
    "misses",
    "errors",
    "fallback_hits",
    "fallback_misses",
    "reloads",
    "reload_errors",
)


def check_table_name(table: str) -> str:
    """`table` if it is a usable table name (letters, digits, `_`)."""
    if not _TABLE_NAME.match(table):
        raise ConfigError(
            f"feature store table name {table!r} is not usable; use letters, "
            "digits and '_' (for example 'items' or 'users')"
        )
    return table


@dataclass
class FeatureStoreStats:
    """Counters and health of one feature store, safe to read from any thread.

    Counters only grow; `healthy` is False while the backend fails. Readers
    (the metrics exporter) take `snapshot()`.

    Attributes:
        hits: row lookups answered by the backend with a row.
        misses: row lookups the backend answered with "no such id".
        errors: backend operations that failed (timeout, connection refused,
            unreadable reply, unreadable file).
        fallback_hits: row lookups answered from the local cache of recent
            rows because the backend was down.
        fallback_misses: row lookups that found the backend down and the id
            not in the local cache (the request goes on without that row).
        reloads: whole-table reloads done (embedded files, Redis versions).
        reload_errors: reloads that failed; the previous data stays.
        healthy: False from a failed backend operation until one succeeds.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    fallback_hits: int = 0
    fallback_misses: int = 0
    reloads: int = 0
    reload_errors: int = 0
    healthy: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, count: int = 1) -> None:
        """Adds `count` to counter `name` (one of `COUNTER_NAMES`)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def snapshot(self) -> dict[str, Any]:
        """Every counter and `healthy`, read at one instant."""
        with self._lock:
            counts: dict[str, Any] = {n: getattr(self, n) for n in COUNTER_NAMES}
            counts["healthy"] = self.healthy
            return counts


def normalize_id(value: Any) -> str:
    """The string key of an id value: ints, integral floats and strings.

    `123`, `123.0` and `"123"` are the same id, as they are in FG hashing.
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def id_strings(column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """Ids of a table column as strings, the keys `normalize_id` makes."""
    if pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False)
        integral = np.isfinite(values) & (np.floor(values) == values)
        if integral.all():
            column = pa.array(values.astype(np.int64), mask=column.is_null())
    return column.cast(pa.string()).to_pylist()


class FeatureStore(ABC):
    """Rows of features by table and id.

    Attributes:
        stats: what the store did; see `FeatureStoreStats`.
        rows_change_in_place: True when single rows may change between
            whole-table versions (Redis, written by other systems), so caches
            refresh the rows they serve.
    """

    stats: FeatureStoreStats

    rows_change_in_place: bool = False

    @abstractmethod
    def tables(self) -> list[str]:
        """Names of the tables the store holds."""

    @abstractmethod
    def id_column(self, table: str) -> str:
        """The column of `table` that holds its ids."""

    @abstractmethod
    def version(self, table: str) -> int:
        """A number that changes whenever `table` is replaced as a whole."""

    @abstractmethod
    def read_all(self, table: str) -> pa.Table:
        """Every row of `table` (for caches; may be slow)."""

    @abstractmethod
    def read_rows(self, table: str, ids: Sequence[str]) -> pa.Table:
        """The rows of `ids` that exist, in any order (for caches)."""

    @abstractmethod
    def lookup_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        """One row as `column -> value`, nulls left out; None when absent.

        This is on the request path: it never raises for a backend failure
        and never waits longer than the backend's short timeout.
        """

    def close(self) -> None:  # noqa: B027 - backends without resources keep it
        """Stops background work and releases connections."""

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def row_to_dict(table: pa.Table, index: int) -> dict[str, Any]:
    """Row `index` of `table` as `column -> value`, nulls left out."""
    row = table.slice(index, 1).to_pylist()[0]
    return {name: value for name, value in row.items() if value is not None}
