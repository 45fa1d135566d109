"""How feature tables are laid out in Redis, and how values are encoded.

Keys, for a table `items` under the prefix `recship`:

| key                          | type   | holds                               |
|------------------------------|--------|-------------------------------------|
| `recship:items:<id>`         | hash   | one row: a field per non-null column |
| `recship:__ids__:items`      | set    | the ids of every row                |
| `recship:__meta__:items`     | hash   | `schema`, `id_column`, `rows`, `version` |

Values are UTF-8 text that parses back to the exact value of the column's
type, which the table's Arrow schema (`schema`, Arrow IPC bytes) gives:
integers in decimal, floats in the shortest form that reads back to the same
bits (`0.1`, `-0`, `inf`, `nan`), booleans `true`/`false`, strings as they
are, lists as JSON arrays. A null is an absent field. `version` grows by one
at every load, so readers know when to read a table again.
"""

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from recship.errors import DataError

META_SCHEMA = "schema"
META_ID_COLUMN = "id_column"
META_ROWS = "rows"
META_VERSION = "version"


def row_key(prefix: str, table: str, row_id: str) -> str:
    """The hash of one row."""
    return f"{prefix}:{table}:{row_id}"


def ids_key(prefix: str, table: str) -> str:
    """The set of a table's ids."""
    return f"{prefix}:__ids__:{table}"


def meta_key(prefix: str, table: str) -> str:
    """The hash describing a table."""
    return f"{prefix}:__meta__:{table}"


def describe_url(url: str) -> str:
    """`redis://host:port/db` of `url` without user or password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _is_scalar(kind: pa.DataType) -> bool:
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    )


def _is_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and _is_scalar(
        kind.value_type
    )


def storage_table(table: pa.Table) -> pa.Table:
    """`table` with dictionary columns decoded; fails on unsupported types."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (_is_scalar(column.type) or _is_list(column.type)):
            raise DataError(
                f"column {name!r} has type {column.type}, which the Redis feature "
                "store cannot hold; use integers, floats, booleans, strings or "
                "lists of those (cast the column first)"
            )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def encode_column(column: pa.ChunkedArray | pa.Array) -> list[str | None]:
    """Every cell of a storage column as text; None for nulls."""
    if _is_list(column.type):
        return [None if v is None else json.dumps(v) for v in column.to_pylist()]
    return column.cast(pa.string()).to_pylist()


def decode_rows(schema: pa.Schema | None, replies: Sequence[dict]) -> pa.Table:
    """Rows read with HGETALL as a table of `schema`.

    Args:
        schema: the table's schema from its meta hash; None decodes every
            field as a string (a table written without a meta hash).
        replies: one `field -> value` mapping (bytes) per row.

    Raises:
        DataError: a value does not parse as its column's type.
    """
    if schema is None:
        names = sorted({k.decode() for reply in replies for k in reply})
        schema = pa.schema([(name, pa.string()) for name in names])
    columns = []
    for field in schema:
        key = field.name.encode()
        cells = [reply.get(key) for reply in replies]
        columns.append(_decode_column(field, cells))
    return pa.table(columns, schema=schema)


def _decode_column(field: pa.Field, cells: list[bytes | None]) -> pa.Array:
    try:
        if _is_list(field.type):
            values: list[Any] = [None if c is None else json.loads(c) for c in cells]
            return pa.array(values, type=field.type)
        text = pa.array(cells, type=pa.binary()).cast(pa.string())
        return text.cast(field.type)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(
            f"Redis feature store: column {field.name!r} holds a value that is not "
            f"a {field.type}: {exc}. Reload the table with `recship featurestore "
            "load`."
        ) from exc


def serialize_schema(schema: pa.Schema) -> bytes:
    """The Arrow IPC bytes of `schema`, as stored in the meta hash."""
    return schema.serialize().to_pybytes()


def deserialize_schema(data: bytes) -> pa.Schema:
    """The schema stored by `serialize_schema`."""
    try:
        return pa.ipc.read_schema(pa.py_buffer(data))
    except pa.ArrowException as exc:
        raise DataError(f"Redis feature store: unreadable table schema: {exc}") from exc
