"""Loads a Parquet or CSV feature table into Redis (`recship featurestore load`).

Rows go in batches, one MULTI/EXEC pipeline per batch, so a reader sees a
batch whole or not at all. Each row's hash is deleted before it is written,
so a column that became null disappears. The table's meta hash is written
last, with a new `version` (the load time in microseconds), which tells
running servers to read the table again. The key layout is in redis_layout.py.
"""

import logging
import time
from dataclasses import dataclass

import pyarrow as pa
import redis

from recship.data.reader import read_table
from recship.errors import DataError, ServingError
from recship.serving import redis_layout as layout
from recship.serving.feature_store import check_table_name, id_strings

logger = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "recship"


@dataclass
class LoadResult:
    """What a load wrote.

    Attributes:
        rows: rows written.
        skipped: rows without an id, not written.
        table: the table name.
        version: the table's version after the load.
        seconds: wall time of the load.
    """

    rows: int
    skipped: int
    table: str
    version: int
    seconds: float


def connect(url: str, timeout_s: float) -> redis.Redis:
    """A Redis client that fails fast instead of retrying on its own."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise ServingError(
            f"bad Redis URL {layout.describe_url(url)!r}: {exc}; "
            f"use the form {DEFAULT_REDIS_URL}"
        ) from exc


def load_table_to_redis(
    table: pa.Table,
    *,
    table_name: str,
    id_column: str,
    redis_url: str = DEFAULT_REDIS_URL,
    prefix: str = DEFAULT_PREFIX,
    batch_size: int = 1000,
) -> LoadResult:
    """Writes every row of `table` to Redis as `<prefix>:<table_name>:<id>`.

    Args:
        table: the rows; columns of integers, floats, booleans, strings or
            lists of those.
        table_name: `items`, `users` or another table name.
        id_column: the column holding row ids.
        redis_url: where Redis listens.
        prefix: the first part of every key.
        batch_size: rows per pipeline.

    Raises:
        DataError: the id column is missing or a column type is unsupported.
        ServingError: Redis cannot be reached or refused a write.
    """
    # Check and encode the table before touching Redis.
    check_table_name(table_name)
    if id_column not in table.column_names:
        raise DataError(
            f"table {table_name!r} has no id column {id_column!r}; columns: "
            f"{table.column_names}. Pass --id_column with one of them."
        )
    start = time.monotonic()
    stored = layout.storage_table(table)
    ids = id_strings(stored.column(id_column))
    encoded = {
        name: layout.encode_column(stored.column(name)) for name in stored.schema.names
    }

    client = connect(redis_url, timeout_s=30.0)
    try:
        written, skipped = _write_rows(
            client, prefix, table_name, ids, encoded, batch_size
        )
        version = _write_meta(
            client, prefix, table_name, stored.schema, id_column, written
        )
    except redis.RedisError as exc:
        raise ServingError(
            f"writing table {table_name!r} to Redis at "
            f"{layout.describe_url(redis_url)} failed: {exc}. Check that "
            "redis-server runs there (or pass --redis_url)."
        ) from exc
    finally:
        client.close()

    seconds = time.monotonic() - start
    logger.info(
        "loaded %d rows of %s into Redis (prefix %s, version %d) in %.2fs",
        written,
        table_name,
        prefix,
        version,
        seconds,
    )
    return LoadResult(written, skipped, table_name, version, seconds)


def _write_rows(
    client: redis.Redis,
    prefix: str,
    table_name: str,
    ids: list[str | None],
    encoded: dict[str, list[str | None]],
    batch_size: int,
) -> tuple[int, int]:
    written = skipped = 0
    names = list(encoded)
    for start in range(0, len(ids), max(1, batch_size)):
        pipe = client.pipeline(transaction=True)
        batch_ids = []
        for row in range(start, min(start + batch_size, len(ids))):
            row_id = ids[row]
            if row_id is None:
                skipped += 1
                continue
            key = layout.row_key(prefix, table_name, row_id)
            mapping = {n: encoded[n][row] for n in names if encoded[n][row] is not None}
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            batch_ids.append(row_id)
        if batch_ids:
            pipe.sadd(layout.ids_key(prefix, table_name), *batch_ids)
            pipe.execute()
        written += len(batch_ids)
    return written, skipped


def _write_meta(
    client: redis.Redis,
    prefix: str,
    table_name: str,
    schema: pa.Schema,
    id_column: str,
    rows: int,
) -> int:
    key = layout.meta_key(prefix, table_name)
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            layout.META_SCHEMA: layout.serialize_schema(schema),
            layout.META_ID_COLUMN: id_column,
            layout.META_ROWS: rows,
        },
    )
    # NOTE: the version is the load time in microseconds, not a counter: a
    # Redis restarted empty and loaded again must not repeat a version a
    # running server has cached, or that server would keep stale rows.
    version = time.time_ns() // 1000
    pipe.hset(key, layout.META_VERSION, version)
    pipe.execute()
    return version


def load_file_to_redis(
    input_path: str,
    *,
    table_name: str,
    id_column: str,
    redis_url: str = DEFAULT_REDIS_URL,
    prefix: str = DEFAULT_PREFIX,
    batch_size: int = 1000,
) -> LoadResult:
    """`load_table_to_redis` on a Parquet file (or CSV, by its `.csv` name)."""
    kind = "CsvDataset" if input_path.endswith(".csv") else "ParquetDataset"
    return load_table_to_redis(
        read_table(input_path, kind),
        table_name=table_name,
        id_column=id_column,
        redis_url=redis_url,
        prefix=prefix,
        batch_size=batch_size,
    )
