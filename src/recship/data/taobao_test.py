"""Tests of the real Taobao sample loader and the synthetic Taobao generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from recship.data import taobao
from recship.errors import DataError

_REPO_ROOT = Path(__file__).resolve().parents[3]
_SHARED_DATA = Path(
    os.environ.get("RECSHIP_SHARED_DATA", _REPO_ROOT.parent / "shared" / "data")
)
_FUXICTR_CSV = _SHARED_DATA / "taobao_fuxictr_tiny" / "valid_sample.csv"


@pytest.fixture(scope="module")
def real() -> pa.Table:
    """The 100 real rows of the FuxiCTR sample in recship's schema."""
    # The real rows live beside the repository (../shared/data), never in it;
    # without them these tests fail rather than pass vacuously.
    assert _FUXICTR_CSV.is_file(), (
        f"real sample data not found at {_FUXICTR_CSV}; set RECSHIP_SHARED_DATA"
    )
    return taobao.load_fuxictr_csv(str(_FUXICTR_CSV))


@pytest.fixture(scope="module")
def generated() -> taobao.TaobaoTables:
    """A small synthetic dataset, large enough for stable shares."""
    return taobao.generate_taobao_tables(
        num_users=3000, num_items=8000, num_rows=60_000, seed=3
    )


def _split(sequence: str | None) -> list[str]:
    """The entries of a `|`-joined sequence; none for null or empty."""
    return sequence.split("|") if sequence else []


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve, ties counted half."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over runs of equal scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    positives = labels == 1
    num_pos, num_neg = positives.sum(), (~positives).sum()
    return float(
        (ranks[positives].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)
    )


def test_real_sample_has_the_documented_facts(real: pa.Table) -> None:
    assert real.schema == taobao.TAOBAO_SCHEMA
    assert real.num_rows == 100
    assert len(pc.unique(real["user_id"])) == 24
    assert len(pc.unique(real["adgroup_id"])) == 99
    assert len(pc.unique(real["cate_id"])) == 47
    assert pc.sum(real["clk"]).as_py() == 4
    assert real["new_user_class_level"].null_count == 100
    assert real["brand"].null_count == 27
    assert real["cms_segid"].null_count == 8
    assert real["pvalue_level"].null_count == 60
    assert pc.value_counts(real["pid"]).to_pylist() == [
        {"values": "430548_1007", "counts": 70},
        {"values": "430539_1007", "counts": 30},
    ]
    assert (pc.min(real["price"]).as_py(), pc.max(real["price"]).as_py()) == (
        3.9,
        4360.0,
    )
    for name in taobao.SEQUENCE_COLUMNS:
        assert real[name].null_count == 84


def test_real_sequences_are_earlier_clicks_most_recent_first(real: pa.Table) -> None:
    rows = real.to_pylist()
    by_item = {row["adgroup_id"]: row for row in rows}

    for index, row in enumerate(rows):
        earlier_clicks = [
            other["adgroup_id"]
            for other in rows[:index]
            if other["user_id"] == row["user_id"] and other["clk"] == 1
        ]
        items = _split(row["click_50_seq__adgroup_id"])
        assert [int(item) for item in items] == earlier_clicks[::-1]
        cates = _split(row["click_50_seq__cate_id"])
        brands = _split(row["click_50_seq__brand"]) or [""] * len(items)
        assert len(cates) == len(brands) == len(items)
        for item, cate, brand in zip(items, cates, brands, strict=True):
            assert int(cate) == by_item[int(item)]["cate_id"]
            assert brand == str(by_item[int(item)]["brand"] or "")


def test_real_sample_keeps_a_missing_brand_as_an_empty_entry(real: pa.Table) -> None:
    sequences = set(real["click_50_seq__brand"].drop_null().to_pylist())

    assert "98630|" in sequences


def test_bad_value_error_names_file_line_and_column(tmp_path: Path) -> None:
    assert _FUXICTR_CSV.is_file(), f"real sample data not found at {_FUXICTR_CSV}"
    lines = _FUXICTR_CSV.read_text().splitlines()
    fields = lines[3].split(",")
    fields[lines[0].split(",").index("price")] = "cheap"
    lines[3] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(DataError, match=r"bad\.csv, line 4, column price: 'cheap'"):
        taobao.load_fuxictr_csv(str(path))


def test_unknown_clicked_ad_error_names_the_line(tmp_path: Path) -> None:
    header = (
        "clk,time_stamp,userid,adgroup_id,pid,cate_id,campaign_id,customer,brand,"
        "price,cms_segid,cms_group_id,final_gender_code,age_level,pvalue_level,"
        "shopping_level,occupation,new_user_class_level,click_sequence"
    )
    row = "0,2017-05-06 00:00:00,1,10,430548_1007,5,6,7,,1.0,0,1,2,1,,3,0,,"
    path = tmp_path / "seq.csv"
    path.write_text(f"{header}\n{row}\n{row}99\n")

    with pytest.raises(DataError, match=r"seq\.csv, line 3, .*ad 99 has no row"):
        taobao.load_fuxictr_csv(str(path))


def test_generated_tables_have_the_schema(generated: taobao.TaobaoTables) -> None:
    samples, items, users = generated

    assert samples.schema == taobao.TAOBAO_SCHEMA
    assert samples.num_rows == 60_000
    assert items.column_names == taobao.ITEM_COLUMNS
    assert items.num_rows == 8000 == len(pc.unique(items["adgroup_id"]))
    assert users.column_names == taobao.USER_COLUMNS
    assert users.num_rows == 3000 == len(pc.unique(users["user_id"]))
    for name, bound in taobao.ID_BOUNDS.items():
        assert 0 <= pc.min(samples[name]).as_py() < pc.max(samples[name]).as_py()
        assert pc.max(samples[name]).as_py() < bound
    assert set(samples["pid"].to_pylist()) == set(taobao.PIDS)


