"""Assemble a serving ranker from an export directory and an item table."""

import logging
from dataclasses import dataclass
from pathlib import Path

from recship.errors import ConfigError
from recship.export.artifact import load_artifact
from recship.serving.item_store import ItemStore
from recship.serving.ranker import Ranker

logger = logging.getLogger(__name__)


@dataclass
class ServiceOptions:
    """What `recship serve` loads.

    Attributes:
        export_dir: the export to serve.
        item_table: Parquet/CSV table of item features (the embedded store).
        item_id_column: the item table's id column.
        item_empty_score: score of items that cannot be scored.
    """

    export_dir: str
    item_table: str | None = None
    item_id_column: str | None = None
    item_empty_score: float = 0.0


def build_ranker(options: ServiceOptions) -> Ranker:
    """Load the export (checking its manifest) and the item store."""
    artifact = load_artifact(options.export_dir)
    store = None
    if options.item_table:
        if not options.item_id_column:
            raise ConfigError("--item_table needs --item_id_column (e.g. adgroup_id)")
        dataset_type = (
            "CsvDataset"
            if str(options.item_table).endswith(".csv")
            else "ParquetDataset"
        )
        store = ItemStore.load(options.item_table, options.item_id_column, dataset_type)
    logger.info("serving %s", options.export_dir)
    return Ranker(
        artifact,
        store,
        item_empty_score=options.item_empty_score,
        model_version=Path(options.export_dir).name,
    )
