"""Smoke test of `recship bench serve` on the tiny model, recship only.

The TorchServe baseline needs Java and .venv-torchserve; set
RECSHIP_BENCH_TORCHSERVE=1 (after scripts/setup_torchserve.sh) to include it.
"""

import json
import os

import pytest

from recship.tools.bench.harness import BenchOptions, run_bench
from recship.tools.bench.servers import torchserve_available

WITH_TORCHSERVE = os.environ.get("RECSHIP_BENCH_TORCHSERVE") == "1"


def _options(tiny_export, workdir, torchserve: bool) -> BenchOptions:
    world, _ = tiny_export
    return BenchOptions(
        workdir=str(workdir),
        config_path=str(world.config_path),
        checkpoint=world.config.model_dir,
        item_counts=(20, 50),
        concurrency=(1, 2),
        max_requests=6,
        max_seconds=10,
        workers=1,
        worker_threads=1,
        torchserve=torchserve,
        say=lambda line: None,
    )


def test_bench_serve_measures_recship_and_writes_outputs(tiny_export, tmp_path):
    bench = run_bench(_options(tiny_export, tmp_path, torchserve=False))

    results = bench.results["recship"]
    assert sorted(results) == [(20, 1), (20, 2), (50, 1), (50, 2)]
    assert all(len(r.latencies_ms) == 6 and r.errors == 0 for r in results.values())
    assert bench.forward_ms["recship"][50] > 0
    assert bench.cold_start_s["recship"] > 0 and bench.rss_mb["recship"] > 50
    markdown = (tmp_path / "bench.md").read_text()
    assert "| recship | 50 | 2 | 6 |" in markdown
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    raw = json.loads((tmp_path / "bench.json").read_text())
    assert raw["exports"]["recship"].endswith("export-int8-tile3")


@pytest.mark.skipif(
    not (WITH_TORCHSERVE and torchserve_available()),
    reason="opt-in: RECSHIP_BENCH_TORCHSERVE=1 with scripts/setup_torchserve.sh",
)
def test_bench_serve_measures_torchserve_baseline(tiny_export, tmp_path):
    bench = run_bench(_options(tiny_export, tmp_path, torchserve=True))
    baseline = bench.results["torchserve"]
    assert all(r.errors == 0 and r.latencies_ms for r in baseline.values())
    assert (
        "throughput_vs_torchserve_c2_50"
        in json.loads((tmp_path / "bench.json").read_text())["ratios"]
    )
