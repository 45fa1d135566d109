"""The ranker's one-row FG (user row, one context value for all items) hands
the model the same bytes as the vectorized FG on the tiled columns."""

import dataclasses

import numpy as np
import pytest

from recship.data.reader import read_table
from recship.serving.item_store import ItemStore
from recship.serving.ranker import Ranker
from recship.serving.request import RankRequest
from recship.testing.tiny import TINY_USER_COLUMNS

USER = TINY_USER_COLUMNS


@pytest.fixture(scope="module")
def tiled(tiny_tiled_artifact):
    return tiny_tiled_artifact


def _recording_ranker(artifact, items_path: str, gather: bool):
    """A ranker whose model records the inputs it is given."""
    seen = []

    def model(inputs):
        seen.append({name: t.numpy().copy() for name, t in inputs.items()})
        return artifact.model(inputs)

    store = ItemStore.load(items_path, "adgroup_id")
    ranker = Ranker(dataclasses.replace(artifact, model=model), store)
    if not gather:
        store.derived.clear()  # FG on every row, the user row vectorized
    return ranker, seen


def _requests(world) -> list[RankRequest]:
    rows = read_table(world.data["eval"], "ParquetDataset").to_pylist()
    items = read_table(world.data["items"], "ParquetDataset").column("adgroup_id")
    ids = [str(v) for v in items.to_pylist()[:30]]
    requests = []
    for row in rows[:12]:
        user = {c: row[c] for c in USER if row[c] is not None}
        requests.append(RankRequest(user, ids, context_features={"pid": [row["pid"]]}))
    # Cells the fast path leaves to the vectorized FG, and odd ones it takes.
    odd = [
        {"user_id": 3.0, "cms_segid": "7"},
        {"user_id": "12", "click_50_seq__adgroup_id": [1, 2, 3]},
        {"age_level": True, "click_50_seq__adgroup_id": "5||9"},
        {"user_id": " 4", "cms_group_id": None},
    ]
    for user in odd:
        requests.append(RankRequest(user, ids[:5], context_features={"pid": [7]}))
    return requests


def test_row_fg_gives_the_model_the_same_inputs(tiled):
    world, artifact = tiled
    fast, fast_seen = _recording_ranker(artifact, world.data["items"], gather=True)
    plain, plain_seen = _recording_ranker(artifact, world.data["items"], gather=False)
    for request in _requests(world):
        got = fast.rank(request).outputs["probs"]
        expected = plain.rank(request).outputs["probs"]
        np.testing.assert_array_equal(got, expected)
        inputs, reference = fast_seen[-1], plain_seen[-1]
        assert sorted(inputs) == sorted(reference)
        for name, array in reference.items():
            assert inputs[name].dtype == array.dtype, name
            assert inputs[name].shape == array.shape, name
            assert inputs[name].tobytes() == array.tobytes(), name
    assert fast._user_row is not None and fast._context_rows
