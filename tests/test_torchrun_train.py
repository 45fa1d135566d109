"""Training launched by torchrun with two ranks (gloo, DDP) on loopback."""

import subprocess
import sys
from pathlib import Path

from recship.serving.server import free_loopback_port
from recship.testing.tiny import build_tiny_world
from recship.training.checkpoint import list_checkpoints


def test_two_ranks_train_disjoint_shards_and_rank0_checkpoints(tmp_path):
    world = build_tiny_world(tmp_path, num_rows=1500)
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [
            str(torchrun), "--nproc-per-node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(free_loopback_port()),
            "-m", "recship.cli.main", "--log_level", "WARNING", "train",
            "--pipeline_config_path", str(world.config_path), "--no_progress",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # 1200 train rows, 600 per rank, batches of 128: 5 steps on each rank.
    assert done.stdout.count("trained to step 5") == 2
    assert [p.name for p in list_checkpoints(world.config.model_dir)] == [
        "model.ckpt-5"
    ]
    assert (Path(world.config.model_dir) / "eval_result.txt").is_file()
