"""Offline predict: every option, from an export and from a checkpoint, torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from recship.data.reader import read_table, write_table
from recship.errors import ConfigError
from recship.features.fg import FeatureGenerator, generate_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.predict.predictor import PredictOptions, predict
from recship.serving.server import free_loopback_port
from recship.training.checkpoint import load_checkpoint

RESERVED = ["user_id", "adgroup_id", "clk"]


def _options(**overrides) -> PredictOptions:
    values = dict(reserved_columns=RESERVED, batch_size=97, progress=False)
    values.update(overrides)
    return PredictOptions(**values)


def test_threads_keep_input_order_and_values(tiny_export, tmp_path):
    world, export_dir = tiny_export
    one = predict(export_dir, world.data["eval"], tmp_path / "one", _options())
    three = predict(
        export_dir, world.data["eval"], tmp_path / "three", _options(predict_threads=3)
    )
    a, b = read_table(one.part_file, "parquet"), read_table(three.part_file, "parquet")
    assert a.num_rows == read_table(world.data["eval"], "parquet").num_rows
    assert a.equals(b)
    assert a.column_names == RESERVED + ["logits", "probs"]


def test_csv_in_csv_out_output_columns_and_steps(tiny_export, tmp_path):
    world, export_dir = tiny_export
    table = read_table(world.data["eval"], "parquet")
    csv_input = tmp_path / "eval.csv"
    write_table(table, str(csv_input), writer_type="CsvWriter")

    result = predict(
        export_dir,
        str(csv_input),
        tmp_path / "out",
        _options(
            dataset_type="CsvDataset",
            writer_type="CsvWriter",
            output_columns=["probs"],
            predict_steps=2,
        ),
    )
    assert result.part_file.endswith("part-00000.csv")
    written = read_table(result.part_file, "CsvDataset")
    assert written.num_rows == 2 * 97
    assert written.column_names == RESERVED + ["probs"]

    # Same scores as the Parquet input (CSV cells arrive as strings).
    parquet = predict(
        export_dir, world.data["eval"], tmp_path / "pq", _options(predict_steps=2)
    )
    want = read_table(parquet.part_file, "parquet").column("probs").to_numpy()
    got = np.array(written.column("probs").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_predict_from_checkpoint_equals_the_eager_model(tiny_export, tmp_path):
    world, _ = tiny_export
    result = predict(
        None,
        world.data["eval"],
        tmp_path / "ckpt",
        _options(pipeline_config_path=str(world.config_path)),
    )
    model = build_model(world.config).eval()
    load_checkpoint(world.config.model_dir, model)
    generator = FeatureGenerator(model_feature_specs(world.config))
    batch = read_table(world.data["eval"], "parquet")
    with torch.no_grad():
        want = model(generate_tensors(generator, batch))["probs"].numpy()
    got = read_table(result.part_file, "parquet").column("probs").to_numpy()
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_predict_needs_exactly_one_model_source(tiny_export, tmp_path):
    world, export_dir = tiny_export
    with pytest.raises(ConfigError, match="not both"):
        predict(
            export_dir,
            world.data["eval"],
            tmp_path / "x",
            _options(pipeline_config_path=str(world.config_path)),
        )
    with pytest.raises(ConfigError, match="nothing to score with"):
        predict(None, world.data["eval"], tmp_path / "y", _options())


def test_profiling_writes_a_trace_and_a_summary(tiny_export, tmp_path):
    world, export_dir = tiny_export
    result = predict(
        export_dir,
        world.data["eval"],
        tmp_path / "prof",
        _options(is_profiling=True, predict_steps=3),
    )
    assert Path(result.profile_trace).stat().st_size > 0
    assert "predict.model" in result.profile_summary
    assert "predict.fg" in result.profile_summary


def _torchrun(args: list[str], nproc: int, timeout: float = 240):
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        f"--nproc-per-node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_loopback_port()}",
        "-m",
        "recship.cli.main",
        *args,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_two_torchrun_ranks_equal_one_process(tiny_export, tmp_path):
    world, export_dir = tiny_export
    flags = [
        "predict",
        f"--scripted_model_path={export_dir}",
        f"--predict_input_path={world.data['eval']}",
        f"--reserved_columns={','.join(RESERVED)}",
        "--batch_size=64",
        "--no_progress",
    ]
    done = _torchrun([*flags, f"--predict_output_path={tmp_path / 'two'}"], 2)
    assert done.returncode == 0, done.stderr[-3000:]
    single = predict(export_dir, world.data["eval"], tmp_path / "one", _options())

    parts = sorted((tmp_path / "two").glob("part-*.parquet"))
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet"]
    halves = [read_table(str(p), "parquet") for p in parts]
    assert all(h.num_rows > 0 for h in halves)
    # Row for row: the same input rows in the same order, the same scores
    # (up to float rounding, since batches are cut differently per rank).
    union = pa.concat_tables(halves)
    single_table = read_table(single.part_file, "parquet")
    assert union.select(RESERVED).equals(single_table.select(RESERVED))
    for name in ("logits", "probs"):
        np.testing.assert_allclose(
            union.column(name).to_numpy(),
            single_table.column(name).to_numpy(),
            rtol=1e-5,
            atol=1e-6,
        )


def test_export_under_torchrun_refuses_clearly(tiny_export, tmp_path):
    world, _ = tiny_export
    done = _torchrun(
        [
            "export",
            f"--pipeline_config_path={world.config_path}",
            f"--export_dir={tmp_path / 'export'}",
        ],
        2,
    )
    assert done.returncode != 0
    assert "Error: export runs in one process, but WORLD_SIZE is 2" in done.stderr
    assert not (tmp_path / "export").exists()
