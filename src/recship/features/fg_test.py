import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recship.config.loader import load_pipeline_config
from recship.data.taobao import load_fuxictr_csv
from recship.errors import FeatureError
from recship.features.fg import FeatureGenerator
from recship.features.spec import (
    build_feature_specs,
    specs_from_fg_json,
    specs_to_fg_json,
)

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("RECSHIP_SHARED_DATA", REPO.parent / "shared" / "data"))


def _id(name="f", column=None, **options):
    from recship.features.spec import FeatureSpec

    return FeatureSpec(
        name=name, kind="id_feature", side="user", column=column or name, **options
    )


def _generate(spec, values):
    array = values if isinstance(values, pa.Array) else pa.array(values)
    return FeatureGenerator([spec]).generate({spec.column: array}, len(array))


def test_num_buckets_ids_are_equal_from_ints_strings_and_floats():
    spec = _id(num_buckets=100, embedding_dim=4)
    from_ints = _generate(spec, [3, None, 42])
    from_strings = _generate(spec, ["3", "", " 42 "])
    from_floats = _generate(spec, [3.0, float("nan"), 42.0])
    for generated in (from_strings, from_floats):
        np.testing.assert_array_equal(generated["f.values"], from_ints["f.values"])
        np.testing.assert_array_equal(generated["f.lengths"], from_ints["f.lengths"])
    np.testing.assert_array_equal(from_ints["f.lengths"], [1, 0, 1])


def test_out_of_range_ids_count_as_missing_and_take_the_default():
    spec = _id(num_buckets=10, embedding_dim=4, default_value="0")
    generated = _generate(spec, [5, 10, -1, None])
    np.testing.assert_array_equal(generated["f.values"], [5, 0, 0, 0])
    np.testing.assert_array_equal(generated["f.lengths"], [1, 1, 1, 1])


def test_hash_buckets_agree_for_int_and_string_inputs():
    spec = _id(hash_bucket_size=1000, embedding_dim=4)
    np.testing.assert_array_equal(
        _generate(spec, [17, 123456789])["f.values"],
        _generate(spec, ["17", "123456789"])["f.values"],
    )


def test_multi_value_cells_split_on_the_separator_and_drop_empties():
    spec = _id(num_buckets=100, embedding_dim=4, separator=",")
    generated = _generate(spec, ["1,2,,3", "", None, "7"])
    np.testing.assert_array_equal(generated["f.values"], [1, 2, 3, 7])
    np.testing.assert_array_equal(generated["f.lengths"], [3, 0, 0, 1])


def test_vocab_list_maps_unknown_values_to_the_last_row():
    spec = _id(vocab_list=("a", "b"), embedding_dim=4)
    generated = _generate(spec, ["b", "zzz", "a"])
    np.testing.assert_array_equal(generated["f.values"], [1, 2, 0])
    assert spec.num_embeddings == 3


def test_raw_boundaries_bucketize_right_closed():
    from recship.features.spec import FeatureSpec

    spec = FeatureSpec(
        name="price", kind="raw_feature", side="item", column="price",
        boundaries=(10.0, 20.0), embedding_dim=4, default_value="0",
    )  # fmt: skip
    generated = _generate(spec, [5.0, 10.0, 15.0, 25.0, None])
    np.testing.assert_array_equal(generated["price.values"], [0, 1, 1, 2, 0])


def test_dense_raw_values_with_defaults_and_wrong_dims():
    from recship.features.spec import FeatureSpec

    spec = FeatureSpec(
        name="v", kind="raw_feature", side="user", column="v", value_dim=2,
        separator=",", default_value="-1",
    )  # fmt: skip
    generated = _generate(spec, ["1.5,2", None])
    np.testing.assert_array_equal(generated["v.values"], [[1.5, 2.0], [-1.0, -1.0]])
    assert generated["v.values"].dtype == np.float32
    with pytest.raises(FeatureError, match=r"'v'.*row 0: has 3 values"):
        _generate(spec, ["1,2,3"])


def _sequence(name, **options):
    return _id(
        name=f"seq__{name}", column=f"seq__{name}", sequence_name="seq",
        sequence_delim="|", sequence_length=3, num_buckets=100, embedding_dim=4,
        **options,
    )  # fmt: skip


