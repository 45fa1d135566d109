from pathlib import Path

import pyarrow as pa
import pytest

from recship.data.reader import write_table
from recship.serving.feature_store_embedded import EmbeddedFeatureStore, TableSource
from recship.serving.item_cache import ItemCache


def _items(brands: list[str | None]) -> pa.Table:
    return pa.table(
        {
            "adgroup_id": pa.array(range(100, 100 + len(brands)), pa.int64()),
            "brand": pa.array(brands, pa.string()),
        }
    )


@pytest.fixture
def store(tmp_path: Path):
    path = tmp_path / "items.parquet"
    write_table(_items(["a", None, "c"]), str(path), "ParquetWriter")
    source = TableSource(str(path), "adgroup_id")
    with EmbeddedFeatureStore({"items": source}, poll_interval_s=0) as store:
        yield store, path


def test_lookup_returns_found_rows_in_request_order(store) -> None:
    feature_store, _ = store
    cache = ItemCache(feature_store, refresh_interval_s=0)
    found, rows = cache.lookup(["102", "7", "100"])
    assert found.tolist() == [True, False, True]
    assert rows.column("brand").to_pylist() == ["c", "a"]
    assert len(cache) == 3 and cache.id_column == "adgroup_id"


def test_lookup_aligned_gives_null_rows_for_unknown_ids(store) -> None:
    feature_store, _ = store
    cache = ItemCache(feature_store, refresh_interval_s=0)
    found, rows = cache.lookup_aligned(["101", "x", "100", "100"])
    assert found.tolist() == [True, False, True, True]
    assert rows.column("brand").to_pylist() == [None, None, "a", "a"]
    assert rows.column("adgroup_id").to_pylist() == [101, None, 100, 100]


def test_refresh_follows_a_reloaded_table(store) -> None:
    feature_store, path = store
    cache = ItemCache(feature_store, refresh_interval_s=0)
    assert cache.refresh_once() == "none"

    write_table(_items(["z"] * 5), str(path), "ParquetWriter")
    feature_store.poll_once()
    assert cache.refresh_once() == "full"
    found, rows = cache.lookup(["104", "100"])
    assert found.all() and rows.column("brand").to_pylist() == ["z", "z"]
    assert cache.stats.snapshot()["items"] == 5
    assert cache.stats.full_reloads == 1
