"""The one-row fast path against the vectorized FG: same inputs, bit for bit."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from recship.errors import FeatureError
from recship.features.fg import FeatureGenerator
from recship.features.fg_row import RowFeatureGenerator
from recship.features.spec import FeatureSpec

SPECS = [
    FeatureSpec(name="n", kind="id_feature", side="user", column="n",
                num_buckets=1000, embedding_dim=4),
    FeatureSpec(name="nd", kind="id_feature", side="user", column="nd",
                num_buckets=10, embedding_dim=4, default_value="3", separator=","),
    FeatureSpec(name="h", kind="id_feature", side="user", column="h",
                hash_bucket_size=97, embedding_dim=4),
    FeatureSpec(name="hd", kind="id_feature", side="user", column="hd",
                hash_bucket_size=1 << 40, embedding_dim=4, default_value="x"),
    FeatureSpec(name="v", kind="id_feature", side="user", column="v",
                vocab_list=("a", "b", "1", "é"), embedding_dim=4),
    FeatureSpec(name="vdup", kind="id_feature", side="user", column="vdup",
                vocab_list=("a", "b", "a"), embedding_dim=4),
    FeatureSpec(name="b", kind="raw_feature", side="user", column="b",
                boundaries=(-1.0, 0.0, 1.0, 10.0), embedding_dim=4),
    FeatureSpec(name="d1", kind="raw_feature", side="user", column="d1",
                default_value="0.5"),
    FeatureSpec(name="d2", kind="raw_feature", side="user", column="d2",
                value_dim=2, default_value="0", separator=","),
    FeatureSpec(name="s__n", kind="id_feature", side="user", column="s__n",
                num_buckets=50, embedding_dim=4, sequence_name="s",
                sequence_length=4, sequence_delim="|", default_value="7"),
    FeatureSpec(name="s__h", kind="id_feature", side="user", column="s__h",
                hash_bucket_size=31, embedding_dim=4, sequence_name="s",
                sequence_length=4, sequence_delim="|"),
    FeatureSpec(name="t__n", kind="id_feature", side="user", column="t__n",
                num_buckets=1 << 20, embedding_dim=4, sequence_name="t",
                sequence_delim=";"),
]  # fmt: skip

ints = st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 60) | st.integers()
texts = st.text(alphabet="0123456789-+ .e|,;\x1dabé\u0663\t", max_size=12)
delimited = st.lists(st.integers(-3, 60).map(str) | st.just(""), max_size=7).map(
    lambda parts: "|".join(parts)
) | st.lists(st.integers(0, 2000).map(str), max_size=4).map(";".join)
scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
    | delimited
    | st.text(max_size=6)
    | st.sampled_from(["\ud800", "1" * 30, "9" * 400, "-0", "007", "1.5", "0.0"])
)
cells = scalars | st.lists(scalars, max_size=5) | st.lists(st.lists(ints, max_size=2))


def _vectorized(generator: FeatureGenerator, row: dict) -> dict | Exception:
    try:
        columns = {name: pa.array([value]) for name, value in row.items()}
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        return exc  # the server refuses such a value before FG
    try:
        return generator.generate(columns, 1, missing_ok=True)
    except FeatureError as exc:
        return exc


def _assert_same(fast: dict, slow: dict) -> None:
    assert list(fast) == list(slow)
    for name, expected in slow.items():
        got = fast[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        assert got.tobytes() == expected.tobytes(), name


def _check(row: dict) -> bool:
    """True when the fast path answered (and matched)."""
    generator = FeatureGenerator(SPECS)
    # Both paths cast float64 to float32, which warns beyond float32's range
    # (1e39 becomes inf in both).
    with np.errstate(over="ignore"):
        slow = _vectorized(generator, row)
        try:
            fast = RowFeatureGenerator(generator).generate(row)
        except FeatureError as exc:
            fast = exc
    if isinstance(fast, FeatureError):
        assert isinstance(slow, FeatureError) and str(fast) == str(slow)
        return True
    if fast is None:
        return False
    assert not isinstance(slow, Exception), (row, slow)
    _assert_same(fast, slow)
    return True


@settings(max_examples=400, deadline=None)
@given(row=st.dictionaries(st.sampled_from([s.column for s in SPECS]), cells))
@example(row={})
@example(row={"s__n": "1|2||99|4|5", "s__h": "a||c|d|e"})
@example(row={"s__n": "1|2", "s__h": "a|b|c"})
@example(row={"n": 2**63 - 1, "h": -(2**63), "v": "é", "d2": "1,2", "b": "-0"})
def test_fast_row_fg_matches_vectorized(row):
    event("fast path" if _check(row) else "fallback")


@settings(max_examples=600, deadline=None)
@given(column=st.sampled_from([s.column for s in SPECS]), cell=cells)
def test_fast_row_fg_matches_vectorized_per_column(column, cell):
    event("fast path" if _check({column: cell}) else "fallback")


@pytest.mark.parametrize(
    "row",
    [
        {"n": 5, "nd": "1,2,,99", "h": "abc", "hd": "", "v": 1, "b": 3},
        {"s__n": "1|2|3|4|5|6", "s__h": "a|b|c|d|e|f", "t__n": "10;20;30"},
        {"d1": 7, "d2": "1.25,-3", "b": "10", "vdup": None},
        {"n": [1, 2, 3000], "h": ["x", "", "y"], "s__n": [1, 2]},
    ],
)
def test_common_cells_take_the_fast_path(row):
    assert _check(row)


@pytest.mark.parametrize(
    "cell", [1.0, True, "+1", " 1", "1 ", "\u0663", 2**63, [[1]], [], [1, "a"]]
)
def test_unusual_cells_fall_back(cell):
    generator = FeatureGenerator([SPECS[0]])
    assert RowFeatureGenerator(generator).generate({"n": cell}) is None


def test_vocab_with_duplicates_falls_back():
    generator = FeatureGenerator([SPECS[5]])
    assert RowFeatureGenerator(generator).generate({"vdup": "a"}) is None
    assert np.array_equal(
        RowFeatureGenerator(generator).generate({})["vdup.lengths"], [0]
    )
