"""Readers and writers of tabular input data (Parquet, CSV) on PyArrow.

The reader turns a list of files into a stream of `pyarrow.RecordBatch` of a
fixed size, re-chunked across file boundaries, for one rank of a job. Input
is split into units (a Parquet row group, or a whole CSV file); the global
row order is the units in sorted file order. Rank `r` of `world_size` reads
the contiguous row range `[N * r // world_size, N * (r + 1) // world_size)`
of the `N` rows in total, so ranks are disjoint, cover the input exactly
once and differ by at most one row.

CSV files carry a header row. Every CSV column is read as `pa.string()`, and
an empty field is null; feature generation parses the values. This keeps the
types of a column the same across files, including columns that are empty
in one file.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import glob
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from recship.errors import DataError

logger = logging.getLogger(__name__)

_DATASET_KINDS = {
    "ParquetDataset": "parquet",
    "parquet": "parquet",
    "CsvDataset": "csv",
    "csv": "csv",
}
_WRITER_KINDS = {
    "ParquetWriter": "parquet",
    "parquet": "parquet",
    "CsvWriter": "csv",
    "csv": "csv",
}
_GLOB_CHARS = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class _Piece:
    """Rows `[start, stop)` of one unit: a Parquet row group or a CSV file."""

    path: str
    row_group: int | None
    start: int = 0
    stop: int | None = None


def resolve_paths(paths: str | list[str], dataset_type: str) -> list[str]:
    """Expands comma-separated paths, globs and directories into files.

    Args:
        paths: a comma-separated string or a list of paths; each is a file,
            a glob, or a directory (all `*.parquet` or `*.csv` files inside).
        dataset_type: "ParquetDataset", "CsvDataset", "parquet" or "csv".

    Returns:
        The files, sorted within each entry, entries kept in the given order.
    """
    kind = _dataset_kind(dataset_type)
    entries = paths.split(",") if isinstance(paths, str) else list(paths)
    entries = [str(entry).strip() for entry in entries if str(entry).strip()]
    if not entries:
        raise DataError("No input path given: pass a file, a glob or a directory.")

    files: list[str] = []
    for entry in entries:
        if os.path.isdir(entry):
            found = sorted(glob.glob(os.path.join(glob.escape(entry), f"*.{kind}")))
        elif _GLOB_CHARS.intersection(entry):
            found = sorted(path for path in glob.glob(entry) if os.path.isfile(path))
        else:
            found = [entry] if os.path.isfile(entry) else []
        if not found:
            raise DataError(
                f"Input path {entry!r} matches no {kind} file: check the path, "
                "or the dataset_type of the input."
            )
        files.extend(found)
    return files


def iter_batches(
    paths: str | list[str],
    *,
    dataset_type: str,
    batch_size: int,
    columns: list[str] | None = None,
    num_workers: int = 1,
    rank: int = 0,
    world_size: int = 1,
    num_epochs: int = 1,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Streams the rows of this rank's shard in batches of `batch_size` rows.

    Epochs follow one another in one stream: every batch has exactly
    `batch_size` rows except the last one of the stream, which is dropped if
    `drop_remainder`. With `shuffle`, each epoch visits this rank's pieces in
    a new order and permutes the rows inside each piece, seeded by `seed`
    and the epoch; the shard itself never changes.

    Args:
        paths: files, globs or directories; see `resolve_paths`.
        dataset_type: "ParquetDataset", "CsvDataset", "parquet" or "csv".
        batch_size: rows per batch.
        columns: the columns to read, in this order; None reads all columns
            of the first file.
        num_workers: pieces read ahead in background threads; output order
            does not depend on it.
        rank: this reader's rank in `[0, world_size)`.
        world_size: number of readers sharing the input.
        num_epochs: passes over the shard.
        shuffle: shuffle piece order and rows within pieces per epoch.
        seed: seed of the shuffle.
        drop_remainder: drop a last batch shorter than `batch_size`.

    Returns:
        An iterator of record batches of `batch_size` rows with the columns
        asked for. Bad options, paths and columns raise `DataError` at the
        call, before the first batch.
    """
    _check_options(batch_size, num_workers, rank, world_size, num_epochs)
    kind = _dataset_kind(dataset_type)
    files = resolve_paths(paths, dataset_type)
    schema = _unified_schema(files, kind, columns)
    pieces = _plan_shard(files, kind, rank, world_size)
    logger.debug(
        "Rank %s/%s reads %s pieces of %s files",
        rank,
        world_size,
        len(pieces),
        len(files),
    )

    # Validation and planning run now, so errors surface at the call, not at
    # the first batch. Each piece gets its own seed: threads never share one
    # generator, so the shuffle does not depend on num_workers.
    def plan_epochs() -> Iterator[tuple[_Piece, list[int] | None]]:
        for epoch in range(num_epochs):
            if not shuffle:
                yield from ((piece, None) for piece in pieces)
                continue
            order = np.random.default_rng([seed, epoch]).permutation(len(pieces))
            for index in order:
                yield pieces[index], [seed, epoch, int(index)]

    tables = _prefetch(
        lambda job: _read_piece(job[0], kind, schema, job[1]),
        plan_epochs(),
        num_workers,
    )
    return _rechunk(tables, schema, batch_size, drop_remainder)


