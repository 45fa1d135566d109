"""The main job: the whole chain on Taobao-schema data, end to end.

generate (or convert real) data -> train + eval -> export -> offline predict
-> `recship serve` in a subprocess -> one rank request over HTTP -> compare
online scores with offline predict's for the same rows -> stop the server.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from recship.config.loader import load_pipeline_config, save_pipeline_config
from recship.data.reader import read_table, write_table
from recship.data.taobao import (
    CONTEXT_COLUMNS,
    ITEM_ID,
    USER_COLUMNS,
    generate_taobao_dataset,
)
from recship.errors import RecshipError
from recship.export.exporter import ExportOptions, export_model
from recship.features.fg import FeatureGenerator
from recship.features.spec import specs_from_fg_json
from recship.predict.predictor import PredictOptions, predict
from recship.serving.request import RankRequest
from recship.serving.server import free_loopback_port
from recship.tools.consistency import compare_scores, request_rows
from recship.tools.taobao_real import convert_fuxictr_sample
from recship.training.trainer import train_and_evaluate

logger = logging.getLogger(__name__)

EXAMPLE_CONFIG = (
    Path(__file__).resolve().parents[3] / "examples" / "multi_tower_din_taobao.config"
)
_MARKER = ".recship-demo"


@dataclass
class DemoOptions:
    """Where and on what the demo runs."""

    workdir: str = "runs/demo"
    num_rows: int = 200_000
    num_items: int = 200
    seed: int = 0
    real_data: str | None = None
    config_path: str = str(EXAMPLE_CONFIG)
    say: Callable[[str], None] = field(default=print, repr=False)


@dataclass
class DemoReport:
    """What the demo measured and where it wrote things."""

    auc: float = float("nan")
    train_examples_per_sec: float = 0.0
    export_bytes: int = 0
    rank_latency_ms: list[float] = field(default_factory=list)
    max_abs_diff: float = float("nan")
    compared: int = 0
    top_items: list[tuple[str, float]] = field(default_factory=list)
    paths: dict[str, str] = field(default_factory=dict)


def _fresh_workdir(path: Path) -> None:
    if path.exists():
        if not (path / _MARKER).exists():
            raise RecshipError(
                f"{path} exists and was not made by the demo; pass another --workdir"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / _MARKER).write_text("made by recship demo; removed by the next run\n")


def _prepare_data(options: DemoOptions, workdir: Path) -> dict[str, str]:
    if options.real_data:
        paths = convert_fuxictr_sample(options.real_data, str(workdir / "data"))
        return {"train": paths["rows"], "eval": paths["rows"], "items": paths["items"]}
    return generate_taobao_dataset(
        str(workdir / "data"), num_rows=options.num_rows, seed=options.seed
    )


def _build_request(
    eval_path: str, items_path: str, options: DemoOptions
) -> RankRequest:
    rows = read_table(eval_path, "ParquetDataset")
    sequences = rows.column(USER_COLUMNS[-3]).to_pylist()
    # A user with a click history shows the DIN side at work.
    pick = next((i for i, s in enumerate(sequences) if s), 0)
    row = rows.slice(pick, 1).to_pylist()[0]
    item_ids = (
        read_table(items_path, "ParquetDataset").column(ITEM_ID).cast(pa.string())
    )
    rng = np.random.default_rng(options.seed)
    count = min(options.num_items - 1, len(item_ids))
    chosen = rng.choice(len(item_ids), size=count, replace=False)
    candidates = [item_ids[int(i)].as_py() for i in chosen]
    candidates.append("unknown-item-0")  # not in the store: gets item_empty_score
    return RankRequest(
        user_features={c: row[c] for c in USER_COLUMNS if row.get(c) is not None},
        item_ids=candidates,
        context_features={c: [row[c]] for c in CONTEXT_COLUMNS},
        request_id="demo-1",
    )


def _start_server(
    export_dir: str, items_path: str, log_path: Path
) -> tuple[subprocess.Popen, str]:
    port = free_loopback_port()
    command = [
        sys.executable, "-m", "recship.cli.main", "serve",
        "--scripted_model_path", export_dir,
        "--item_table", items_path,
        "--item_id_column", ITEM_ID,
        "--item_empty_score", "-1",
        "--port", str(port),
    ]  # fmt: skip
    # The child writes its own copy of the descriptor; ours closes at once.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RecshipError(f"recship serve exited early; see {log_path}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RecshipError(f"recship serve was not ready within 120 s; see {log_path}")


def _rank_json(
    client: httpx.Client, url: str, request: RankRequest
) -> tuple[dict, float]:
    body = {
        "user_features": request.user_features,
        "item_ids": request.item_ids,
        "context_features": request.context_features,
        "request_id": request.request_id,
    }
    started = time.perf_counter()
    response = client.post(f"{url}/v1/rank", json=body, timeout=30)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RecshipError(
            f"rank request failed: {response.status_code} {response.text}"
        )
    return response.json(), elapsed_ms


def run_demo(options: DemoOptions) -> DemoReport:
    """Run the chain; return the figures and paths (also reported via `say`)."""
    say, report = options.say, DemoReport()
    workdir = Path(options.workdir)
    _fresh_workdir(workdir)

    say("1/6 data")
    data = _prepare_data(options, workdir)
    config = load_pipeline_config(options.config_path)
    config.train_input_path, config.eval_input_path = data["train"], data["eval"]
    config.model_dir = str(workdir / "model")
    if options.real_data:
        config.data_config.batch_size = 32
        config.train_config.num_epochs = 5
    save_pipeline_config(config, workdir / "pipeline.config")

    say("2/6 train and evaluate")
    trained = train_and_evaluate(config, progress=sys.stderr.isatty())
    report.auc = trained.metrics.get("auc", float("nan"))
    report.train_examples_per_sec = trained.examples_per_sec
    say(f"    AUC {report.auc:.4f}, {trained.examples_per_sec:.0f} train examples/s")

    say("3/6 export (INT8 embeddings, user side computed once per request)")
    exported = export_model(
        config, workdir / "export", options=ExportOptions(input_tile=3)
    )
    report.export_bytes = exported.bytes
    say(
        f"    {exported.bytes / 1e6:.1f} MB, max prob diff vs checkpoint "
        f"{exported.max_prob_diff:.2e}"
    )

    say("4/6 offline predict of the request's rows")
    request = _build_request(data["eval"], data["items"], options)
    fg_columns = FeatureGenerator(
        specs_from_fg_json(json.loads((workdir / "export" / "fg.json").read_text()))
    ).input_columns
    items = read_table(data["items"], "ParquetDataset")
    rows = request_rows(request, items, ITEM_ID, fg_columns)
    write_table(rows, str(workdir / "request_rows.parquet"))
    predict(
        exported.export_dir,
        str(workdir / "request_rows.parquet"),
        workdir / "predict",
        PredictOptions(reserved_columns=[ITEM_ID], progress=False),
    )
    offline = read_table(str(workdir / "predict"), "ParquetDataset")

    say("5/6 serve and rank over HTTP")
    server, url = _start_server(
        exported.export_dir, data["items"], workdir / "server.log"
    )
    try:
        # One keep-alive connection, as a recommendation backend would hold.
        with httpx.Client() as client:
            for _ in range(5):
                answer, elapsed_ms = _rank_json(client, url, request)
                report.rank_latency_ms.append(elapsed_ms)
    finally:
        server.terminate()
        server.wait(timeout=30)
    online = dict(zip(answer["item_ids"], answer["outputs"]["probs"], strict=True))
    report.top_items = sorted(online.items(), key=lambda kv: -kv[1])[:10]

    say("6/6 online vs offline")
    offline_ids = [str(v) for v in offline.column(ITEM_ID).to_pylist()]
    comparison = compare_scores(online, offline_ids, offline.column("probs").to_numpy())
    report.max_abs_diff, report.compared = comparison.max_abs_diff, comparison.compared

    report.paths = {
        "workdir": str(workdir),
        "data": str(workdir / "data"),
        "config": str(workdir / "pipeline.config"),
        "model_dir": config.model_dir,
        "export": exported.export_dir,
        "offline predictions": str(workdir / "predict"),
        "server log": str(workdir / "server.log"),
    }
    (workdir / "report.json").write_text(
        json.dumps(report.__dict__, indent=2, default=str)
    )
    _say_summary(say, report, len(request.item_ids))
    return report


def _say_summary(say: Callable[[str], None], report: DemoReport, items: int) -> None:
    say("")
    say(f"top items for the user ({items} candidates, one not in the store):")
    for item_id, score in report.top_items:
        say(f"    {item_id:>12}  {score:.6f}")
    latencies = sorted(report.rank_latency_ms)
    say(
        f"rank request latency: first {report.rank_latency_ms[0]:.1f} ms, "
        f"median {latencies[len(latencies) // 2]:.1f} ms"
    )
    say(f"test AUC: {report.auc:.4f}")
    say(
        f"online vs offline: {report.compared} items compared, max |diff| "
        f"{report.max_abs_diff:.3e}"
    )
    say("written:")
    for name, path in report.paths.items():
        say(f"    {name}: {path}")
