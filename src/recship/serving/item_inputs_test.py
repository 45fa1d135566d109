import numpy as np
import pyarrow as pa

from recship.features.fg import FeatureGenerator
from recship.features.spec import FeatureSpec
from recship.serving.item_inputs import build_item_inputs


def _specs() -> list[FeatureSpec]:
    return [
        FeatureSpec("item_id", "id_feature", "item", "item_id", num_buckets=100),
        FeatureSpec(
            "cate", "id_feature", "item", "cate", hash_bucket_size=50, default_value="x"
        ),
        FeatureSpec("tags", "id_feature", "item", "tags", hash_bucket_size=30),
        FeatureSpec("color", "id_feature", "item", "color", vocab_list=("r", "g")),
        FeatureSpec("price", "raw_feature", "item", "price", boundaries=(1.0, 10.0)),
        FeatureSpec(
            "vec", "raw_feature", "item", "vec", value_dim=2, default_value="0"
        ),
        FeatureSpec("pid", "id_feature", "context", "pid", hash_bucket_size=20),
        FeatureSpec("age", "id_feature", "user", "age", num_buckets=10),
    ]


def _table() -> pa.Table:
    return pa.table(
        {
            "item_id": [3, None, 7, 250, 9],
            "cate": ["a", None, "", "b", "a"],
            "tags": ["t1\x1dt2", "", None, "t3", "t1\x1dt2\x1dt4"],
            "color": ["r", "b", None, "g", "r"],
            "price": [0.5, None, 12.0, 3.0, float("nan")],
            "vec": ["1\x1d2", None, "3\x1d4", "", "5\x1d6"],
        }
    )


def test_gathered_rows_are_bit_identical_to_fg_on_those_rows():
    specs, table = _specs(), _table()
    item_inputs = build_item_inputs(specs, table)
    # Item-side features with a table column: not the user one, not pid.
    assert sorted(item_inputs.features) == sorted(
        ["item_id", "cate", "tags", "color", "price", "vec"]
    )

    rows = np.array([4, 0, 0, 2, 1, 3, 4], dtype=np.int64)
    got = item_inputs.gather(rows, item_inputs.features)
    taken = table.take(pa.array(rows))
    generator = FeatureGenerator([s for s in specs if s.name in item_inputs.columns])
    expected = generator.generate(
        {name: taken.column(name) for name in taken.column_names}, len(rows)
    )
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert got[name].dtype == values.dtype, name
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def test_a_feature_fg_refuses_on_the_table_is_left_to_fg_per_request():
    specs = [
        FeatureSpec("item_id", "id_feature", "item", "item_id", num_buckets=100),
        FeatureSpec("size", "id_feature", "item", "size", num_buckets=100),
    ]
    table = pa.table({"item_id": [1, 2], "size": ["3", "not a number"]})
    item_inputs = build_item_inputs(specs, table)
    assert item_inputs.features == ["item_id"]


def test_gather_of_no_rows_gives_empty_inputs():
    item_inputs = build_item_inputs(_specs(), _table())
    got = item_inputs.gather(np.array([], np.int64), ["tags", "vec"])
    assert got["tags.values"].shape == (0,)
    assert got["tags.lengths"].shape == (0,)
    assert got["vec.values"].shape == (0, 2)
