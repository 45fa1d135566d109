import math

import numpy as np
import pyarrow as pa
import pytest

from recship.errors import DataError
from recship.serving import redis_layout as layout
from recship.testing.redis_server import every_type_table


def _replies(table: pa.Table) -> list[dict[bytes, bytes]]:
    # What HGETALL returns for the rows the loader writes: absent nulls.
    encoded = {n: layout.encode_column(table.column(n)) for n in table.column_names}
    return [
        {n.encode(): v[row].encode() for n, v in encoded.items() if v[row] is not None}
        for row in range(table.num_rows)
    ]


def test_every_type_round_trips_exactly() -> None:
    table = every_type_table()
    decoded = layout.decode_rows(table.schema, _replies(table))
    assert decoded.schema == table.schema
    assert decoded.equals(table)
    # Equality treats 0.0 and -0.0 alike; the sign must survive too.
    assert np.signbit(decoded.column("f64").to_numpy()[2])


def test_nan_round_trips() -> None:
    table = pa.table({"x": pa.array([math.nan], pa.float64())})
    decoded = layout.decode_rows(table.schema, _replies(table))
    assert math.isnan(decoded.column("x")[0].as_py())


def test_random_floats_round_trip_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000)
    table = pa.table({"x": values})
    decoded = layout.decode_rows(table.schema, _replies(table))
    assert decoded.column("x").to_numpy().tobytes() == values.tobytes()


def test_nulls_are_absent_fields() -> None:
    replies = _replies(every_type_table())
    assert b"i8" not in replies[1]
    assert b"text" not in replies[2]
    assert replies[1][b"text"] == b""  # an empty string is a value, not a null


def test_dictionary_columns_are_stored_decoded() -> None:
    table = pa.table({"c": pa.array(["a", "b", "a"]).dictionary_encode()})
    stored = layout.storage_table(table)
    assert stored.schema.field("c").type == pa.string()


def test_unsupported_type_names_the_column() -> None:
    table = pa.table({"when": pa.array([1], pa.timestamp("s"))})
    with pytest.raises(DataError, match="'when'.*timestamp"):
        layout.storage_table(table)


def test_value_of_wrong_type_names_the_column() -> None:
    schema = pa.schema([("age", pa.int64())])
    with pytest.raises(DataError, match="'age'"):
        layout.decode_rows(schema, [{b"age": b"old"}])


def test_without_schema_every_field_is_a_string() -> None:
    decoded = layout.decode_rows(None, [{b"a": b"1"}, {b"b": b"x"}])
    assert decoded.to_pylist() == [{"a": "1", "b": None}, {"a": None, "b": "x"}]


def test_schema_serialization_round_trips() -> None:
    schema = every_type_table().schema
    assert layout.deserialize_schema(layout.serialize_schema(schema)) == schema


def test_describe_url_hides_the_password() -> None:
    url = "redis://user:secret@127.0.0.1:6390/2"
    assert layout.describe_url(url) == "redis://127.0.0.1:6390/2"


def test_keys() -> None:
    assert layout.row_key("recship", "items", "42") == "recship:items:42"
    assert layout.ids_key("recship", "items") == "recship:__ids__:items"
    assert layout.meta_key("p", "users") == "p:__meta__:users"
