"""Every quantization mode, pooled and sequence tables apart: size and AUC."""

import pytest

from recship.export.report import build_quant_report, format_report
from recship.testing.tiny import build_tiny_world
from recship.training.trainer import train_and_evaluate

# 20k rows give 4k eval rows: enough for an AUC stable to a few 1e-4.
NUM_ROWS = 20_000

MODES = [
    ("FP32", "FP32"),
    ("FP16", "FP16"),
    ("INT8", "INT8"),
    ("INT4", "INT4"),
    ("INT2", "INT2"),
    ("INT8", "FP32"),
    ("FP32", "INT8"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant")
    world = build_tiny_world(root, num_rows=NUM_ROWS)
    train_and_evaluate(world.config, progress=False)
    reports = build_quant_report(world.config, root / "report", modes=MODES)
    return {(r.quant_emb, r.quant_ec_emb): r for r in reports}


def test_int8_auc_within_0_002_of_fp32(report):
    fp32, int8 = report["FP32", "FP32"], report["INT8", "INT8"]
    assert abs(fp32.auc - fp32.checkpoint_auc) < 1e-5
    assert abs(int8.auc - fp32.auc) < 0.002
    assert abs(report["INT4", "INT4"].auc - fp32.auc) < 0.005
    assert fp32.auc > 0.55  # the model learned something: the check means it


def test_sizes_shrink_mode_by_mode(report):
    size = {mode: r.embedding_bytes for mode, r in report.items()}
    fp32 = size["FP32", "FP32"]
    assert size["INT8", "INT8"] < 0.5 * fp32
    assert size["INT4", "INT4"] < size["INT8", "INT8"] < size["FP16", "FP16"] < fp32
    assert size["INT2", "INT2"] <= size["INT4", "INT4"]
    assert (
        report["INT8", "INT8"].artifact_bytes
        < 0.5 * report["FP32", "FP32"].artifact_bytes
    )


def test_pooled_and_sequence_tables_quantize_separately(report):
    # Each side alone shrinks less than both together, more than neither.
    both = report["INT8", "INT8"].embedding_bytes
    fp32 = report["FP32", "FP32"].embedding_bytes
    pooled_only = report["INT8", "FP32"].embedding_bytes
    sequence_only = report["FP32", "INT8"].embedding_bytes
    assert both < pooled_only < fp32
    assert both < sequence_only < fp32
    assert pooled_only - both + sequence_only - both == pytest.approx(fp32 - both)


def test_markdown_table_has_a_row_per_mode(report):
    table = format_report(list(report.values()))
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(MODES)
    assert lines[0].startswith("| QUANT_EMB | QUANT_EC_EMB |")
    assert "| INT8 | FP32 |" in table
