"""Taobao display-ad data in recship's raw schema: real sample rows and a generator.

The schema carries the feature names of TorchEasyRec's Taobao multi-tower DIN
example: a click label, the user profile, the ad's attributes, the placement,
and the user's earlier clicks as three aligned `|`-joined sequences (ad,
category, brand), most recent first.

`load_fuxictr_csv` maps the real 100-row FuxiCTR sample to this schema.
`generate_taobao` and `generate_taobao_dataset` make synthetic data of any
size whose clicks depend on the click sequence, for training and benchmarks.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recship.data import reader
from recship.errors import DataError

logger = logging.getLogger(__name__)

LABEL = "clk"
USER_ID = "user_id"
ITEM_ID = "adgroup_id"
SEQUENCE_PREFIX = "click_50_seq__"
SEQUENCE_DELIMITER = "|"
MAX_SEQUENCE_LENGTH = 50

_PROFILE_COLUMNS = [
    "cms_segid",
    "cms_group_id",
    "final_gender_code",
    "age_level",
    "pvalue_level",
    "shopping_level",
    "occupation",
    "new_user_class_level",
]
SEQUENCE_COLUMNS = [
    SEQUENCE_PREFIX + "adgroup_id",
    SEQUENCE_PREFIX + "cate_id",
    SEQUENCE_PREFIX + "brand",
]
USER_COLUMNS = [USER_ID, *_PROFILE_COLUMNS, *SEQUENCE_COLUMNS]
ITEM_COLUMNS = [ITEM_ID, "cate_id", "campaign_id", "customer", "brand", "price"]
CONTEXT_COLUMNS = ["pid"]

TAOBAO_SCHEMA = pa.schema(
    [(LABEL, pa.int64())]
    + [(name, pa.int64()) for name in [USER_ID, *_PROFILE_COLUMNS]]
    + [(name, pa.int64()) for name in ITEM_COLUMNS[:-1]]
    + [("price", pa.float64()), ("pid", pa.string())]
    + [(name, pa.string()) for name in SEQUENCE_COLUMNS]
)

# Exclusive upper bounds of the ids, from the hash bucket sizes of the
# TorchEasyRec Taobao example config.
ID_BOUNDS = {
    USER_ID: 1141730,
    ITEM_ID: 846812,
    "cate_id": 12961,
    "campaign_id": 423438,
    "customer": 255877,
    "brand": 461498,
    "cms_segid": 98,
}
PIDS = ("430548_1007", "430539_1007")

# Columns of the FuxiCTR sample besides the renamed ones.
_FUXICTR_RENAMES = {"userid": USER_ID}
_FUXICTR_SEQUENCE = "click_sequence"
_FUXICTR_SEQUENCE_DELIMITER = "^"
_INTEGER_PATTERN = r"^[-+]?[0-9]+$"
_FLOAT_PATTERN = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"


def load_fuxictr_csv(path: str) -> pa.Table:
    """Reads FuxiCTR's Taobao sample CSV into `TAOBAO_SCHEMA`.

    `userid` becomes `user_id`, `time_stamp` is dropped, empty fields are
    nulls, and the `^`-joined `click_sequence` (oldest first) becomes the
    three aligned sequence columns, most recent first. The category and brand
    of each clicked ad are looked up in the rows of the same file.

    Args:
        path: the CSV file, e.g. `taobao_fuxictr_tiny/valid_sample.csv`.

    Returns:
        One row per line of the file, in file order.
    """
    source_names = {target: source for source, target in _FUXICTR_RENAMES.items()}
    wanted = [source_names.get(name, name) for name in TAOBAO_SCHEMA.names]
    wanted = [name for name in wanted if not name.startswith(SEQUENCE_PREFIX)]
    raw = reader.read_table(path, "CsvDataset", [*wanted, _FUXICTR_SEQUENCE])

    # Parse the scalar columns with the types of the schema.
    columns: dict[str, pa.Array] = {}
    for field in TAOBAO_SCHEMA:
        if not field.name.startswith(SEQUENCE_PREFIX):
            source = source_names.get(field.name, field.name)
            columns[field.name] = _parse_column(raw[source], field.type, path, source)
    _check_labels(columns[LABEL], path)

    # Turn the oldest-first ad ids into three aligned most-recent-first lists.
    clicks = pc.split_pattern(
        raw[_FUXICTR_SEQUENCE].combine_chunks(), _FUXICTR_SEQUENCE_DELIMITER
    )
    offsets = clicks.offsets.to_numpy().astype(np.int64)
    valid = clicks.is_valid().to_numpy(zero_copy_only=False)
    row_of_entry = np.repeat(np.arange(len(clicks)), np.diff(offsets))
    flat = clicks.values.take(_reversed_list_order(offsets))
    clicked_ids = _parse_column(
        flat, pa.int64(), path, _FUXICTR_SEQUENCE, row_of=row_of_entry
    )
    rows = _find_clicked_rows(clicked_ids, columns[ITEM_ID], row_of_entry, path)
    for name in (ITEM_ID, "cate_id", "brand"):
        values = clicked_ids if name == ITEM_ID else columns[name].take(rows)
        columns[SEQUENCE_PREFIX + name] = _join_sequences(offsets, values, valid)

    return pa.table(columns, schema=TAOBAO_SCHEMA)


def _parse_column(
    values: pa.Array | pa.ChunkedArray,
    to_type: pa.DataType,
    path: str,
    column: str,
    row_of: np.ndarray | None = None,
) -> pa.Array:
    """Casts CSV strings to `to_type`, naming the file and line of a bad value.

    Args:
        values: the strings, one per data row unless `row_of` is given.
        to_type: int64, float64 or string.
        path: the file, for messages.
        column: the column, for messages.
        row_of: [N] the data row of each value, for list entries.
    """
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if to_type == pa.string():
        return values
    pattern = _FLOAT_PATTERN if pa.types.is_floating(to_type) else _INTEGER_PATTERN

    matches = pc.fill_null(pc.match_substring_regex(values, pattern), True)
    if not pc.all(matches).as_py():
        index = int(np.flatnonzero(~matches.to_numpy(zero_copy_only=False))[0])
        line = (index if row_of is None else int(row_of[index])) + 2
        raise DataError(
            f"{path}, line {line}, column {column}: {values[index].as_py()!r} is not "
            f"a {to_type} value. Fix or drop the row."
        )
    return pc.cast(values, to_type)


def _check_labels(labels: pa.Array, path: str) -> None:
    """Fails unless every label is 0 or 1, naming the first bad line."""
    good = pc.fill_null(pc.is_in(labels, value_set=pa.array([0, 1])), False)
    if not pc.all(good).as_py():
        row = int(np.flatnonzero(~good.to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{path}, line {row + 2}, column {LABEL}: label "
            f"{labels[row].as_py()!r} is not 0 or 1."
        )


def _find_clicked_rows(
    clicked_ids: pa.Array, item_ids: pa.Array, row_of: np.ndarray, path: str
) -> pa.Array:
    """Returns, for each clicked ad id, the first row of the file with that ad."""
    rows = pc.index_in(clicked_ids, value_set=item_ids)
    if rows.null_count:
        entry = int(np.flatnonzero(rows.is_null().to_numpy(zero_copy_only=False))[0])
        line = int(row_of[entry]) + 2
        raise DataError(
            f"{path}, line {line}, column {_FUXICTR_SEQUENCE}: ad "
            f"{clicked_ids[entry].as_py()} has no row in the file, so its "
            "cate_id and brand are unknown."
        )
    return rows


def _reversed_list_order(offsets: np.ndarray) -> np.ndarray:
    """Indices of the flat values that reverse each list `[o[i], o[i+1])`."""
    lengths = np.diff(offsets)
    parents = np.repeat(np.arange(len(lengths)), lengths)
    positions = np.arange(offsets[-1] - offsets[0]) + offsets[0]
    return offsets[parents] + offsets[parents + 1] - 1 - positions


def _join_sequences(
    offsets: np.ndarray, values: pa.Array | np.ndarray, valid: np.ndarray
) -> pa.Array:
    """Joins the lists `values[o[i]:o[i+1]]` with `|`; null where not `valid`.

    A null value becomes an empty entry, as in `1||3`.
    """
    strings = pc.fill_null(pc.cast(pa.array(values), pa.string()), "")
    lists = pa.ListArray.from_arrays(
        pa.array(offsets - offsets[0], pa.int32()), strings, mask=pa.array(~valid)
    )
    return pc.binary_join(lists, SEQUENCE_DELIMITER)


class TaobaoTables(NamedTuple):
    """Synthetic Taobao data: samples in time order, plus the feature tables.

    Attributes:
        samples: impressions in `TAOBAO_SCHEMA`, oldest first.
        items: one row per ad with `ITEM_COLUMNS`.
        users: one row per user with `USER_COLUMNS`, the click sequence as of
            the end of the samples.
    """

    samples: pa.Table
    items: pa.Table
    users: pa.Table


def generate_taobao(
    num_users: int, num_items: int, num_rows: int, seed: int
) -> pa.Table:
    """Generates synthetic impressions in `TAOBAO_SCHEMA`, oldest first.

    See `generate_taobao_tables` for what the data models.
    """
    return generate_taobao_tables(num_users, num_items, num_rows, seed).samples


def generate_taobao_dataset(
    out_dir: str,
    *,
    num_users: int = 20_000,
    num_items: int = 50_000,
    num_rows: int = 200_000,
    seed: int = 0,
    eval_fraction: float = 0.2,
) -> dict[str, str]:
    """Writes a synthetic dataset: a time-ordered train/eval split and tables.

    Args:
        out_dir: directory to write to; created if missing.
        num_users: number of users.
        num_items: number of ads.
        num_rows: number of impressions.
        seed: seed of all random draws.
        eval_fraction: share of the latest impressions that go to eval.

    Returns:
        Paths of `train.parquet`, `eval.parquet`, `items.parquet` and
        `users.parquet` under the keys "train", "eval", "items", "users".
    """
    if not 0.0 < eval_fraction < 1.0:
        raise DataError(f"eval_fraction must be in (0, 1), got {eval_fraction}.")
    tables = generate_taobao_tables(num_users, num_items, num_rows, seed)

    num_train = int(round(num_rows * (1.0 - eval_fraction)))
    parts = {
        "train": tables.samples.slice(0, num_train),
        "eval": tables.samples.slice(num_train),
        "items": tables.items,
        "users": tables.users,
    }
    paths = {}
    for name, table in parts.items():
        paths[name] = os.path.join(out_dir, f"{name}.parquet")
        reader.write_table(table, paths[name], "ParquetWriter")
    logger.info("Wrote synthetic Taobao data (%s rows) to %s", num_rows, out_dir)
    return paths


def generate_taobao_tables(
    num_users: int, num_items: int, num_rows: int, seed: int
) -> TaobaoTables:
    """Generates synthetic Taobao impressions with their item and user tables.

    Ads, users and categories follow Zipf popularity; ids are spread over
    the id ranges of the Taobao config. Each user prefers a few categories
    and has clicks from before the data starts. The click probability grows
    when the ad's category or brand is among the user's earlier clicks, when
    the category is one the user prefers, and with profile and placement
    effects; the base click rate is about 5-10%. Missing values follow the
    real data: brand about 27% null, pvalue_level 60%, new_user_class_level
    30%, and no profile at all for about 5% of users.

    Args:
        num_users: number of users.
        num_items: number of ads.
        num_rows: number of impressions.
        seed: seed of all random draws; equal seeds give equal tables.

    Returns:
        The samples (oldest first), items and users.
    """
    _check_sizes(num_users, num_items, num_rows)
    rng = np.random.default_rng(seed)

    # Draw the catalogue, the users and their clicks from before the data.
    items = _generate_items(rng, num_items)
    users = _generate_users(rng, num_users, items)
    history = _draw_history(rng, users, items)

    # Draw impressions in time order, then their clicks.
    shown = _draw_impressions(rng, num_rows, users, items)
    clicks = _draw_clicks(rng, shown, users, items, history)

    # Sequences of every impression and of every user at the end of the data.
    offsets, clicked = _click_sequences(shown, clicks, history, num_users)
    sequences = _sequence_columns(offsets, clicked, items)
    row_sequences = {name: values[:num_rows] for name, values in sequences.items()}
    user_sequences = {name: values[num_rows:] for name, values in sequences.items()}

    samples = {
        LABEL: clicks.astype(np.int64),
        **{name: values[shown.user] for name, values in users.profile.items()},
        **{name: values[shown.item] for name, values in items.columns.items()},
        "pid": np.where(shown.first_pid, PIDS[0], PIDS[1]),
        **row_sequences,
    }
    return TaobaoTables(
        samples=_to_table(samples, TAOBAO_SCHEMA),
        items=_to_table(items.columns, _subschema(ITEM_COLUMNS)),
        users=_to_table({**users.profile, **user_sequences}, _subschema(USER_COLUMNS)),
    )


# Shares and weights of the synthetic data. Null shares and value mixes follow
# the real Taobao data; the click model weights give a base rate of about 7%.
_NO_PROFILE_SHARE = 0.05
_PVALUE_NULL_SHARE = 0.58
_NEW_USER_CLASS_NULL_SHARE = 0.27
_BRAND_NULL_SHARE = 0.27
_PREFERENCE_WEIGHTS = np.array([0.5, 0.3, 0.2])
_HISTORY_CLICKS_MEAN = 8.0
_HISTORY_FROM_PREFERENCE = 0.8
_CANDIDATE_FROM_PREFERENCE = 0.35
_CLICK_BLOCKS = 20
_CLICK_WEIGHTS = {
    "base": -4.1,
    "preferred_category": 1.0,
    "category_clicked": 0.9,
    "brand_clicked": 0.6,
    "first_pid": 0.15,
    "occupation": 0.25,
    "top_shopping_level": 0.1,
    "log10_price": -0.2,
}


class _Items(NamedTuple):
    """The ad catalogue; index i is the i-th most popular ad."""

    columns: dict[str, np.ndarray]  # ITEM_COLUMNS; -1 is null
    category: np.ndarray  # [I] category index in [0, C)
    brand: np.ndarray  # [I] brand index in [0, num_brands), -1 when null
    popularity: np.ndarray  # [I] impression probability
    quality: np.ndarray  # [I] click logit offset
    by_category: np.ndarray  # [I] ad indices sorted by category, then popularity
    category_start: np.ndarray  # [C] first position of a category in by_category
    category_size: np.ndarray  # [C] number of ads per category
    num_brands: int


class _Users(NamedTuple):
    """The users; index u is the u-th most active user."""

    profile: dict[str, np.ndarray]  # user_id and _PROFILE_COLUMNS; -1 is null
    activity: np.ndarray  # [U] impression probability
    preferred: np.ndarray  # [U, 3] preferred category indices
    bias: np.ndarray  # [U] click logit offset


class _Impressions(NamedTuple):
    """Ads shown to users, oldest first."""

    user: np.ndarray  # [R] user index
    item: np.ndarray  # [R] ad index
    first_pid: np.ndarray  # [R] bool, shown on placement PIDS[0]


class _History(NamedTuple):
    """Clicks from before the data, oldest first within each user."""

    user: np.ndarray  # [H] user index
    item: np.ndarray  # [H] ad index


def _check_sizes(num_users: int, num_items: int, num_rows: int) -> None:
    """Fails unless the sizes are positive and fit the config's id ranges."""
    for name, value, bound in (
        ("num_users", num_users, ID_BOUNDS[USER_ID]),
        ("num_items", num_items, ID_BOUNDS[ITEM_ID]),
        ("num_rows", num_rows, None),
    ):
        if value < 1 or (bound is not None and value >= bound):
            limit = f" and below {bound}" if bound is not None else ""
            raise DataError(f"{name} must be at least 1{limit}, got {value}.")


