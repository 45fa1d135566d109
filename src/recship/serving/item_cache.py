"""The item cache: every item's features in memory, refreshed in the background.

The ranker looks items up here, never in the feature store itself, so an
item lookup costs a dict probe per id whatever the backend and whether or not
it is up. The cache starts with the store's whole item table; a background
thread then, every `refresh_interval_s`:

- reads the whole table again when the store's version of it changed (an
  embedded file replaced, a `recship featurestore load` into Redis);
- otherwise, for stores whose rows change in place (Redis), reads again the
  rows of the items requested since the last refresh, found or not, so
  updated, new and deleted items show up.

Each refresh builds a new immutable `ItemStore` and swaps it in with one
assignment. A refresh that fails (Redis down) keeps the current items and
counts in `stats.refresh_errors`.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from recship.errors import RecshipError
from recship.serving.feature_store import ITEMS, FeatureStore
from recship.serving.item_store import ItemStore

logger = logging.getLogger(__name__)


@dataclass
class ItemCacheStats:
    """What the item cache holds and did.

    Attributes:
        items: items held now.
        version: the store's table version the cache was last fully read at.
        full_reloads: whole-table reads after the first.
        row_refreshes: refreshes of the requested rows.
        refresh_errors: refreshes that failed (the cache kept its items).
        last_refresh_unix: wall time of the last successful refresh.
    """

    items: int = 0
    version: int = 0
    full_reloads: int = 0
    row_refreshes: int = 0
    refresh_errors: int = 0
    last_refresh_unix: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def snapshot(self) -> dict[str, Any]:
        """Every field, read at one instant."""
        with self._lock:
            return {
                name: getattr(self, name)
                for name in (
                    "items",
                    "version",
                    "full_reloads",
                    "row_refreshes",
                    "refresh_errors",
                    "last_refresh_unix",
                )
            }


class ItemCache:
    """Item features by item id, held in memory, refreshed from a store.

    Args:
        store: the feature store holding the item table.
        table: the item table's name in the store.
        refresh_interval_s: seconds between refreshes; 0 disables the
            background thread (call `refresh_once` yourself).
        id_column: the item id column, when the store does not know it yet
            (a Redis table not loaded yet).

    Raises:
        RecshipError: the store cannot be read at start.
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        table: str = ITEMS,
        refresh_interval_s: float = 10.0,
        id_column: str = "",
    ) -> None:
        self.store = store
        self.table = table
        self.stats = ItemCacheStats()
        self._fallback_id_column = id_column
        self._track_seen = store.rows_change_in_place
        self._seen: set[str] = set()
        self._seen_lock = threading.Lock()
        self._derivations: dict[str, Callable[[pa.Table], Any]] = {}

        # Read the version first: a load that lands in between is read again.
        version = store.version(table)
        self._items = self._build(store.read_all(table))
        self.stats.version = version
        self.stats.items = len(self._items)
        self.stats.last_refresh_unix = time.time()
        logger.info("item cache: %d items from table %s", len(self._items), table)

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if refresh_interval_s > 0:
            self._thread = threading.Thread(
                target=self._refresh_loop,
                args=(refresh_interval_s,),
                name="recship-item-cache-refresh",
                daemon=True,
            )
            self._thread.start()

    @property
    def id_column(self) -> str:
        return self._items.id_column

    def __len__(self) -> int:
        return len(self._items)

    def _build(self, table: pa.Table) -> ItemStore:
        id_column = self.store.id_column(self.table) or self._fallback_id_column
        if table.num_rows == 0 and id_column not in table.column_names:
            # Nothing loaded yet: an empty table that finds no id.
            table = pa.table({id_column or "id": pa.array([], pa.string())})
            id_column = id_column or "id"
        return ItemStore(table, id_column)

    def add_derivation(self, name: str, build: Callable[[pa.Table], Any]) -> None:
        """Keeps `build(table)` in `ItemStore.derived[name]` of every item
        table the cache holds: run now, and at every refresh before the new
        items are swapped in, so a request never sees a stale one. A failing
        `build` leaves the name out (logged); users must fall back."""
        self._derivations[name] = build
        self._derive(self._items)

    def _derive(self, items: ItemStore) -> None:
        for name, build in self._derivations.items():
            try:
                items.derived[name] = build(items.table)
            except Exception:  # serve without it rather than stop refreshing
                logger.exception("item cache: deriving %s failed", name)

    def lookup_positions(self, item_ids: list[str]) -> tuple[ItemStore, np.ndarray]:
        """The items held now and the row of every id in them (-1 where the
        id is not cached), int64 [N]; one snapshot, safe across a refresh."""
        items = self._items
        if self._track_seen:
            with self._seen_lock:
                self._seen.update(item_ids)
        return items, items.positions(item_ids)

    def lookup(self, item_ids: list[str]) -> tuple[np.ndarray, pa.Table]:
        """Rows of `item_ids` that are cached.

        Returns:
            found: bool [N], True where the id is cached;
            rows: the found items' rows, in request order.
        """
        items = self._items
        if self._track_seen:
            with self._seen_lock:
                self._seen.update(item_ids)
        return items.lookup(item_ids)

    def lookup_aligned(self, item_ids: list[str]) -> tuple[np.ndarray, pa.Table]:
        """Rows of all `item_ids`, in order, with null rows for unknown ids.

        Returns:
            found: bool [N], True where the id is cached;
            rows: N rows; every column null where `found` is False.
        """
        items = self._items
        if self._track_seen:
            with self._seen_lock:
                self._seen.update(item_ids)
        positions = items.positions(item_ids)
        found = positions >= 0
        return found, items.table.take(pa.array(positions, mask=~found))

    def refresh_once(self) -> str:
        """One refresh; returns what it did: "full", "rows" or "none".

        Raises:
            RecshipError: the store failed; the cached items stay.
        """
        version = self.store.version(self.table)
        if version == 0 and self.stats.version != 0:
            # The store holds no load of the table (a Redis restarted empty):
            # keep serving the cached items until a load arrives.
            return "none"
        if version != self.stats.version:
            items = self._build(self.store.read_all(self.table))
            self._derive(items)
            self._items = items
            self.stats.version = version
            self.stats.add("full_reloads")
            logger.info(
                "item cache: %d items from table %s (version %d)",
                len(items),
                self.table,
                version,
            )
            done = "full"
        else:
            with self._seen_lock:
                seen, self._seen = self._seen, set()
            if not seen:
                return "none"
            try:
                done = self._refresh_rows(sorted(seen))
            except RecshipError:
                with self._seen_lock:
                    self._seen.update(seen)  # try these rows again next time
                raise
        self.stats.items = len(self._items)
        self.stats.last_refresh_unix = time.time()
        return done

    def _refresh_rows(self, ids: list[str]) -> str:
        # Drop the cached rows of `ids`, then add the rows the store has now:
        # updated rows replace old ones, deleted items leave.
        fresh = self.store.read_rows(self.table, ids)
        current = self._items
        keep = np.ones(current.table.num_rows, dtype=bool)
        positions = current.positions(ids)
        keep[positions[positions >= 0]] = False
        if fresh.num_rows and current.table.num_rows:
            fresh = fresh.select(current.table.column_names).cast(current.table.schema)
        merged = pa.concat_tables([current.table.filter(pa.array(keep)), fresh])
        items = ItemStore(merged, current.id_column)
        self._derive(items)
        self._items = items
        self.stats.add("row_refreshes")
        return "rows"

    def _refresh_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh_once()
            except RecshipError as exc:
                self.stats.add("refresh_errors")
                logger.debug("item cache refresh failed: %s", exc)
            except Exception:  # keep refreshing whatever one round hit
                self.stats.add("refresh_errors")
                logger.exception("item cache refresh failed")

    def close(self) -> None:
        """Stops the refresh thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
