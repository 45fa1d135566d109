"""Builds what the server reads features from: store, item cache, joiner.

`build_feature_joiner` turns `FeatureStoreOptions` (from the service
config or `recship serve` flags) into a `FeatureJoiner` that holds the
feature store and the item cache; the ranker uses the cache for item rows
and the joiner for user rows and `sequence_pk` sequences.
"""

import logging
from dataclasses import dataclass

from recship.errors import ConfigError
from recship.features.spec import FeatureSpec
from recship.serving.feature_join import FeatureJoiner
from recship.serving.feature_store import ITEMS, USERS, FeatureStore
from recship.serving.feature_store_embedded import EmbeddedFeatureStore, TableSource
from recship.serving.feature_store_redis import RedisFeatureStore, RedisStoreOptions
from recship.serving.item_cache import ItemCache
from recship.serving.redis_loader import DEFAULT_PREFIX

logger = logging.getLogger(__name__)


@dataclass
class FeatureStoreOptions:
    """Where the server reads user and item features from.

    With `redis_url` set, the store is Redis; otherwise the embedded store
    over `item_table` and `user_table` (either may be absent).

    Attributes:
        item_table: Parquet/CSV item table (embedded store).
        item_id_column: its id column, e.g. `adgroup_id`.
        user_table: Parquet/CSV user table (embedded store).
        user_id_column: its id column, e.g. `user_id`; also the request
            feature that carries the user id.
        redis_url: Redis to read both tables from, e.g.
            `redis://127.0.0.1:6379/0`.
        redis_prefix: the key prefix the tables were loaded under.
        redis_timeout_ms: socket timeout of request-path Redis reads.
        recent_user_rows: user rows kept to answer while Redis is down.
        item_refresh_interval_s: seconds between item cache refreshes.
        table_poll_interval_s: seconds between checks of embedded files.
    """

    item_table: str | None = None
    item_id_column: str | None = None
    user_table: str | None = None
    user_id_column: str | None = None
    redis_url: str | None = None
    redis_prefix: str = DEFAULT_PREFIX
    redis_timeout_ms: float = 50.0
    recent_user_rows: int = 100_000
    item_refresh_interval_s: float = 10.0
    table_poll_interval_s: float = 2.0

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url or self.item_table or self.user_table)


def open_feature_store(options: FeatureStoreOptions) -> FeatureStore:
    """The Redis or embedded store `options` describe."""
    if options.redis_url:
        return RedisFeatureStore(
            options.redis_url,
            (ITEMS, USERS),
            RedisStoreOptions(
                prefix=options.redis_prefix,
                timeout_s=options.redis_timeout_ms / 1000.0,
                recent_rows=options.recent_user_rows,
            ),
        )
    sources = {}
    for table, path, id_column, flag in (
        (ITEMS, options.item_table, options.item_id_column, "item"),
        (USERS, options.user_table, options.user_id_column, "user"),
    ):
        if not path:
            continue
        if not id_column:
            raise ConfigError(
                f"--{flag}_table needs --{flag}_id_column (e.g. "
                f"{'adgroup_id' if flag == 'item' else 'user_id'})"
            )
        sources[table] = TableSource(path, id_column)
    return EmbeddedFeatureStore(sources, poll_interval_s=options.table_poll_interval_s)


def build_feature_joiner(
    options: FeatureStoreOptions, specs: list[FeatureSpec]
) -> FeatureJoiner | None:
    """The store, item cache and joiner of `options`; None without a store."""
    if not options.enabled:
        return None
    store = open_feature_store(options)
    item_cache = None
    if ITEMS in store.tables():
        item_cache = ItemCache(
            store,
            refresh_interval_s=options.item_refresh_interval_s,
            id_column=options.item_id_column or "",
        )
    return FeatureJoiner(
        specs,
        store=store,
        item_cache=item_cache,
        user_id_feature=options.user_id_column or "",
    )
