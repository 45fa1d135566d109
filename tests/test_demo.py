"""The main job (`recship demo`) end to end, on a small generated data set."""

import json
import math
from pathlib import Path

import pytest

from recship.errors import RecshipError
from recship.tools.demo import DemoOptions, run_demo


def test_demo_runs_the_chain_and_online_equals_offline(tmp_path):
    lines: list[str] = []
    workdir = tmp_path / "demo"
    report = run_demo(
        DemoOptions(workdir=str(workdir), num_rows=4000, num_items=50, say=lines.append)
    )

    assert 0.0 <= report.auc <= 1.0 and math.isfinite(report.auc)
    assert report.compared == 49  # the 50th candidate is not in the item store
    assert report.max_abs_diff <= 1e-6
    assert len(report.top_items) == 10
    assert all(score >= 0 for _, score in report.top_items)
    assert report.export_bytes > 0 and len(report.rank_latency_ms) == 5
    for path in report.paths.values():
        assert Path(path).exists(), path
    saved = json.loads((workdir / "report.json").read_text())
    assert saved["compared"] == 49
    assert any(line.startswith("test AUC") for line in lines)
    assert any(line.startswith("online vs offline: 49 items") for line in lines)


def test_demo_refuses_a_workdir_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(RecshipError, match="not made by the demo"):
        run_demo(DemoOptions(workdir=str(tmp_path), say=lambda line: None))
    assert (tmp_path / "precious.txt").read_text() == "keep me"
