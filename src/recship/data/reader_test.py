"""Tests of the Parquet/CSV readers and the atomic writer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recship.data import reader
from recship.errors import DataError

# Rows per file of the test inputs: uneven, so batches cross file boundaries.
_FILE_ROWS = (7, 5, 9)


def _write_parquet_files(directory: Path) -> list[str]:
    """Writes files of `_FILE_ROWS` rows with ids 0..20 and row groups of 4."""
    paths = []
    first_id = 0
    for index, num_rows in enumerate(_FILE_ROWS):
        ids = list(range(first_id, first_id + num_rows))
        table = pa.table({"id": ids, "name": [f"n{i}" for i in ids]})
        path = directory / f"part-{index}.parquet"
        pq.write_table(table, path, row_group_size=4)
        paths.append(str(path))
        first_id += num_rows
    return paths


def _write_csv_files(directory: Path) -> list[str]:
    """Writes CSV files of `_FILE_ROWS` rows with ids 0..20 and a header."""
    paths = []
    first_id = 0
    for index, num_rows in enumerate(_FILE_ROWS):
        lines = ["id,name"]
        lines += [f"{i},n{i}" for i in range(first_id, first_id + num_rows)]
        path = directory / f"part-{index}.csv"
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
        first_id += num_rows
    return paths


def _ids(batches: list[pa.RecordBatch]) -> list[int]:
    """Returns the `id` column of the batches as ints, in order."""
    return [int(value) for batch in batches for value in batch.column("id").to_pylist()]


@pytest.fixture(params=["ParquetDataset", "CsvDataset"])
def dataset(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    """A dataset type and its three files, ids 0..20 in file order."""
    if request.param == "ParquetDataset":
        return request.param, _write_parquet_files(tmp_path)
    return request.param, _write_csv_files(tmp_path)


def test_batches_have_batch_size_rows_across_file_boundaries(dataset) -> None:
    dataset_type, paths = dataset

    batches = list(reader.iter_batches(paths, dataset_type=dataset_type, batch_size=4))

    assert [batch.num_rows for batch in batches] == [4, 4, 4, 4, 4, 1]
    assert _ids(batches) == list(range(21))
    assert batches[0].schema.names == ["id", "name"]


def test_drop_remainder_drops_the_short_last_batch(dataset) -> None:
    dataset_type, paths = dataset

    batches = list(
        reader.iter_batches(
            paths, dataset_type=dataset_type, batch_size=4, drop_remainder=True
        )
    )

    assert [batch.num_rows for batch in batches] == [4] * 5


def test_columns_selects_and_orders_columns(dataset) -> None:
    dataset_type, paths = dataset

    batches = list(
        reader.iter_batches(
            paths, dataset_type=dataset_type, batch_size=100, columns=["name", "id"]
        )
    )

    assert batches[0].schema.names == ["name", "id"]


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_and_cover_the_input(dataset, world_size: int) -> None:
    dataset_type, paths = dataset

    shards = [
        _ids(
            list(
                reader.iter_batches(
                    paths,
                    dataset_type=dataset_type,
                    batch_size=3,
                    rank=rank,
                    world_size=world_size,
                )
            )
        )
        for rank in range(world_size)
    ]

    assert sorted(sum(shards, [])) == list(range(21))
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


def test_worker_threads_keep_the_order(dataset) -> None:
    dataset_type, paths = dataset
    options = {"dataset_type": dataset_type, "batch_size": 2, "num_epochs": 3}

    serial = _ids(list(reader.iter_batches(paths, **options)))
    threaded = _ids(list(reader.iter_batches(paths, num_workers=3, **options)))

    assert threaded == serial == list(range(21)) * 3


def test_shuffle_is_a_seeded_permutation_per_epoch(dataset) -> None:
    dataset_type, paths = dataset
    options = {"dataset_type": dataset_type, "batch_size": 5, "num_epochs": 2}

    first = _ids(list(reader.iter_batches(paths, shuffle=True, seed=7, **options)))
    threaded = _ids(
        list(reader.iter_batches(paths, shuffle=True, seed=7, num_workers=2, **options))
    )
    other_seed = _ids(list(reader.iter_batches(paths, shuffle=True, seed=8, **options)))

    assert first == threaded
    assert first != other_seed
    assert sorted(first[:21]) == sorted(first[21:]) == list(range(21))
    assert first[:21] != first[21:]


def test_paths_accept_comma_lists_globs_and_directories(dataset, tmp_path) -> None:
    dataset_type, paths = dataset
    suffix = Path(paths[0]).suffix

    as_text = ",".join(paths)
    as_glob = str(tmp_path / f"part-*{suffix}")
    as_directory = str(tmp_path)

    for spec in (as_text, as_glob, as_directory):
        assert reader.resolve_paths(spec, dataset_type) == paths
    assert reader.count_rows(as_directory, dataset_type) == 21
    assert reader.read_table(as_glob, dataset_type)["id"].to_pylist() == [
        str(i) if dataset_type == "CsvDataset" else i for i in range(21)
    ]


def test_missing_column_error_names_the_column_and_file(dataset) -> None:
    dataset_type, paths = dataset

    with pytest.raises(DataError, match=r"price.*part-0\.") as error:
        reader.iter_batches(
            paths, dataset_type=dataset_type, batch_size=4, columns=["id", "price"]
        )

    assert paths[0] in str(error.value)


def test_path_without_files_and_unknown_type_are_data_errors(tmp_path) -> None:
    with pytest.raises(DataError, match="matches no parquet file"):
        reader.resolve_paths(str(tmp_path / "nothing-*.parquet"), "parquet")
    with pytest.raises(DataError, match="Unknown dataset_type 'OdpsDataset'"):
        reader.read_table(str(tmp_path), "OdpsDataset")


def test_csv_empty_fields_are_nulls_and_all_columns_strings(tmp_path) -> None:
    (tmp_path / "a.csv").write_text('id,tag,score\n1,,0.5\n2,"",\n')
    (tmp_path / "b.csv").write_text("id,tag,score\n3,x,\n")

    table = reader.read_table(str(tmp_path), "csv")

    assert table.schema == pa.schema(
        [("id", pa.string()), ("tag", pa.string()), ("score", pa.string())]
    )
    assert table.to_pydict() == {
        "id": ["1", "2", "3"],
        "tag": [None, None, "x"],
        "score": ["0.5", None, None],
    }


def test_parquet_files_with_narrower_types_are_promoted(tmp_path) -> None:
    narrow = pa.table({"id": pa.array([1, 2], pa.int32())})
    wide = pa.table({"id": pa.array([3], pa.int64())})
    pq.write_table(narrow, tmp_path / "a.parquet")
    pq.write_table(wide, tmp_path / "b.parquet")

    table = reader.read_table(str(tmp_path), "parquet")

    assert table.schema.field("id").type == pa.int64()
    assert table["id"].to_pylist() == [1, 2, 3]


@pytest.mark.parametrize("writer_type", ["ParquetWriter", "CsvWriter"])
def test_write_table_round_trips(tmp_path, writer_type: str) -> None:
    table = pa.table({"id": ["1", "2"], "tag": ["a", None]})
    suffix = "parquet" if writer_type == "ParquetWriter" else "csv"
    path = tmp_path / "out" / f"rows.{suffix}"

    reader.write_table(table, str(path), writer_type)

    assert reader.read_table(str(path), suffix).equals(table)
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "rows.parquet"
    reader.write_table(pa.table({"id": [1]}), str(path))

    def write_half_then_fail(table: pa.Table, where: str) -> None:
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(reader.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        reader.write_table(pa.table({"id": [2]}), str(path))

    assert pq.read_table(path)["id"].to_pylist() == [1]
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]