def test_sequences_truncate_keep_empty_steps_and_stay_aligned():
    specs = [_sequence("a"), _sequence("b")]
    columns = {
        "seq__a": pa.array(["1|2|3|4", "", "5"]),
        "seq__b": pa.array(["7||9|9", None, None]),
    }
    generated = FeatureGenerator(specs).generate(columns, 3)
    np.testing.assert_array_equal(generated["seq__a.values"], [1, 2, 3, 5])
    np.testing.assert_array_equal(generated["seq__a.lengths"], [3, 0, 1])
    # The empty step stays (as 0) and a missing sibling cell is filled.
    np.testing.assert_array_equal(generated["seq__b.values"], [7, 0, 9, 0])
    np.testing.assert_array_equal(generated["seq__b.lengths"], [3, 0, 1])


def test_misaligned_sequence_siblings_are_an_error_naming_the_row():
    specs = [_sequence("a"), _sequence("b")]
    columns = {"seq__a": pa.array(["1", "1|2"]), "seq__b": pa.array(["1", "3"])}
    with pytest.raises(FeatureError, match=r"sequence 'seq', row 1"):
        FeatureGenerator(specs).generate(columns, 2)


def test_bad_values_name_feature_column_and_row():
    spec = _id(num_buckets=100, embedding_dim=4)
    with pytest.raises(
        FeatureError, match=r"feature 'f' \(column 'f'\), row 2: value 'x7'"
    ):
        _generate(spec, ["1", "2", "x7"])
    with pytest.raises(FeatureError, match="is not an integer id"):
        _generate(spec, [1.5])


def test_missing_column_fails_unless_missing_ok():
    generator = FeatureGenerator([_id(num_buckets=10, embedding_dim=4)])
    with pytest.raises(FeatureError, match="needs input column 'f'"):
        generator.generate({}, 2)
    generated = generator.generate({}, 2, missing_ok=True)
    np.testing.assert_array_equal(generated["f.lengths"], [0, 0])


def test_fg_json_round_trip_gives_identical_specs():
    specs = build_feature_specs(
        load_pipeline_config(REPO / "examples/multi_tower_din_taobao.config")
    )
    assert specs_from_fg_json(specs_to_fg_json(specs)) == specs


def test_real_taobao_rows_generate_with_their_empty_values():
    config = load_pipeline_config(REPO / "examples/multi_tower_din_taobao.config")
    rows = load_fuxictr_csv(str(SHARED / "taobao_fuxictr_tiny" / "valid_sample.csv"))
    generator = FeatureGenerator(build_feature_specs(config))
    columns = {name: rows.column(name) for name in rows.column_names}
    generated = generator.generate(columns, rows.num_rows)

    # new_user_class_level is empty in all 100 rows; brand in 27; pvalue in 60.
    assert generated["new_user_class_level.lengths"].sum() == 0
    assert generated["brand.lengths"].sum() == 100 - 27
    assert generated["pvalue_level.lengths"].sum() == 100 - 60
    # 84 rows have no click history; the other 16 one or two steps.
    lengths = generated["click_50_seq__adgroup_id.lengths"]
    assert (lengths == 0).sum() == 84 and lengths.max() == 2
    for sub in ("cate_id", "brand"):
        np.testing.assert_array_equal(
            generated[f"click_50_seq__{sub}.lengths"], lengths
        )
    # Row by row FG equals whole-batch FG: no dependence on batch composition.
    for row in (0, 1, 57):
        one = generator.generate({n: c.slice(row, 1) for n, c in columns.items()}, 1)
        assert one["user_id.values"].tolist() == [rows.column("user_id")[row].as_py()]


def test_dense_values_beyond_float32_are_an_error_not_inf():
    from recship.features.spec import FeatureSpec

    spec = FeatureSpec(
        name="v", kind="raw_feature", side="user", column="v", default_value="0"
    )
    with pytest.raises(FeatureError, match=r"row 1: value 1e\+39 is not within the"):
        _generate(spec, [1.0, 1e39])
