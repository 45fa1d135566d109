from pathlib import Path

import pyarrow as pa
import pytest

from recship.data.reader import write_table
from recship.features.spec import FeatureSpec
from recship.serving.feature_join import FeatureJoiner, build_sequence_joins
from recship.serving.feature_store_embedded import EmbeddedFeatureStore, TableSource
from recship.serving.item_cache import ItemCache
from recship.serving.request import RankRequest

SEQ = "click_50_seq"


def _specs(sequence_pk: str) -> list[FeatureSpec]:
    def sub(name: str) -> FeatureSpec:
        return FeatureSpec(
            name=f"{SEQ}__{name}",
            kind="id_feature",
            side="item",
            column=f"{SEQ}__{name}",
            hash_bucket_size=100,
            sequence_name=SEQ,
            sequence_length=50,
            sequence_delim="|",
            sequence_pk=sequence_pk,
        )

    return [
        FeatureSpec(name="age", kind="id_feature", side="user", column="age"),
        FeatureSpec(name="city", kind="id_feature", side="user", column="city"),
        sub("adgroup_id"),
        sub("cate_id"),
        sub("brand"),
    ]


@pytest.fixture
def joiner_parts(tmp_path: Path):
    items = pa.table(
        {
            "adgroup_id": pa.array([11, 12, 13], pa.int64()),
            "cate_id": pa.array([1, 2, 3], pa.int64()),
            "brand": pa.array([7, None, 9], pa.int64()),
        }
    )
    users = pa.table(
        {
            "user_id": pa.array([5], pa.int64()),
            "age": pa.array([30], pa.int64()),
            "city": pa.array(["hz"]),
            f"{SEQ}__adgroup_id": pa.array(["13|11"]),
        }
    )
    write_table(items, str(tmp_path / "items.parquet"), "ParquetWriter")
    write_table(users, str(tmp_path / "users.parquet"), "ParquetWriter")
    store = EmbeddedFeatureStore(
        {
            "items": TableSource(str(tmp_path / "items.parquet"), "adgroup_id"),
            "users": TableSource(str(tmp_path / "users.parquet"), "user_id"),
        },
        poll_interval_s=0,
    )
    cache = ItemCache(store, refresh_interval_s=0)
    yield store, cache
    cache.close()
    store.close()


def _joiner(parts, sequence_pk: str = f"user:{SEQ}__adgroup_id") -> FeatureJoiner:
    store, cache = parts
    return FeatureJoiner(_specs(sequence_pk), store=store, item_cache=cache)


def test_user_row_fills_missing_user_features(joiner_parts) -> None:
    joiner = _joiner(joiner_parts, sequence_pk="")
    filled = joiner.join(RankRequest(user_features={"user_id": 5}, item_ids=["11"]))
    assert filled.user_features["age"] == 30
    assert filled.user_features["city"] == "hz"


def test_request_features_win_over_the_user_row(joiner_parts) -> None:
    joiner = _joiner(joiner_parts, sequence_pk="")
    request = RankRequest(user_features={"user_id": 5, "age": 44}, item_ids=["11"])
    assert joiner.join(request).user_features["age"] == 44


def test_unknown_user_leaves_request_unchanged(joiner_parts) -> None:
    joiner = _joiner(joiner_parts, sequence_pk="")
    request = RankRequest(user_features={"user_id": 6}, item_ids=["11"])
    assert joiner.join(request) is request
    assert joiner.stats()["feature_store"]["misses"] == 1


def test_sequence_pk_joins_sub_features_position_by_position(joiner_parts) -> None:
    joiner = _joiner(joiner_parts)
    request = RankRequest(
        user_features={f"{SEQ}__adgroup_id": "12|404|11|13"}, item_ids=["11"]
    )
    features = joiner.join(request).user_features
    # 404 is no cached item and brand of 12 is null: empty elements, aligned.
    assert features[f"{SEQ}__cate_id"] == "2||1|3"
    assert features[f"{SEQ}__brand"] == "||7|9"
    assert features[f"{SEQ}__adgroup_id"] == "12|404|11|13"


def test_sequence_pk_accepts_a_list_of_ids(joiner_parts) -> None:
    joiner = _joiner(joiner_parts)
    request = RankRequest(user_features={f"{SEQ}__adgroup_id": [13, 12.0]})
    assert joiner.join(request).user_features[f"{SEQ}__cate_id"] == "3|2"


def test_sequence_pk_from_the_user_row(joiner_parts) -> None:
    joiner = _joiner(joiner_parts)
    features = joiner.join(RankRequest(user_features={"user_id": 5})).user_features
    assert features[f"{SEQ}__cate_id"] == "3|1"


def test_pk_column_of_its_own_fills_the_id_sub_feature(joiner_parts) -> None:
    joiner = _joiner(joiner_parts, sequence_pk="user:click_seq")
    features = joiner.join(RankRequest(user_features={"click_seq": "11|13"}))
    assert features.user_features[f"{SEQ}__adgroup_id"] == "11|13"
    assert features.user_features[f"{SEQ}__brand"] == "7|9"


def test_sent_sub_features_are_not_joined_again(joiner_parts) -> None:
    joiner = _joiner(joiner_parts)
    sent = {f"{SEQ}__adgroup_id": "11", f"{SEQ}__cate_id": "99", f"{SEQ}__brand": ""}
    assert joiner.join(RankRequest(user_features=sent)).user_features == sent


def test_build_sequence_joins_maps_columns() -> None:
    (join,) = build_sequence_joins(_specs(f"user:{SEQ}__adgroup_id"), "adgroup_id")
    assert join.pk == f"{SEQ}__adgroup_id"
    assert join.columns == {
        f"{SEQ}__adgroup_id": "",
        f"{SEQ}__cate_id": "cate_id",
        f"{SEQ}__brand": "brand",
    }
    assert build_sequence_joins(_specs(""), "adgroup_id") == []
