"""Fuzzing FG: any column of any Arrow type gives inputs or a FeatureError."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from recship.errors import FeatureError
from recship.features.fg import FeatureGenerator
from recship.features.spec import FeatureSpec

SPECS = [
    FeatureSpec(name="h", kind="id_feature", side="user", column="h",
                hash_bucket_size=100, embedding_dim=4),
    FeatureSpec(name="n", kind="id_feature", side="item", column="n",
                num_buckets=10, embedding_dim=4, default_value="0"),
    FeatureSpec(name="v", kind="id_feature", side="item", column="v",
                vocab_list=("a", "b"), embedding_dim=4),
    FeatureSpec(name="b", kind="raw_feature", side="item", column="b",
                boundaries=(0.0, 1.0, 10.0), embedding_dim=4),
    FeatureSpec(name="d", kind="raw_feature", side="item", column="d", value_dim=2,
                default_value="0"),
    FeatureSpec(name="s__n", kind="id_feature", side="item", column="s__n",
                num_buckets=10, embedding_dim=4, sequence_name="s",
                sequence_length=3, sequence_delim="|"),
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(alphabet="ab01 .|-e\x1dx", max_size=8)
)
cells = (
    scalars
    | st.lists(scalars, max_size=4)
    | st.lists(st.lists(scalars, max_size=2), max_size=2)
)


def _column(values: list) -> pa.Array | None:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None  # not an Arrow column at all; nothing for FG to do


@settings(max_examples=150, deadline=None)
@given(data=st.data(), rows=st.integers(1, 6))
def test_fg_takes_any_column(data, rows):
    columns = {}
    for spec in SPECS:
        column = _column(data.draw(st.lists(cells, min_size=rows, max_size=rows)))
        if column is not None:
            columns[spec.column] = column
    generator = FeatureGenerator(SPECS)
    try:
        inputs = generator.generate(columns, rows, missing_ok=True)
    except FeatureError as err:
        assert "feature" in str(err) or "sequence" in str(err)
        return
    for spec in SPECS:
        values = inputs[f"{spec.name}.values"]
        if spec.is_sparse:
            lengths = inputs[f"{spec.name}.lengths"]
            assert len(lengths) == rows and int(lengths.sum()) == len(values)
            assert ((values >= 0) & (values < spec.num_embeddings)).all()
        else:
            assert values.shape == (rows, spec.value_dim)
            assert np.isfinite(values).all()
