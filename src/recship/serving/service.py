"""Assemble a serving ranker from an export directory and an item table."""

import logging
from dataclasses import dataclass
from pathlib import Path

from recship.export.artifact import load_artifact
from recship.serving.online_features import FeatureStoreOptions, build_feature_joiner
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
        user_table: Parquet/CSV table of user features (the embedded store).
        user_id_column: the user table's id column, and the request feature
            carrying the user id.
        redis_url: read items and users from Redis instead of files.
        redis_prefix: key prefix of the tables in Redis.
        item_refresh_interval_s: seconds between item cache refreshes.
    """

    export_dir: str
    item_table: str | None = None
    item_id_column: str | None = None
    item_empty_score: float = 0.0
    user_table: str | None = None
    user_id_column: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "recship"
    item_refresh_interval_s: float = 10.0


def build_ranker(options: ServiceOptions) -> Ranker:
    """Load the export (checking its manifest) and the feature store."""
    artifact = load_artifact(options.export_dir)
    joiner = build_feature_joiner(
        FeatureStoreOptions(
            item_table=options.item_table,
            item_id_column=options.item_id_column,
            user_table=options.user_table,
            user_id_column=options.user_id_column,
            redis_url=options.redis_url,
            # Service configs write "not set" as empty: keep the defaults.
            redis_prefix=options.redis_prefix or "recship",
            item_refresh_interval_s=(
                10.0
                if options.item_refresh_interval_s is None
                else options.item_refresh_interval_s
            ),
        ),
        artifact.generator.specs,
    )
    logger.info("serving %s", options.export_dir)
    return Ranker(
        artifact,
        joiner.item_cache if joiner is not None else None,
        item_empty_score=options.item_empty_score,
        model_version=Path(options.export_dir).name,
        feature_joiner=joiner,
    )