def read_table(
    paths: str | list[str], dataset_type: str, columns: list[str] | None = None
) -> pa.Table:
    """Reads all rows of `paths` into one table, in sorted file order.

    Args:
        paths: files, globs or directories; see `resolve_paths`.
        dataset_type: "ParquetDataset", "CsvDataset", "parquet" or "csv".
        columns: the columns to read, in this order; None reads all.

    Returns:
        The table; CSV columns are strings, empty CSV fields null.
    """
    kind = _dataset_kind(dataset_type)
    files = resolve_paths(paths, dataset_type)
    schema = _unified_schema(files, kind, columns)
    pieces = _plan_shard(files, kind, rank=0, world_size=1)
    tables = [_read_piece(piece, kind, schema, None) for piece in pieces]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def count_rows(paths: str | list[str], dataset_type: str) -> int:
    """Returns the number of data rows in `paths` (CSV header rows excluded)."""
    kind = _dataset_kind(dataset_type)
    files = resolve_paths(paths, dataset_type)
    return sum(
        _unit_rows(path, row_group, kind) for path, row_group in _units(files, kind)
    )


def write_table(table: pa.Table, path: str, writer_type: str = "ParquetWriter") -> None:
    """Writes `table` to `path` atomically: a reader sees all of it or nothing.

    The table goes to a temporary file in the same directory, which is then
    renamed over `path`.

    Args:
        table: the rows to write.
        path: the destination file; missing parent directories are created.
        writer_type: "ParquetWriter", "CsvWriter", "parquet" or "csv".
    """
    if writer_type not in _WRITER_KINDS:
        raise DataError(
            f"Unknown writer_type {writer_type!r}: use one of {sorted(_WRITER_KINDS)}."
        )
    kind = _WRITER_KINDS[writer_type]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)

    handle, temp_path = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    os.close(handle)
    try:
        if kind == "parquet":
            pq.write_table(table, temp_path)
        else:
            pa_csv.write_csv(table, temp_path)
        os.replace(temp_path, target)
    except BaseException:
        os.unlink(temp_path)
        raise


def _check_options(
    batch_size: int, num_workers: int, rank: int, world_size: int, num_epochs: int
) -> None:
    """Rejects reader options that cannot work, naming the option."""
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}.")
    if num_workers < 1:
        raise DataError(f"num_workers must be at least 1, got {num_workers}.")
    if num_epochs < 0:
        raise DataError(f"num_epochs must not be negative, got {num_epochs}.")
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(
            f"rank {rank} is not in [0, world_size={world_size}): "
            "check the launcher's RANK and WORLD_SIZE."
        )


def _dataset_kind(dataset_type: str) -> str:
    """Maps a dataset type name to "parquet" or "csv"."""
    if dataset_type not in _DATASET_KINDS:
        raise DataError(
            f"Unknown dataset_type {dataset_type!r}: "
            f"use one of {sorted(_DATASET_KINDS)}."
        )
    return _DATASET_KINDS[dataset_type]


def _csv_header(path: str) -> list[str]:
    """Returns the column names in the header row of a CSV file."""
    with open(path, newline="", encoding="utf-8") as stream:
        header = next(csv.reader(stream), None)
    if not header:
        raise DataError(
            f"CSV file {path} has no header row: the first line must name the columns."
        )
    return header


def _file_schema(path: str, kind: str) -> pa.Schema:
    """Returns the schema of one file; CSV columns are all strings."""
    if kind == "csv":
        return pa.schema([(name, pa.string()) for name in _csv_header(path)])
    try:
        return pq.read_schema(path).remove_metadata()
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"Cannot read Parquet file {path}: {error}") from error


def _unified_schema(
    files: list[str], kind: str, columns: list[str] | None
) -> pa.Schema:
    """Checks every file has the columns and returns their common schema."""
    schemas = [_file_schema(path, kind) for path in files]
    wanted = list(columns) if columns is not None else schemas[0].names

    selected = []
    for path, schema in zip(files, schemas, strict=True):
        missing = [name for name in wanted if name not in schema.names]
        if missing:
            raise DataError(
                f"Column(s) {', '.join(missing)} missing in {path}; it has "
                f"{', '.join(schema.names)}. Fix the input or the feature config."
            )
        selected.append(pa.schema([schema.field(name) for name in wanted]))

    try:
        return pa.unify_schemas(selected, promote_options="permissive")
    except pa.ArrowException as error:
        raise DataError(
            f"Files of one input have incompatible types: {error}"
        ) from error


