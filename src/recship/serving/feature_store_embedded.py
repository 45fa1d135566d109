"""The embedded feature store: Parquet or CSV tables held in memory.

Each table is read whole at start and indexed by its id column. A
background thread polls every file's modification time, size and inode;
when one changes, the file is read again and the new table replaces the old
one in a single assignment, so a reader sees either the old table or the new
one, never a mix. A file that cannot be read (half written, corrupt, without
the id column) keeps the old data, logs an error and counts in
`stats.reload_errors`; it is tried again when it changes again.
"""

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from recship.data.reader import read_table
from recship.errors import DataError, RecshipError
from recship.serving.feature_store import (
    FeatureStore,
    FeatureStoreStats,
    check_table_name,
    id_strings,
    row_to_dict,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSource:
    """Where a table of the embedded store comes from.

    Attributes:
        path: a Parquet or CSV file.
        id_column: the column holding the row ids.
        dataset_type: "ParquetDataset" or "CsvDataset"; empty infers it from
            the file name (`.csv` is CSV, anything else Parquet).
    """

    path: str
    id_column: str
    dataset_type: str = ""

    @property
    def kind(self) -> str:
        if self.dataset_type:
            return self.dataset_type
        return "CsvDataset" if self.path.endswith(".csv") else "ParquetDataset"


@dataclass(frozen=True)
class _Snapshot:
    """One loaded version of a table; replaced whole, never changed."""

    table: pa.Table
    index: dict[str, int]
    signature: tuple[int, int, int]
    version: int


def _file_signature(path: str) -> tuple[int, int, int]:
    stat = os.stat(path)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _load_snapshot(name: str, source: TableSource, version: int) -> _Snapshot:
    signature = _file_signature(source.path)
    table = read_table(source.path, source.kind).combine_chunks()
    if source.id_column not in table.column_names:
        raise DataError(
            f"feature store table {name!r} ({source.path}) has no id column "
            f"{source.id_column!r}; columns: {table.column_names}"
        )
    ids = id_strings(table.column(source.id_column))
    # Later rows win for duplicated ids, as a later write would.
    index = {row_id: row for row, row_id in enumerate(ids) if row_id is not None}
    return _Snapshot(table, index, signature, version)


class EmbeddedFeatureStore(FeatureStore):
    """Feature tables from files, in memory, reloaded when the files change.

    Args:
        sources: table name (`items`, `users`) to its file and id column.
        poll_interval_s: seconds between checks of the files; 0 disables the
            background thread (call `poll_once` yourself).
    """

    def __init__(
        self, sources: Mapping[str, TableSource], *, poll_interval_s: float = 2.0
    ) -> None:
        self.stats = FeatureStoreStats()
        self._sources = {check_table_name(n): s for n, s in sources.items()}
        self._snapshots: dict[str, _Snapshot] = {}
        self._bad_signatures: dict[str, tuple[int, int, int]] = {}
        for name, source in self._sources.items():
            try:
                self._snapshots[name] = _load_snapshot(name, source, 1)
            except (OSError, pa.ArrowException) as exc:
                raise DataError(
                    f"feature store table {name!r}: cannot read {source.path}: {exc}"
                ) from exc
            logger.info(
                "feature store table %s: %d rows from %s",
                name,
                self._snapshots[name].table.num_rows,
                source.path,
            )

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if poll_interval_s > 0:
            self._thread = threading.Thread(
                target=self._poll_loop,
                args=(poll_interval_s,),
                name="recship-featurestore-reload",
                daemon=True,
            )
            self._thread.start()

    def tables(self) -> list[str]:
        return list(self._sources)

    def _snapshot(self, table: str) -> _Snapshot:
        try:
            return self._snapshots[table]
        except KeyError:
            raise DataError(
                f"the embedded feature store has no table {table!r}; it holds "
                f"{sorted(self._sources)}. Add it to the store's tables."
            ) from None

    def id_column(self, table: str) -> str:
        self._snapshot(table)
        return self._sources[table].id_column

    def version(self, table: str) -> int:
        return self._snapshot(table).version

    def read_all(self, table: str) -> pa.Table:
        return self._snapshot(table).table

    def read_rows(self, table: str, ids: Sequence[str]) -> pa.Table:
        snapshot = self._snapshot(table)
        rows = [snapshot.index.get(row_id, -1) for row_id in ids]
        indices = np.asarray(rows, dtype=np.int64)
        return snapshot.table.take(pa.array(indices[indices >= 0]))

    def lookup_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        snapshot = self._snapshot(table)
        row = snapshot.index.get(row_id)
        if row is None:
            self.stats.add("misses")
            return None
        self.stats.add("hits")
        return row_to_dict(snapshot.table, row)

    def poll_once(self) -> list[str]:
        """Reloads every table whose file changed; returns their names."""
        reloaded = []
        for name, source in self._sources.items():
            if self._reload_if_changed(name, source):
                reloaded.append(name)
        return reloaded

    def _reload_if_changed(self, name: str, source: TableSource) -> bool:
        # Compare the file's signature with the loaded one and the last bad
        # one, so a broken file is reported once, not at every poll.
        current = self._snapshots[name]
        try:
            signature = _file_signature(source.path)
        except OSError:
            signature = (-1, -1, -1)
        if signature in (current.signature, self._bad_signatures.get(name)):
            return False

        try:
            snapshot = _load_snapshot(name, source, current.version + 1)
        except (OSError, pa.ArrowException, RecshipError) as exc:
            self._bad_signatures[name] = signature
            self.stats.add("reload_errors")
            logger.error(
                "feature store table %s: reloading %s failed, keeping the %d rows "
                "loaded before: %s",
                name,
                source.path,
                current.table.num_rows,
                exc,
            )
            return False
        self._snapshots[name] = snapshot
        self.stats.add("reloads")
        logger.info(
            "feature store table %s: reloaded %d rows from %s (version %d)",
            name,
            snapshot.table.num_rows,
            source.path,
            snapshot.version,
        )
        return True

    def _poll_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.poll_once()
            except Exception:  # keep polling whatever one round hit
                logger.exception("feature store reload round failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