def _zipf(size: int, exponent: float) -> np.ndarray:
    """Probabilities proportional to `1 / rank ** exponent`, rank from 1."""
    weights = 1.0 / np.arange(1, size + 1, dtype=np.float64) ** exponent
    return weights / weights.sum()


def _sparse_ids(rng: np.random.Generator, size: int, column: str) -> np.ndarray:
    """Distinct ids in `[1, bound)` of the column, in random order."""
    bound = ID_BOUNDS[column]
    return rng.choice(bound - 1, size=min(size, bound - 1), replace=False) + 1


def _generate_items(rng: np.random.Generator, num_items: int) -> _Items:
    """Draws ads: Zipf popularity, brands tied to categories, prices by category."""
    num_categories = int(np.clip(num_items // 20, 5, ID_BOUNDS["cate_id"] - 1))
    num_brands = int(np.clip(num_items // 4, 5, ID_BOUNDS["brand"] - 1))
    num_customers = int(np.clip(num_items // 6, 5, ID_BOUNDS["customer"] - 1))
    num_campaigns = int(np.clip(num_items // 2, 5, ID_BOUNDS["campaign_id"] - 1))

    # A brand sells in one category; an ad's category is its brand's.
    brand_category = rng.choice(
        num_categories, num_brands, p=_zipf(num_categories, 1.0)
    )
    brand = rng.choice(num_brands, num_items, p=_zipf(num_brands, 0.9))
    category = brand_category[brand]
    customer = rng.integers(num_customers, size=num_brands)[brand]
    campaign = rng.integers(num_campaigns, size=num_items)
    log_price = rng.normal(np.log(100.0), 1.0, num_categories)[category]
    price = np.exp(log_price + rng.normal(0.0, 0.5, num_items))
    brand = np.where(rng.random(num_items) < _BRAND_NULL_SHARE, -1, brand)

    brand_ids = _sparse_ids(rng, num_brands, "brand")
    columns = {
        ITEM_ID: _sparse_ids(rng, num_items, ITEM_ID),
        "cate_id": _sparse_ids(rng, num_categories, "cate_id")[category],
        "campaign_id": _sparse_ids(rng, num_campaigns, "campaign_id")[campaign],
        "customer": _sparse_ids(rng, num_customers, "customer")[customer],
        "brand": np.where(brand < 0, -1, brand_ids[brand]),
        "price": np.round(np.clip(price, 1.0, 10000.0), 1),
    }
    by_category = np.lexsort((np.arange(num_items), category))
    category_size = np.bincount(category, minlength=num_categories)
    return _Items(
        columns=columns,
        category=category,
        brand=brand,
        popularity=_zipf(num_items, 0.8),
        quality=rng.normal(0.0, 0.35, num_items),
        by_category=by_category,
        category_start=np.cumsum(category_size) - category_size,
        category_size=category_size,
        num_brands=num_brands,
    )


def _generate_users(rng: np.random.Generator, num_users: int, items: _Items) -> _Users:
    """Draws user profiles with the real data's codes and null shares."""
    gender = np.where(rng.random(num_users) < 0.7, 2, 1)
    age = rng.choice(7, num_users, p=[0.02, 0.12, 0.25, 0.28, 0.18, 0.1, 0.05])
    pvalue = rng.choice([1, 2, 3], num_users, p=[0.25, 0.65, 0.1])
    new_user_class = rng.choice([1, 2, 3, 4], num_users, p=[0.1, 0.4, 0.3, 0.2])
    segment = np.where(rng.random(num_users) < 0.55, 0, rng.integers(1, 98, num_users))
    profile = {
        "cms_segid": segment,
        # Groups 1-6 are women by age level, 7-12 men, as in the real data.
        "cms_group_id": np.where(age == 0, 0, np.where(gender == 2, age, age + 6)),
        "final_gender_code": gender,
        "age_level": age,
        "pvalue_level": np.where(
            rng.random(num_users) < _PVALUE_NULL_SHARE, -1, pvalue
        ),
        "shopping_level": rng.choice([1, 2, 3], num_users, p=[0.07, 0.13, 0.8]),
        "occupation": (rng.random(num_users) < 0.06).astype(np.int64),
        "new_user_class_level": np.where(
            rng.random(num_users) < _NEW_USER_CLASS_NULL_SHARE, -1, new_user_class
        ),
    }
    no_profile = rng.random(num_users) < _NO_PROFILE_SHARE
    profile = {
        name: np.where(no_profile, -1, values) for name, values in profile.items()
    }

    # Preferences are categories of popular ads, so every one has ads.
    liked_items = rng.choice(len(items.category), (num_users, 3), p=items.popularity)
    return _Users(
        profile={USER_ID: _sparse_ids(rng, num_users, USER_ID), **profile},
        activity=_zipf(num_users, 0.6),
        preferred=items.category[liked_items],
        bias=rng.normal(0.0, 0.3, num_users),
    )


def _draw_items(
    rng: np.random.Generator,
    user: np.ndarray,
    from_preference: float,
    users: _Users,
    items: _Items,
) -> np.ndarray:
    """Draws one ad per user: from a preferred category or by popularity."""
    size = len(user)
    slot = rng.choice(3, size, p=_PREFERENCE_WEIGHTS)
    category = users.preferred[user, slot]
    # Squaring a uniform number favours the popular ads of the category.
    rank = (items.category_size[category] * rng.random(size) ** 2).astype(np.int64)
    preferred = items.by_category[items.category_start[category] + rank]
    popular = rng.choice(len(items.category), size, p=items.popularity)
    return np.where(rng.random(size) < from_preference, preferred, popular)


def _draw_history(rng: np.random.Generator, users: _Users, items: _Items) -> _History:
    """Draws each user's clicks from before the data, mostly preferred categories."""
    counts = rng.poisson(_HISTORY_CLICKS_MEAN, len(users.bias))
    user = np.repeat(np.arange(len(users.bias)), counts)
    item = _draw_items(rng, user, _HISTORY_FROM_PREFERENCE, users, items)
    return _History(user=user, item=item)


def _draw_impressions(
    rng: np.random.Generator, num_rows: int, users: _Users, items: _Items
) -> _Impressions:
    """Draws the user, ad and placement of each impression, in time order."""
    user = rng.choice(len(users.bias), num_rows, p=users.activity)
    item = _draw_items(rng, user, _CANDIDATE_FROM_PREFERENCE, users, items)
    return _Impressions(user=user, item=item, first_pid=rng.random(num_rows) < 0.7)


def _draw_clicks(
    rng: np.random.Generator,
    shown: _Impressions,
    users: _Users,
    items: _Items,
    history: _History,
) -> np.ndarray:
    """Draws clicks in time blocks; a block sees the clicks of earlier blocks.

    Returns:
        [R] bool, True where the impression was clicked.
    """
    # The parts of the logit that do not depend on earlier clicks.
    weights = _CLICK_WEIGHTS
    profile = users.profile
    user, item = shown.user, shown.item
    preferred = (users.preferred[user] == items.category[item][:, None]).any(axis=1)
    static = (
        weights["base"]
        + weights["preferred_category"] * preferred
        + weights["first_pid"] * shown.first_pid
        + weights["occupation"] * (profile["occupation"][user] == 1)
        + weights["top_shopping_level"] * (profile["shopping_level"][user] == 3)
        + weights["log10_price"] * (np.log10(items.columns["price"][item]) - 2.0)
        + items.quality[item]
        + users.bias[user]
    )

    # Keys of (user, category) and (user, brand) pairs the user has clicked.
    num_categories = len(items.category_size)
    category_key = user * num_categories + items.category[item]
    brand_key = np.where(
        items.brand[item] < 0, -1, user * items.num_brands + items.brand[item]
    )
    history_brand = items.brand[history.item]
    clicked_categories = np.unique(
        history.user * num_categories + items.category[history.item]
    )
    clicked_brands = np.unique(
        (history.user * items.num_brands + history_brand)[history_brand >= 0]
    )

    # NOTE: within a block, clicks do not see each other; the sequence
    # features do. Blocks keep the draw vectorized at a small staleness.
    clicks = np.zeros(len(user), dtype=bool)
    for block in np.array_split(np.arange(len(user)), _CLICK_BLOCKS):
        logit = (
            static[block]
            + weights["category_clicked"]
            * np.isin(category_key[block], clicked_categories)
            + weights["brand_clicked"] * np.isin(brand_key[block], clicked_brands)
        )
        clicks[block] = rng.random(len(block)) < 1.0 / (1.0 + np.exp(-logit))
        done = block[clicks[block]]
        clicked_categories = np.union1d(clicked_categories, category_key[done])
        clicked_brands = np.union1d(
            clicked_brands, brand_key[done][brand_key[done] >= 0]
        )
    return clicks


def _click_sequences(
    shown: _Impressions, clicks: np.ndarray, history: _History, num_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lists each impression's earlier clicks, then each user's clicks at the end.

    Returns:
        Offsets [R + U + 1] and the flat clicked ad indices, most recent
        first, at most `MAX_SEQUENCE_LENGTH` per list.
    """
    user, item = shown.user, shown.item
    num_rows = len(user)

    # Events: history clicks (negative times), impressions, one end per user.
    event_user = np.concatenate([history.user, user, np.arange(num_users)])
    event_time = np.concatenate(
        [
            np.arange(len(history.user)) - len(history.user),
            np.arange(num_rows),
            np.full(num_users, num_rows),
        ]
    )
    event_item = np.concatenate([history.item, item, np.zeros(num_users, np.int64)])
    event_click = np.concatenate(
        [np.ones(len(history.user), bool), clicks, np.zeros(num_users, bool)]
    ).astype(np.int64)
    order = np.lexsort((event_time, event_user))

    # Clicks before each event, counted over all users, and at its user's start.
    sorted_user, sorted_click = event_user[order], event_click[order]
    clicks_before = np.cumsum(sorted_click) - sorted_click
    starts = np.flatnonzero(np.r_[True, sorted_user[1:] != sorted_user[:-1]])
    run = np.cumsum(np.r_[True, sorted_user[1:] != sorted_user[:-1]]) - 1
    user_clicks_before = clicks_before - clicks_before[starts][run]
    clicked_items = event_item[order][sorted_click == 1]

    # Lists for the impressions and ends, in their input order.
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    wanted = position[len(history.user) :]
    lengths = np.minimum(user_clicks_before[wanted], MAX_SEQUENCE_LENGTH)
    offsets = np.r_[0, np.cumsum(lengths)]
    parents = np.repeat(np.arange(len(wanted)), lengths)
    step = np.arange(offsets[-1]) - offsets[parents]
    return offsets, clicked_items[clicks_before[wanted][parents] - 1 - step]


def _sequence_columns(
    offsets: np.ndarray, clicked: np.ndarray, items: _Items
) -> dict[str, pa.Array]:
    """Builds the three `|`-joined sequence columns from clicked ad indices."""
    valid = np.diff(offsets) > 0
    columns = {}
    for name in (ITEM_ID, "cate_id", "brand"):
        ids = items.columns[name][clicked]
        values = pa.array(ids, pa.int64(), mask=ids < 0)
        columns[SEQUENCE_PREFIX + name] = _join_sequences(offsets, values, valid)
    return columns


def _subschema(names: list[str]) -> pa.Schema:
    """The fields of `TAOBAO_SCHEMA` with these names, in this order."""
    return pa.schema([TAOBAO_SCHEMA.field(name) for name in names])


def _to_table(columns: dict[str, np.ndarray | pa.Array], schema: pa.Schema) -> pa.Table:
    """Builds a table of `schema`; -1 in an int64 column is null."""
    arrays = []
    for field in schema:
        values = columns[field.name]
        if isinstance(values, np.ndarray) and field.type == pa.int64():
            values = pa.array(values, pa.int64(), mask=values < 0)
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