def test_generated_ids_are_sparse_and_popularity_skewed(generated) -> None:
    samples = generated.samples

    assert pc.max(samples["adgroup_id"]).as_py() > 100_000
    counts = np.sort(pc.value_counts(samples["adgroup_id"]).field(1).to_numpy())[::-1]
    top_share = counts[: len(counts) // 100].sum() / samples.num_rows
    assert top_share > 0.1


def test_generated_null_shares_follow_the_real_data(generated) -> None:
    samples = generated.samples
    share = {
        name: samples[name].null_count / samples.num_rows
        for name in samples.column_names
    }

    assert share["brand"] == pytest.approx(0.27, abs=0.08)
    assert share["pvalue_level"] == pytest.approx(0.6, abs=0.08)
    assert share["new_user_class_level"] == pytest.approx(0.3, abs=0.08)
    assert 0.0 < share["cms_segid"] < 0.15
    assert share["clk"] == share["adgroup_id"] == share["price"] == 0.0


def test_generated_sequences_are_aligned_and_capped(generated) -> None:
    columns = [generated.samples[name].to_pylist() for name in taobao.SEQUENCE_COLUMNS]

    for items, cates, brands in zip(*columns, strict=True):
        length = len(_split(items))
        assert len(_split(cates)) == length <= taobao.MAX_SEQUENCE_LENGTH
        if length == 0:
            assert items is cates is brands is None
        else:
            # A missing brand is an empty entry: "" alone, or between "|".
            assert len(brands.split("|")) == length


def test_generated_sequences_hold_the_users_earlier_clicks(generated) -> None:
    samples = generated.samples.slice(0, 3000).to_pylist()
    last_seen: dict[int, dict] = {}

    # Between two impressions of a user, the list grows by the first one's
    # click, if any, at its head.
    for row in samples:
        previous = last_seen.get(row["user_id"])
        last_seen[row["user_id"]] = row
        if previous is None:
            continue
        head = _split(row["click_50_seq__adgroup_id"])
        before = _split(previous["click_50_seq__adgroup_id"])
        if previous["clk"] == 1:
            assert head[0] == str(previous["adgroup_id"])
            assert head[1:] == before[: taobao.MAX_SEQUENCE_LENGTH - 1]
        else:
            assert head == before


def test_user_table_sequence_is_the_one_after_the_last_impression(generated) -> None:
    last_row = {row["user_id"]: row for row in generated.samples.to_pylist()}
    users = generated.users.to_pylist()

    for user in users[:500]:
        row = last_row.get(user["user_id"])
        if row is None:
            continue
        expected = _split(row["click_50_seq__adgroup_id"])
        if row["clk"] == 1:
            expected = [str(row["adgroup_id"]), *expected]
        at_end = _split(user["click_50_seq__adgroup_id"])
        assert at_end == expected[: taobao.MAX_SEQUENCE_LENGTH]
        assert user["age_level"] == row["age_level"]


def test_generation_is_deterministic_by_seed() -> None:
    first = taobao.generate_taobao_tables(200, 500, 2000, seed=11)
    again = taobao.generate_taobao_tables(200, 500, 2000, seed=11)
    other = taobao.generate_taobao_tables(200, 500, 2000, seed=12)

    for left, right in zip(first, again, strict=True):
        assert left.equals(right)
    assert not first.samples.equals(other.samples)


def test_click_rate_and_sequence_signal_let_a_model_learn(generated) -> None:
    samples = generated.samples
    labels = samples["clk"].to_numpy()
    cates = samples["cate_id"].to_pylist()
    sequences = samples["click_50_seq__cate_id"].to_pylist()
    in_sequence = np.array(
        [str(cate) in _split(seq) for cate, seq in zip(cates, sequences, strict=True)],
        dtype=np.float64,
    )

    # A one-feature logistic model ranks by its feature: AUC is the feature's.
    assert 0.05 <= labels.mean() <= 0.10
    assert _auc(in_sequence, labels) > 0.65
    assert _auc(np.zeros(len(labels)), labels) == pytest.approx(0.5)


def test_dataset_files_split_by_time(tmp_path: Path) -> None:
    paths = taobao.generate_taobao_dataset(
        str(tmp_path / "taobao"), num_users=100, num_items=300, num_rows=1000, seed=1
    )

    assert sorted(paths) == ["eval", "items", "train", "users"]
    whole = taobao.generate_taobao(100, 300, 1000, seed=1)
    train, evaluation = pq.read_table(paths["train"]), pq.read_table(paths["eval"])
    assert (train.num_rows, evaluation.num_rows) == (800, 200)
    assert pa.concat_tables([train, evaluation]).equals(whole)
    assert pq.read_table(paths["items"]).num_rows == 300
    assert pq.read_table(paths["users"]).num_rows == 100


def test_sizes_outside_the_id_ranges_are_errors() -> None:
    with pytest.raises(
        DataError, match="num_items must be at least 1 and below 846812"
    ):
        taobao.generate_taobao(10, 900_000, 10, seed=0)
    with pytest.raises(DataError, match="num_rows must be at least 1"):
        taobao.generate_taobao(10, 10, 0, seed=0)
