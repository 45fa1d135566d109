"""The documented chain on the 100 real Taobao rows, through the CLI.

convert-taobao -> train -> export -> predict -> serve, then rank requests over
HTTP (our JSON API and the public eas-prediction SDK on the Processor
protocol) whose scores must equal offline predict's for the same rows.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from recship.data.reader import read_table
from recship.data.taobao import CONTEXT_COLUMNS, USER_COLUMNS
from recship.testing.eas import run_eas_client

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RECSHIP_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_CSV = SHARED / "taobao_fuxictr_tiny" / "valid_sample.csv"
CONFIG = REPO / "examples" / "multi_tower_din_taobao.config"


def recship(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "recship.cli.main", "--log_level", "WARNING", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"recship {args[0]} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    assert REAL_CSV.is_file(), f"real sample data missing at {REAL_CSV}"
    recship(
        "convert-taobao", "--input_path", str(REAL_CSV), "--output_dir", f"{root}/data"
    )
    rows = f"{root}/data/rows.parquet"
    trained = recship(
        "train", "--pipeline_config_path", str(CONFIG), "--model_dir", f"{root}/model",
        "--train_input_path", rows, "--eval_input_path", rows, "--no_progress",
    )  # fmt: skip
    assert '"auc"' in trained
    recship(
        "export", "--pipeline_config_path", f"{root}/model/pipeline.config",
        "--export_dir", f"{root}/export",
    )  # fmt: skip
    recship(
        "predict", "--scripted_model_path", f"{root}/export",
        "--predict_input_path", rows,
        "--predict_output_path", f"{root}/predict", "--no_progress",
        "--reserved_columns", "user_id,adgroup_id,pid,clk",
    )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def server(chain):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = chain / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "recship.cli.main", "serve",
            "--scripted_model_path", f"{chain}/export",
            "--item_table", f"{chain}/data/items.parquet",
            "--item_id_column", "adgroup_id", "--item_empty_score", "-1",
            "--port", str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _requests(chain):
    """One rank request per (user, history): the rows of a user that share
    their click history, with their own items and placements."""
    rows = read_table(f"{chain}/data/rows.parquet", "ParquetDataset").to_pylist()
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = tuple(row[c] for c in USER_COLUMNS)
        groups.setdefault(key, []).append(row)
    for members in groups.values():
        first = members[0]
        yield {
            "user_features": {
                c: first[c] for c in USER_COLUMNS if first[c] is not None
            },
            "item_ids": [str(m["adgroup_id"]) for m in members],
            "context_features": {c: [m[c] for m in members] for c in CONTEXT_COLUMNS},
        }


def _offline(chain) -> dict[tuple[str, str, str], float]:
    table = read_table(f"{chain}/predict", "ParquetDataset").to_pylist()
    return {
        (str(r["user_id"]), str(r["adgroup_id"]), r["pid"]): r["probs"] for r in table
    }


def test_offline_predict_scored_every_real_row(chain):
    table = read_table(f"{chain}/predict", "ParquetDataset")
    assert table.num_rows == 100
    probs = table.column("probs").to_numpy()
    assert np.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all()


def test_json_rank_scores_equal_offline_predict_for_every_real_row(chain, server):
    offline, compared = _offline(chain), 0
    for request in _requests(chain):
        answer = httpx.post(f"{server}/v1/rank", json=request, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["item_ids"] == request["item_ids"]
        user = str(request["user_features"]["user_id"])
        pids = request["context_features"]["pid"]
        for item, pid, score in zip(
            body["item_ids"], pids, body["outputs"]["probs"], strict=True
        ):
            assert score == pytest.approx(offline[(user, item, pid)], abs=1e-6)
            compared += 1
    assert compared == 100


def test_unknown_item_gets_the_empty_score_and_bad_input_a_400(chain, server):
    request = next(_requests(chain))
    request["item_ids"] = request["item_ids"][:1] + ["no-such-ad"]
    request["context_features"] = {"pid": ["430548_1007"]}
    body = httpx.post(f"{server}/v1/rank", json=request, timeout=30).json()
    assert body["outputs"]["probs"][1] == -1.0 and body["outputs"]["probs"][0] > 0

    request["user_features"]["age_level"] = "not-a-number"
    answer = httpx.post(f"{server}/v1/rank", json=request, timeout=30)
    assert answer.status_code == 400 and "age_level" in answer.text
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200


def test_eas_prediction_sdk_gets_the_offline_scores(chain, server):
    offline = _offline(chain)
    request = max(_requests(chain), key=lambda r: len(r["item_ids"]))
    reply = run_eas_client(server, "recship", request)
    user = str(request["user_features"]["user_id"])
    pids = request["context_features"]["pid"]
    assert reply["item_ids"] == request["item_ids"]
    for item, pid, score in zip(
        reply["item_ids"], pids, reply["outputs"]["probs"], strict=True
    ):
        assert score == pytest.approx(offline[(user, item, pid)], abs=1e-6)
