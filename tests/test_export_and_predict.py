"""Export artifact and offline predict on a tiny trained model."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from recship.data.reader import read_table
from recship.errors import ExportError
from recship.export.artifact import load_artifact, verify_manifest
from recship.export.exporter import ExportOptions, export_model
from recship.features.fg import generate_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.predict.predictor import PredictOptions, predict
from recship.training.checkpoint import load_checkpoint

EXPECTED_FILES = {
    "scripted_model.pt", "pipeline.config", "fg.json", "model_acc.json",
    "MANIFEST.json",
}  # fmt: skip


def test_export_writes_the_whole_artifact(tiny_export):
    world, export_dir = tiny_export
    assert EXPECTED_FILES <= {p.name for p in export_dir.iterdir()}
    assert (export_dir / "assets").is_dir()
    manifest = verify_manifest(export_dir)
    assert set(manifest["files"]) >= EXPECTED_FILES - {"MANIFEST.json"}
    assert manifest["source_checkpoint"].endswith("model.ckpt-19")
    acc = json.loads((export_dir / "model_acc.json").read_text())
    assert (acc["quant_emb"], acc["quant_ec_emb"]) == ("INT8", "INT8")
    assert "user_id.values" in acc["input_signature"]
    # No staging directory is left beside the export.
    assert not [p for p in export_dir.parent.iterdir() if ".tmp-" in p.name]


def test_artifact_scores_match_the_checkpoint(tiny_export):
    world, export_dir = tiny_export
    loaded = load_artifact(export_dir)
    model = build_model(world.config).eval()
    load_checkpoint(world.config.model_dir, model)
    batch = read_table(world.data["eval"], "ParquetDataset").slice(0, 100)
    inputs = generate_tensors(loaded.generator, batch)
    with torch.no_grad():
        got, expected = loaded.model(inputs)["probs"], model(inputs)["probs"]
    assert float((got - expected).abs().max()) < 0.03
    assert loaded.generator.specs == model_feature_specs(world.config)


def test_tampered_artifact_fails_manifest_check(tiny_export, tmp_path):
    _, export_dir = tiny_export
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in export_dir.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    (copy / "fg.json").write_text(
        (copy / "fg.json").read_text().replace("user", "usr", 1)
    )
    with pytest.raises(ExportError, match="fg.json does not match its sha256"):
        load_artifact(copy)


def test_export_refuses_existing_directory_and_multiple_ranks(tiny_export, monkeypatch):
    world, export_dir = tiny_export
    with pytest.raises(ExportError, match="exists"):
        export_model(world.config, export_dir)
    monkeypatch.setitem(os.environ, "WORLD_SIZE", "2")
    with pytest.raises(ExportError, match="one process"):
        export_model(world.config, Path(export_dir).parent / "other")


def test_fp32_export_is_exact_and_int8_is_smaller(tiny_export, tmp_path):
    world, export_dir = tiny_export
    fp32 = export_model(
        world.config, tmp_path / "fp32", options=ExportOptions("FP32", "FP32")
    )
    assert fp32.max_prob_diff < 1e-5
    int8_bytes = (export_dir / "scripted_model.pt").stat().st_size
    assert int8_bytes < (tmp_path / "fp32" / "scripted_model.pt").stat().st_size


def test_predict_writes_reserved_columns_and_artifact_scores(tiny_export, tmp_path):
    world, export_dir = tiny_export
    result = predict(
        export_dir,
        world.data["eval"],
        tmp_path / "out",
        PredictOptions(
            reserved_columns=["user_id", "adgroup_id", "clk"], batch_size=70
        ),
    )
    table = read_table(str(tmp_path / "out"), "ParquetDataset")
    assert result.rows == table.num_rows == 600
    assert table.column_names == ["user_id", "adgroup_id", "clk", "logits", "probs"]

    loaded = load_artifact(export_dir)
    rows = read_table(world.data["eval"], "ParquetDataset")
    with torch.no_grad():
        expected = loaded.model(generate_tensors(loaded.generator, rows))[
            "probs"
        ].numpy()
    np.testing.assert_allclose(table.column("probs").to_numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(table.column("user_id"), rows.column("user_id"))
