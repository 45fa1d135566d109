"""Completes a rank request with features from the feature store.

Before FG runs, `FeatureJoiner.join` adds what the request left out:

1. User features by user id. When the request carries the user id (e.g.
   `user_features: {"user_id": 123}`) and lacks some user-side feature, the
   user's row of the store's `users` table fills it in. Features the request
   carries win over the row.
2. Sequences by `sequence_pk`. A sequence feature whose config sets
   `sequence_pk` (TorchEasyRec's semantics) may arrive as just the user's
   list of clicked item ids, under the name `sequence_pk` gives (a `user:`
   prefix is dropped): for example `click_50_seq__adgroup_id: "11|12|13"`.
   Its other sub-features (`click_50_seq__cate_id`, `click_50_seq__brand`)
   are then joined from the item cache, position by position: one cache
   lookup for all ids, one take per sub-feature, and an empty element where
   the id is not a cached item, so the sub-features stay aligned.

The joined sequences are `sequence_delim`-joined strings, the form training
data holds, so FG sees the same input online as offline.
"""

import logging
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from recship.features.spec import FeatureSpec
from recship.serving.feature_store import USERS, FeatureStore, normalize_id
from recship.serving.item_cache import ItemCache
from recship.serving.request import RankRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequenceJoin:
    """How one sequence is joined from the item cache.

    Attributes:
        sequence_name: the sequence feature's name.
        pk: the request feature holding the item ids.
        delimiter: the sequence's element delimiter.
        columns: sub-feature input column to the item column it is read
            from; "" means the item id itself.
    """

    sequence_name: str
    pk: str
    delimiter: str
    columns: dict[str, str]


def build_sequence_joins(
    specs: list[FeatureSpec], id_column: str
) -> list[SequenceJoin]:
    """The joins of every sequence feature with a `sequence_pk`.

    Args:
        specs: the model's feature specs.
        id_column: the item cache's id column; a sub-feature reading it takes
            the ids themselves (so unknown ids keep their id).
    """
    joins: dict[str, SequenceJoin] = {}
    for spec in specs:
        if not (spec.is_sequence and spec.sequence_pk):
            continue
        # Exports from before fg.json recorded `item_column` fall back to the
        # sub-feature's own name (`cate_id` <- item:cate_id in the example).
        item_column = spec.item_column or spec.name.removeprefix(
            f"{spec.sequence_name}__"
        )
        join = joins.setdefault(
            spec.sequence_name,
            SequenceJoin(
                spec.sequence_name,
                spec.sequence_pk.removeprefix("user:"),
                spec.sequence_delim,
                {},
            ),
        )
        join.columns[spec.column] = "" if item_column == id_column else item_column
    return list(joins.values())


def _ids_of(value: Any, delimiter: str) -> list[str]:
    """Item ids of a sequence pk value: a delimited string, a list or one id."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(delimiter) if value else []
    if isinstance(value, list | tuple):
        return ["" if v is None else normalize_id(v) for v in value]
    return [normalize_id(value)]


def _joined(values: pa.Array, delimiter: str) -> str:
    """The elements of `values` as one delimited string; nulls empty."""
    text = pc.fill_null(values.cast(pa.string()), "")
    lists = pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text)
    return pc.binary_join(lists, delimiter)[0].as_py()


class FeatureJoiner:
    """Fills a request's missing user features and `sequence_pk` sequences.

    The joiner owns the store and the item cache it is given: `close()`
    stops their background threads, and `stats()` reports both.

    Args:
        specs: the model's feature specs (from the export's fg.json).
        store: the feature store; user rows come from its `user_table`
            when it has one.
        item_cache: the item cache, needed for `sequence_pk` joins.
        user_table: the users table's name in `store`.
        user_id_feature: the request feature holding the user id; default
            the users table's id column, else `user_id`.
    """

    def __init__(
        self,
        specs: list[FeatureSpec],
        *,
        store: FeatureStore | None = None,
        item_cache: ItemCache | None = None,
        user_table: str = USERS,
        user_id_feature: str = "",
    ) -> None:
        self.store = store
        self.item_cache = item_cache
        self.user_table = user_table
        has_users = store is not None and user_table in store.tables()
        self.user_store = store if has_users else None
        self.user_id_feature = user_id_feature
        if self.user_store is not None and not user_id_feature:
            self.user_id_feature = self.user_store.id_column(user_table)
        self.user_id_feature = self.user_id_feature or "user_id"
        self.user_columns = list(
            dict.fromkeys(s.column for s in specs if s.request_side == "user")
        )
        self.sequence_joins = (
            build_sequence_joins(specs, item_cache.id_column)
            if item_cache is not None
            else []
        )
        # A pk may be a column of its own: the user row can hold it too.
        self.user_columns += [
            j.pk for j in self.sequence_joins if j.pk not in self.user_columns
        ]
        if self.sequence_joins:
            logger.info(
                "sequence_pk joins: %s",
                {j.sequence_name: j.pk for j in self.sequence_joins},
            )

    def join(self, request: RankRequest) -> RankRequest:
        """`request` with user features and sequences filled in (a copy)."""
        features = request.user_features
        pk_sent = [j for j in self.sequence_joins if j.pk in features]

        # User row: only the columns the request lacks, and not the
        # sub-features of sequences the request sends by pk.
        filled = dict(features)
        joined_columns = {c for j in pk_sent for c in j.columns}
        wanted = [
            c
            for c in self.user_columns
            if c not in features and c not in joined_columns
        ]
        user_id = features.get(self.user_id_feature)
        if self.user_store is not None and wanted and user_id is not None:
            row = self.user_store.lookup_row(self.user_table, normalize_id(user_id))
            for column in wanted:
                if row is not None and column in row:
                    filled[column] = row[column]

        # Sequences by pk: the request's ids, or the ids the user row gave.
        for join in self.sequence_joins:
            missing = [c for c in join.columns if c not in filled]
            if missing and join.pk in filled:
                self._join_sequence(join, missing, filled)
        if filled == features:
            return request
        return replace(request, user_features=filled)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters of the feature store and the item cache (see their docs)."""
        stats = {}
        if self.store is not None:
            stats["feature_store"] = self.store.stats.snapshot()
        if self.item_cache is not None:
            stats["item_cache"] = self.item_cache.stats.snapshot()
        return stats

    def close(self) -> None:
        """Stops the item cache's and the store's background work."""
        if self.item_cache is not None:
            self.item_cache.close()
        if self.store is not None:
            self.store.close()

    def _join_sequence(
        self, join: SequenceJoin, missing: list[str], filled: dict[str, Any]
    ) -> None:
        ids = _ids_of(filled[join.pk], join.delimiter)
        if not ids or self.item_cache is None:
            return
        _, rows = self.item_cache.lookup_aligned(ids)
        for column in missing:
            item_column = join.columns[column]
            if item_column == "":
                filled[column] = join.delimiter.join(ids)
            elif item_column in rows.column_names:
                values = rows.column(item_column).combine_chunks()
                filled[column] = _joined(values, join.delimiter)
