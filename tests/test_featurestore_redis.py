"""The feature store against a real redis-server, and the ranker on top of it.

Every test here runs Debian's `redis-server` on a free loopback port. When
it is not installed the tests fail (they never skip) and say how to
install it.
"""

import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from recship.cli.main import main
from recship.config.loader import PipelineConfig
from recship.export.artifact import LoadedArtifact, load_artifact
from recship.export.exporter import ExportOptions, export_model
from recship.serving.app import build_app
from recship.serving.feature_join import FeatureJoiner
from recship.serving.online_features import FeatureStoreOptions, build_feature_joiner
from recship.serving.ranker import Ranker
from recship.serving.redis_loader import load_file_to_redis, load_table_to_redis
from recship.serving.request import RankRequest
from recship.serving.server import ServerHandle
from recship.serving.service import ServiceOptions, build_ranker
from recship.testing.redis_server import RedisServer, every_type_table

CONTEXT = {"pid": ["430548_1007"]}
SEQ = "click_50_seq"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


@pytest.fixture(scope="module")
def tables(tiny_export) -> dict[str, str]:
    world, _ = tiny_export
    return world.data


@pytest.fixture(scope="module")
def artifact(tiny_export) -> LoadedArtifact:
    return load_artifact(tiny_export[1])


def _load_both(tables: dict[str, str], url: str) -> None:
    load_file_to_redis(
        tables["items"], table_name="items", id_column="adgroup_id", redis_url=url
    )
    load_file_to_redis(
        tables["users"], table_name="users", id_column="user_id", redis_url=url
    )


def _user(tables: dict[str, str], index: int = 0) -> dict:
    """A user row with a profile and a click sequence, nulls left out."""
    rows = pq.read_table(tables["users"]).to_pylist()
    full = [r for r in rows if r["age_level"] is not None and r[f"{SEQ}__cate_id"]]
    return {k: v for k, v in full[index].items() if v is not None}


def _items(tables: dict[str, str], count: int = 40) -> list[str]:
    ids = pq.read_table(tables["items"]).column("adgroup_id").to_pylist()
    return [str(i) for i in ids[:count]]


def _joiner(options: FeatureStoreOptions, artifact: LoadedArtifact) -> FeatureJoiner:
    joiner = build_feature_joiner(options, artifact.generator.specs)
    assert joiner is not None
    return joiner


def _score(ranker: Ranker, user_features: dict, item_ids: list[str]) -> np.ndarray:
    request = RankRequest(
        user_features=user_features, item_ids=item_ids, context_features=CONTEXT
    )
    return ranker.rank(request).outputs["probs"]


def test_every_column_type_round_trips_through_redis(redis_url: str) -> None:
    table = every_type_table()
    result = load_table_to_redis(
        table, table_name="items", id_column="id", redis_url=redis_url, batch_size=2
    )
    assert result.rows == 3
    assert joiner_version(redis_url) == result.version > 0

    options = FeatureStoreOptions(redis_url=redis_url, item_refresh_interval_s=0)
    joiner = build_feature_joiner(options, [])
    try:
        read = joiner.store.read_all("items").sort_by("id")
        assert read.schema == table.schema
        assert read.equals(table)
        assert np.signbit(read.column("f64").to_numpy()[2])  # -0.0 kept
        row = joiner.store.lookup_row("items", "2")
        assert row["i64"] == -(2**63) and row["text"] == "" and "i8" not in row
        assert row["words"] == ["y"] and row["flag"] is False
    finally:
        joiner.close()


