"""Export options on a real tiny model: AOT, fsspec stores, best checkpoint."""

import json
import uuid

import fsspec
import numpy as np
import pytest

from recship.config.loader import parse_pipeline_config
from recship.data.reader import read_table
from recship.export.aot import AotModel
from recship.export.artifact import load_artifact
from recship.export.best import EVAL_RESULT_FILE, select_checkpoint
from recship.export.exporter import ExportOptions, export_model
from recship.predict.predictor import PredictOptions, predict
from recship.serving.service import ServiceOptions, build_ranker
from recship.testing.s3 import S3_TEST_ENV, moto_s3_server
from recship.tools.infer_data import requests_from_table
from recship.training.checkpoint import list_checkpoints
from recship.training.trainer import train_and_evaluate


def _probs(export, world, tmp_path, name):
    result = predict(
        export,
        world.data["eval"],
        tmp_path / name,
        PredictOptions(batch_size=200, progress=False),
    )
    return read_table(result.part_file, "parquet").column("probs").to_numpy()


def test_aot_export_is_loaded_by_server_and_predict(tiny_export, tmp_path):
    world, plain_dir = tiny_export
    result = export_model(
        world.config,
        tmp_path / "aot",
        options=ExportOptions(enable_aot=True, aot_keep_slower=True),
    )
    acc = json.loads((tmp_path / "aot" / "model_acc.json").read_text())
    assert acc["aot"]["kept"] and acc["aot"]["speedup"] > 0
    assert result.aot == acc["aot"]
    assert (tmp_path / "aot" / "aot" / "dense_model.pt2").is_file()

    # Both the server and predict pick the AOT model up; scores match.
    ranker = build_ranker(ServiceOptions(export_dir=str(tmp_path / "aot")))
    assert isinstance(ranker.artifact.model, AotModel)
    plain = build_ranker(ServiceOptions(export_dir=str(plain_dir)))
    request = requests_from_table(
        plain.artifact,
        world.data["eval"],
        user_id_column="user_id",
        item_id_column="adgroup_id",
        max_requests=1,
    )[0]
    np.testing.assert_allclose(
        ranker.rank(request).outputs["probs"],
        plain.rank(request).outputs["probs"],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        _probs(tmp_path / "aot", world, tmp_path, "p-aot"),
        _probs(plain_dir, world, tmp_path, "p-plain"),
        atol=1e-5,
    )
    # Even with the AOT files present, the plain TorchScript model loads alone.
    assert not isinstance(
        load_artifact(tmp_path / "aot", use_aot=False).model, AotModel
    )


@pytest.fixture
def s3_bucket(monkeypatch):
    with moto_s3_server() as endpoint:
        for name, value in S3_TEST_ENV.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        fsspec.filesystem("s3").clear_instance_cache()
        bucket = f"models-{uuid.uuid4().hex[:8]}"
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
        yield bucket
        fsspec.filesystem("s3").clear_instance_cache()


@pytest.mark.parametrize("store", ["memory", "s3"])
def test_export_to_fsspec_path_is_served_and_predicted(
    store, tiny_export, tmp_path, monkeypatch, request
):
    world, plain_dir = tiny_export
    monkeypatch.setenv("RECSHIP_EXPORT_CACHE_DIR", str(tmp_path / "cache"))
    if store == "s3":
        url = f"s3://{request.getfixturevalue('s3_bucket')}/din/1"
    else:
        url = f"memory://recship-{uuid.uuid4().hex[:8]}/din/1"

    result = export_model(world.config, url)
    assert result.export_dir == url

    ranker = build_ranker(ServiceOptions(export_dir=url))
    assert ranker.artifact.path.parent == tmp_path / "cache"
    np.testing.assert_allclose(
        _probs(url, world, tmp_path, "remote"),
        _probs(plain_dir, world, tmp_path, "local"),
        atol=0.03,  # two INT8 exports of one checkpoint
    )


def test_best_exporter_picks_the_checkpoint_with_the_best_metric(tiny_export, tmp_path):
    world, _ = tiny_export
    text = world.config_path.read_text().replace(
        str(world.config.model_dir), str(tmp_path / "model")
    )
    text = text.replace("save_checkpoints_steps: 1000", "save_checkpoints_steps: 5")
    config = parse_pipeline_config(text, "best.config")
    train_and_evaluate(config, progress=False)
    checkpoints = list_checkpoints(config.model_dir)
    assert len(checkpoints) >= 3

    config.export_config.exporter_type = "best"
    best = select_checkpoint(config)
    aucs = {
        path: json.loads((path / EVAL_RESULT_FILE).read_text())["auc"]
        for path in checkpoints
    }
    assert aucs[best] == max(aucs.values())

    config.export_config.metric_larger_is_better = False
    worst = select_checkpoint(config)
    assert aucs[worst] == min(aucs.values())

    # latest ignores the metric; an explicit checkpoint wins over both.
    config.export_config.exporter_type = "latest"
    assert select_checkpoint(config) == checkpoints[-1]
    assert select_checkpoint(config, checkpoints[0]) == checkpoints[0]

    config.export_config.exporter_type = "best"
    result = export_model(config, tmp_path / "export-best")
    manifest = json.loads((tmp_path / "export-best" / "MANIFEST.json").read_text())
    assert manifest["source_checkpoint"] == str(worst.resolve())
    assert result.checkpoint == str(worst)
