import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from recship.data.reader import write_table
from recship.errors import DataError
from recship.serving.feature_store_embedded import EmbeddedFeatureStore, TableSource


def _users(ages: list[int]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(1, len(ages) + 1), pa.int64()),
            "age_level": pa.array(ages, pa.int64()),
            "city": pa.array([f"c{a}" if a else None for a in ages], pa.string()),
        }
    )


def _write(path: Path, table: pa.Table) -> None:
    write_table(table, str(path), "ParquetWriter")


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.parquet"
    _write(path, _users([3, 0, 5]))
    return path


def test_lookup_row_returns_typed_values_without_nulls(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        assert store.lookup_row("users", "1") == {
            "user_id": 1,
            "age_level": 3,
            "city": "c3",
        }
        assert store.lookup_row("users", "2") == {"user_id": 2, "age_level": 0}
        assert store.lookup_row("users", "99") is None
        assert (store.stats.hits, store.stats.misses) == (2, 1)


def test_read_rows_and_read_all(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        rows = store.read_rows("users", ["3", "404", "1"])
        assert sorted(rows.column("user_id").to_pylist()) == [1, 3]
        assert store.read_all("users").num_rows == 3
        assert store.id_column("users") == "user_id"


def test_changed_file_is_reloaded_and_version_grows(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        assert store.poll_once() == []
        _write(users_file, _users([7, 7, 7, 7]))

        assert store.poll_once() == ["users"]
        assert store.version("users") == 2
        assert store.lookup_row("users", "4") == {
            "user_id": 4,
            "age_level": 7,
            "city": "c7",
        }
        assert store.stats.reloads == 1


def test_background_thread_picks_up_a_new_file(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0.02) as store:
        _write(users_file, _users([9]))
        deadline = time.monotonic() + 10
        while store.version("users") == 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.lookup_row("users", "1")["age_level"] == 9
        assert store.lookup_row("users", "2") is None


def test_bad_new_file_keeps_old_data_until_a_good_one(
    users_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        users_file.write_bytes(b"this is not parquet")
        assert store.poll_once() == []
        assert store.lookup_row("users", "3")["age_level"] == 5
        assert store.stats.reload_errors == 1
        assert "keeping the 3 rows" in caplog.text

        # The same bad file is not reported again at the next poll.
        assert store.poll_once() == []
        assert store.stats.reload_errors == 1

        _write(users_file, _users([1, 2]))
        assert store.poll_once() == ["users"]
        assert store.read_all("users").num_rows == 2


def test_new_file_without_id_column_is_refused(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        _write(users_file, pa.table({"uid": [1]}))
        assert store.poll_once() == []
        assert store.stats.reload_errors == 1
        assert store.read_all("users").num_rows == 3


def test_deleted_file_keeps_old_data(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        os.remove(users_file)
        assert store.poll_once() == []
        assert store.lookup_row("users", "1") is not None


def test_csv_table_ids_match_string_keys(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    pacsv.write_csv(pa.table({"adgroup_id": [10, 11], "brand": ["b", "c"]}), path)
    with EmbeddedFeatureStore(
        {"items": TableSource(str(path), "adgroup_id")}, poll_interval_s=0
    ) as store:
        assert store.lookup_row("items", "11")["brand"] == "c"


def test_missing_file_at_start_names_table_and_path(tmp_path: Path) -> None:
    source = TableSource(str(tmp_path / "nope.parquet"), "user_id")
    with pytest.raises(DataError, match="'users'.*nope.parquet"):
        EmbeddedFeatureStore({"users": source}, poll_interval_s=0)


def test_unknown_table_is_an_error(users_file: Path) -> None:
    source = TableSource(str(users_file), "user_id")
    with EmbeddedFeatureStore({"users": source}, poll_interval_s=0) as store:
        with pytest.raises(DataError, match="no table 'items'"):
            store.lookup_row("items", "1")