def test_cli_load_writes_one_hash_per_row(
    redis_url: str, tables: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    argv = ["featurestore", "load", "--input_path", tables["items"], "--table"]
    argv += ["items", "--id_column", "adgroup_id", "--redis_url", redis_url]
    assert main([*argv, "--prefix", "t1", "--batch_size", "64"]) == 0
    version = redis.Redis.from_url(redis_url).hget("t1:__meta__:items", "version")
    out = capsys.readouterr().out
    assert f"wrote 300 rows to t1:items:<id> (version {int(version)})" in out

    first = pq.read_table(tables["items"]).slice(0, 1).to_pylist()[0]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stored = client.hgetall(f"t1:items:{first['adgroup_id']}")
    assert stored["cate_id"] == str(first["cate_id"])
    assert float(stored["price"]) == first["price"]
    assert client.scard("t1:__ids__:items") == 300
    client.close()


def test_cli_load_without_redis_prints_one_error_line(
    tables: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    nobody = RedisServer(tmp_path)  # picks a free port; never started
    argv = ["featurestore", "load", "--input_path", tables["items"]]
    argv += ["--table", "items", "--id_column", "adgroup_id"]
    assert main([*argv, "--redis_url", nobody.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: writing table 'items' to Redis at redis://127.0.0.1")


def test_ranker_fills_user_features_by_id_from_both_backends(
    redis_url: str, tables: dict[str, str], artifact: LoadedArtifact
) -> None:
    _load_both(tables, redis_url)
    user, items = _user(tables), _items(tables)
    embedded = _joiner(
        FeatureStoreOptions(
            item_table=tables["items"],
            item_id_column="adgroup_id",
            user_table=tables["users"],
            user_id_column="user_id",
            table_poll_interval_s=0,
            item_refresh_interval_s=0,
        ),
        artifact,
    )
    in_redis = _joiner(
        FeatureStoreOptions(redis_url=redis_url, item_refresh_interval_s=0), artifact
    )
    try:
        by_id = {"user_id": user["user_id"]}
        full = _score(Ranker(artifact, embedded.item_cache), user, items)
        from_files = _score(
            Ranker(artifact, embedded.item_cache, feature_joiner=embedded), by_id, items
        )
        from_redis = _score(
            Ranker(artifact, in_redis.item_cache, feature_joiner=in_redis), by_id, items
        )
        without_user = _score(Ranker(artifact, embedded.item_cache), by_id, items)
    finally:
        embedded.close()
        in_redis.close()

    np.testing.assert_array_equal(from_files, full)
    np.testing.assert_array_equal(from_redis, full)
    assert not np.array_equal(without_user, full)  # the user row mattered
    assert in_redis.store.stats.hits == 1


@pytest.fixture(scope="module")
def sequence_pk_artifact(tiny_export, tmp_path_factory) -> LoadedArtifact:
    """The tiny checkpoint exported with `sequence_pk` set on its sequence."""
    world, _ = tiny_export
    config = PipelineConfig()
    config.CopyFrom(world.config)
    for feature in config.feature_configs:
        if feature.WhichOneof("feature") == "sequence_feature":
            feature.sequence_feature.sequence_pk = f"user:{SEQ}__adgroup_id"
    export_dir = tmp_path_factory.mktemp("pk") / "export"
    export_model(config, export_dir, options=ExportOptions("INT8", "INT8"))
    return load_artifact(export_dir)


def test_sequence_pk_join_scores_like_full_sequences(
    redis_url: str, tables: dict[str, str], sequence_pk_artifact: LoadedArtifact
) -> None:
    artifact = sequence_pk_artifact
    assert {s.sequence_pk for s in artifact.generator.specs if s.is_sequence} == {
        f"user:{SEQ}__adgroup_id"
    }
    _load_both(tables, redis_url)
    joiner = _joiner(
        FeatureStoreOptions(redis_url=redis_url, item_refresh_interval_s=0), artifact
    )
    try:
        ranker = Ranker(artifact, joiner.item_cache, feature_joiner=joiner)
        items = _items(tables)
        for index in range(3):
            user = _user(tables, index)
            ids_only = {k: v for k, v in user.items() if not k.startswith(SEQ)}
            ids_only[f"{SEQ}__adgroup_id"] = user[f"{SEQ}__adgroup_id"]
            joined = _score(ranker, ids_only, items)
            np.testing.assert_array_equal(joined, _score(ranker, user, items))
            # Without the join the same request scores otherwise.
            unjoined = _score(Ranker(artifact, joiner.item_cache), ids_only, items)
            assert not np.array_equal(unjoined, joined)
    finally:
        joiner.close()


def test_item_cache_follows_rows_changed_in_redis(redis_url: str) -> None:
    items = pa.table({"adgroup_id": [1, 2, 3], "brand": ["a", "b", "c"]})
    load_table_to_redis(
        items, table_name="items", id_column="adgroup_id", redis_url=redis_url
    )
    joiner = _joiner_for(redis_url)
    cache = joiner.item_cache
    try:
        assert cache.refresh_once() == "none"
        client = redis.Redis.from_url(redis_url)
        client.hset("recship:items:2", "brand", "B")  # a real-time update
        client.hset("recship:items:4", mapping={"adgroup_id": "4", "brand": "d"})
        client.delete("recship:items:3")
        client.close()

        cache.lookup(["2", "3", "4"])  # requested since the last refresh
        assert cache.refresh_once() == "rows"
        found, rows = cache.lookup(["1", "2", "3", "4"])
        assert found.tolist() == [True, True, False, True]
        assert rows.column("brand").to_pylist() == ["a", "B", "d"]

        # A new load gives a new version: the whole table is read again.
        loaded = load_table_to_redis(
            items.slice(0, 1), table_name="items", id_column="adgroup_id",
            redis_url=redis_url, prefix="recship",
        )  # fmt: skip
        assert cache.refresh_once() == "full"
        assert cache.stats.version == loaded.version
    finally:
        joiner.close()


def joiner_version(redis_url: str) -> int:
    """The items table's version as Redis holds it."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.hget("recship:__meta__:items", "version"))
    finally:
        client.close()


def _joiner_for(redis_url: str) -> FeatureJoiner:
    joiner = build_feature_joiner(
        FeatureStoreOptions(redis_url=redis_url, item_refresh_interval_s=0), []
    )
    assert joiner is not None
    return joiner


def test_redis_that_never_answers_does_not_block_lookups(redis_url: str) -> None:
    load_table_to_redis(
        pa.table({"user_id": [7], "age": [30]}),
        table_name="users",
        id_column="user_id",
        redis_url=redis_url,
    )
    joiner = _joiner_for(redis_url)
    store = joiner.store
    try:
        assert store.lookup_row("users", "7") == {"user_id": 7, "age": 30}

        # Redis stops answering for 2 s: lookups time out after 50 ms and
        # are answered from the recent rows.
        pauser = redis.Redis.from_url(redis_url)
        pauser.client_pause(2000)
        assert store.lookup_row("users", "7") == {"user_id": 7, "age": 30}
        assert store.lookup_row("users", "8") is None
        assert store.stats.errors >= 1 and not store.stats.healthy
        assert store.stats.fallback_hits == 1 and store.stats.fallback_misses == 1

        # Answering again: reads resume after the back-off.
        pauser.client_unpause()
        pauser.close()
        deadline = time.monotonic() + 10
        while not store.stats.healthy and time.monotonic() < deadline:
            store.lookup_row("users", "7")
            time.sleep(0.01)
        assert store.stats.healthy and store.stats.hits >= 2
    finally:
        joiner.close()


def _rank_json(server: ServerHandle, user_features: dict, items: list[str]) -> dict:
    body = {"user_features": user_features, "item_ids": items}
    body["context_features"] = CONTEXT
    reply = httpx.post(server.url + "/v1/rank", json=body, trust_env=False, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_server_answers_from_cache_while_redis_is_down_then_reads_fresh_rows(
    tmp_path: Path, tiny_export, tables: dict[str, str]
) -> None:
    _, export_dir = tiny_export
    user, items = _user(tables), _items(tables)
    by_id = {"user_id": user["user_id"]}
    with RedisServer(tmp_path / "redis") as server:
        _load_both(tables, server.url)
        ranker = build_ranker(
            ServiceOptions(
                export_dir=str(export_dir),
                redis_url=server.url,
                item_refresh_interval_s=0.05,
            )
        )
        joiner = ranker.feature_joiner
        stats = joiner.store.stats
        try:
            with ServerHandle(build_app(ranker)) as http:
                # Up: the user row and the items come from Redis.
                before = _rank_json(http, by_id, items)["outputs"]["probs"]
                full = _rank_json(http, user, items)["outputs"]["probs"]
                assert before == full

                # Down: same answers from the cached user row and items.
                errors = stats.errors
                server.stop()
                down = _rank_json(http, by_id, items)["outputs"]["probs"]
                assert down == before
                assert stats.errors > errors and not stats.healthy
                assert stats.fallback_hits >= 1
                # A user never seen is still answered, without its row.
                other = {"user_id": _user(tables, 5)["user_id"]}
                assert len(_rank_json(http, other, items)["outputs"]["probs"]) == 40
                assert stats.fallback_misses >= 1

                # Back, with the user's profile changed: fresh reads resume.
                server.start()
                changed = dict(user, age_level=(user["age_level"] + 1) % 8)
                changed["shopping_level"] = (user["shopping_level"] + 1) % 5
                users = pq.read_table(tables["users"])
                changed_users = _replace_row(users, changed)
                load_file_to_redis(
                    tables["items"],
                    table_name="items",
                    id_column="adgroup_id",
                    redis_url=server.url,
                )
                load_table_to_redis(
                    changed_users,
                    table_name="users",
                    id_column="user_id",
                    redis_url=server.url,
                )
                expected = _rank_json(http, changed, items)["outputs"]["probs"]
                assert expected != before
                after = _poll_scores(http, by_id, items, until=expected)
                assert after == expected
                assert stats.healthy
                assert joiner.stats()["item_cache"]["items"] == 300
        finally:
            ranker.close()


def _replace_row(users: pa.Table, row: dict) -> pa.Table:
    ids = users.column("user_id").to_pylist()
    index = ids.index(row["user_id"])
    rows = users.to_pylist()
    rows[index] = {**rows[index], **row}
    return pa.Table.from_pylist(rows, schema=users.schema)


def _poll_scores(
    server: ServerHandle, features: dict, items: list[str], until: list[float]
) -> list[float]:
    # Reads resume after the store's back-off (at most 2 s); bounded wait.
    deadline = time.monotonic() + 20
    scores = _rank_json(server, features, items)["outputs"]["probs"]
    while scores != until and time.monotonic() < deadline:
        time.sleep(0.05)
        scores = _rank_json(server, features, items)["outputs"]["probs"]
    return scores