def _units(files: list[str], kind: str) -> Iterator[tuple[str, int | None]]:
    """Yields `(path, row_group)` for every unit of input, in global order."""
    for path in files:
        if kind == "csv":
            yield path, None
        else:
            for row_group in range(pq.ParquetFile(path).num_row_groups):
                yield path, row_group


def _unit_rows(path: str, row_group: int | None, kind: str) -> int:
    """Counts the rows of one unit (Parquet from metadata, CSV by parsing)."""
    if kind == "parquet":
        return pq.ParquetFile(path).metadata.row_group(row_group).num_rows
    first_column = _csv_header(path)[0]
    return _read_csv(path, pa.schema([(first_column, pa.string())])).num_rows


def _plan_shard(
    files: list[str], kind: str, rank: int, world_size: int
) -> list[_Piece]:
    """Returns the pieces holding this rank's contiguous range of rows."""
    units = list(_units(files, kind))
    if world_size == 1:
        return [_Piece(path, row_group) for path, row_group in units]

    # Counting CSV rows parses the files once more; Parquet counts are free.
    sizes = [_unit_rows(path, row_group, kind) for path, row_group in units]
    total = sum(sizes)
    first, last = total * rank // world_size, total * (rank + 1) // world_size

    pieces = []
    offset = 0
    for (path, row_group), size in zip(units, sizes, strict=True):
        start, stop = max(first - offset, 0), min(last - offset, size)
        if start < stop:
            whole = start == 0 and stop == size
            pieces.append(_Piece(path, row_group, start, None if whole else stop))
        offset += size
    return pieces


def _read_csv(path: str, schema: pa.Schema) -> pa.Table:
    """Reads the `schema` columns of a CSV file, empty fields as nulls."""
    options = pa_csv.ConvertOptions(
        column_types={field.name: field.type for field in schema},
        include_columns=schema.names,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    try:
        return pa_csv.read_csv(path, convert_options=options)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"Cannot read CSV file {path}: {error}") from error


def _read_piece(
    piece: _Piece, kind: str, schema: pa.Schema, shuffle_seed: list[int] | None
) -> pa.Table:
    """Reads one piece with the columns and types of `schema`."""
    if kind == "csv":
        table = _read_csv(piece.path, schema)
    else:
        try:
            parquet_file = pq.ParquetFile(piece.path)
            table = parquet_file.read_row_group(piece.row_group, columns=schema.names)
        except (OSError, pa.ArrowException) as error:
            raise DataError(
                f"Cannot read Parquet file {piece.path}: {error}"
            ) from error

    if piece.start or piece.stop is not None:
        stop = table.num_rows if piece.stop is None else piece.stop
        table = table.slice(piece.start, stop - piece.start)
    table = table.select(schema.names).replace_schema_metadata(None)
    if table.schema != schema:
        table = table.cast(schema)
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        table = table.take(rng.permutation(table.num_rows))
    return table


def _prefetch(
    read: Callable[[Any], pa.Table], jobs: Iterable[Any], num_workers: int
) -> Iterator[pa.Table]:
    """Runs `read` over `jobs` ahead in threads, yielding results in job order.

    At most `2 * num_workers` results wait in memory at any time.
    """
    if num_workers == 1:
        yield from map(read, jobs)
        return

    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=num_workers, thread_name_prefix="recship-reader"
    )
    pending: collections.deque[concurrent.futures.Future] = collections.deque()
    try:
        for job in jobs:
            pending.append(executor.submit(read, job))
            if len(pending) >= 2 * num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True)


def _rechunk(
    tables: Iterable[pa.Table], schema: pa.Schema, batch_size: int, drop_remainder: bool
) -> Iterator[pa.RecordBatch]:
    """Cuts a stream of tables into record batches of exactly `batch_size` rows."""
    buffered: list[pa.RecordBatch] = []
    num_buffered = 0
    for table in tables:
        buffered.extend(batch for batch in table.to_batches() if batch.num_rows)
        num_buffered += table.num_rows

        while num_buffered >= batch_size:
            rows = pa.Table.from_batches(buffered, schema=schema)
            yield pa.concat_batches(rows.slice(0, batch_size).to_batches())
            buffered = rows.slice(batch_size).to_batches()
            num_buffered -= batch_size

    if num_buffered and not drop_remainder:
        yield pa.concat_batches(buffered)
