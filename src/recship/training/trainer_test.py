import json

import numpy as np
import pytest
import torch

from recship.errors import CheckpointError
from recship.models.builder import build_model
from recship.testing.tiny import build_tiny_world
from recship.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from recship.training.metrics import compute_auc, compute_grouped_auc
from recship.training.trainer import evaluate, train_and_evaluate


@pytest.fixture
def world(tmp_path):
    return build_tiny_world(tmp_path, num_rows=1500)


def test_training_writes_checkpoints_and_eval_metrics(world):
    world.config.train_config.save_checkpoints_steps = 4
    result = train_and_evaluate(world.config, progress=False)

    # 1200 train rows in batches of 128: 10 steps, checkpoints every 4 + final.
    assert result.step == 10
    steps = [
        int(p.name.split("-")[1]) for p in list_checkpoints(world.config.model_dir)
    ]
    assert steps == [4, 8, 10]
    assert 0.0 <= result.metrics["auc"] <= 1.0
    assert result.metrics["num_examples"] == 300
    saved = json.loads((world.root / "model" / "eval_result.txt").read_text())
    assert saved["auc"] == pytest.approx(result.metrics["auc"])
    assert (world.root / "model" / "pipeline.config").is_file()


def test_training_resumes_from_the_latest_checkpoint(world):
    world.config.train_config.num_steps = 4
    train_and_evaluate(world.config, progress=False)
    first = build_model(world.config)
    load_checkpoint(world.config.model_dir, first)

    world.config.train_config.num_steps = 7
    result = train_and_evaluate(world.config, progress=False)
    assert result.step == 7
    assert result.examples == 3 * 128  # only the steps after the checkpoint
    resumed = build_model(world.config)
    meta = load_checkpoint(world.config.model_dir, resumed)
    assert meta["step"] == 7
    changed = [
        not torch.equal(a, b)
        for a, b in zip(
            first.state_dict().values(), resumed.state_dict().values(), strict=True
        )
    ]
    assert any(changed)


def test_sparse_and_dense_parameters_both_learn(world):
    world.config.train_config.num_steps = 3
    torch.manual_seed(2024)
    before = build_model(world.config).state_dict()
    train_and_evaluate(world.config, progress=False)
    after = build_model(world.config)
    load_checkpoint(world.config.model_dir, after)
    state = after.state_dict()
    embedding = next(k for k in state if k.startswith("embedding.ebc"))
    dense = next(k for k in state if k.startswith("towers"))
    assert not torch.equal(before[embedding], state[embedding])
    assert not torch.equal(before[dense], state[dense])


def test_checkpoint_is_written_atomically_and_pruned(tmp_path):
    model = torch.nn.Linear(2, 1)
    for step in range(1, 5):
        save_checkpoint(tmp_path, step, model, {}, {}, keep_max=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "model.ckpt-3",
        "model.ckpt-4",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # A directory without meta.json (a crash mid-write) is not a checkpoint.
    (tmp_path / "model.ckpt-9").mkdir()
    assert latest_checkpoint(tmp_path).name == "model.ckpt-4"


def test_missing_checkpoint_is_a_clear_error(tmp_path, world):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        evaluate(world.config, str(tmp_path / "nothing"))


def test_auc_and_grouped_auc_match_pairwise_counting():
    rng = np.random.default_rng(0)
    probs = rng.random(200).astype(np.float32)
    labels = (rng.random(200) < probs).astype(np.float32)
    pos, neg = probs[labels == 1], probs[labels == 0]
    pairwise = (pos[:, None] > neg[None, :]).mean()
    assert compute_auc(probs, labels) == pytest.approx(pairwise, abs=1e-6)

    groups = np.repeat([1, 2], 100)
    expected = np.mean(
        [compute_auc(probs[g == groups], labels[g == groups]) for g in (1, 2)]
    )
    assert compute_grouped_auc(probs, labels, groups) == pytest.approx(
        expected, abs=1e-6
    )
