"""The ranker's gathered item-side inputs score exactly like FG on the rows."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recship.data.reader import read_table, write_table
from recship.serving.feature_store_embedded import EmbeddedFeatureStore, TableSource
from recship.serving.item_cache import ItemCache
from recship.serving.item_inputs import ItemInputs
from recship.serving.item_store import ItemStore
from recship.serving.ranker import ITEM_INPUTS, Ranker
from recship.serving.request import RankRequest
from recship.testing.tiny import TINY_USER_COLUMNS

USER = TINY_USER_COLUMNS


@pytest.fixture(scope="module")
def tiled(tiny_tiled_artifact):
    return tiny_tiled_artifact


def _rankers(world, artifact) -> tuple[Ranker, Ranker]:
    """(gathering ranker, ranker running FG on every item row)."""
    gathering = Ranker(artifact, ItemStore.load(world.data["items"], "adgroup_id"))
    plain_store = ItemStore.load(world.data["items"], "adgroup_id")
    plain = Ranker(artifact, plain_store)
    plain_store.derived.clear()
    return gathering, plain


def _request(world, count: int, **extra) -> RankRequest:
    rows = read_table(world.data["eval"], "ParquetDataset").to_pylist()
    row = next(r for r in rows if r["click_50_seq__adgroup_id"])
    items = read_table(world.data["items"], "ParquetDataset").column("adgroup_id")
    return RankRequest(
        user_features={c: row[c] for c in USER if row[c] is not None},
        item_ids=[str(v) for v in items.to_pylist()[:count]],
        context_features={"pid": [row["pid"]]},
        **extra,
    )


def _variants(world) -> dict[str, RankRequest]:
    plain = _request(world, 40)
    unknown = _request(world, 10)
    unknown.item_ids.insert(3, "no-such-item")
    override = _request(world, 6, item_features={"price": [1, 2, 3, 99, 500, 7]})
    described = _request(world, 3, item_features={"price": [1.0, 2.0, 3.0]})
    described.item_ids[1] = "only-in-request"
    per_item_context = _request(world, 4)
    per_item_context.context_features = {"pid": ["a", "b", "a", "c"]}
    return {
        "plain": plain,
        "unknown item": unknown,
        "item_features override": override,
        "item only in request": described,
        "context per item": per_item_context,
    }


def test_gathered_inputs_score_exactly_like_fg_on_the_rows(tiled, monkeypatch):
    world, artifact = tiled
    gathering, plain = _rankers(world, artifact)
    assert ITEM_INPUTS in gathering.item_store.derived
    gathers = []
    real_gather = ItemInputs.gather
    monkeypatch.setattr(
        ItemInputs,
        "gather",
        lambda self, rows, names: (
            gathers.append(names) or real_gather(self, rows, names)
        ),
    )
    for name, request in _variants(world).items():
        got = gathering.rank(request).outputs["probs"]
        expected = plain.rank(request).outputs["probs"]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # Every variant but the item known only from the request gathered; the
    # price override left price to FG.
    assert len(gathers) == 4
    assert "price" in gathers[0] and "price" not in gathers[2]


def test_item_cache_refresh_rebuilds_the_gathered_inputs(tiled, tmp_path: Path):
    world, artifact = tiled
    path = tmp_path / "items.parquet"
    items = read_table(world.data["items"], "ParquetDataset")
    write_table(items, str(path), "ParquetWriter")
    source = TableSource(str(path), "adgroup_id")
    request = _request(world, 5)
    with EmbeddedFeatureStore({"items": source}, poll_interval_s=0) as store:
        cache = ItemCache(store, refresh_interval_s=0)
        ranker = Ranker(artifact, cache)
        before = ranker.rank(request).outputs["probs"]
        first = cache.lookup_positions([])[0].derived[ITEM_INPUTS]

        # New prices for every item: the cache reloads, the inputs follow.
        prices = pa.array(np.full(items.num_rows, 999.0))
        changed = items.set_column(items.column_names.index("price"), "price", prices)
        write_table(changed, str(path), "ParquetWriter")
        store.poll_once()
        assert cache.refresh_once() == "full"
        current = cache.lookup_positions([])[0].derived[ITEM_INPUTS]
        assert current is not first
        after = ranker.rank(request).outputs["probs"]

        plain_store = ItemStore(changed, "adgroup_id")
        expected = Ranker(artifact, plain_store)
        plain_store.derived.clear()
        np.testing.assert_array_equal(after, expected.rank(request).outputs["probs"])
        assert not np.array_equal(before, after)
