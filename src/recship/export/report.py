"""`recship export --report`: size, AUC and speed of every quantization mode.

For each mode the checkpoint is exported for real (verification included)
into a work directory, and the artifact is scored on the eval data. FG runs
once; every mode and the checkpoint itself score the same model inputs, so
AUC differences come from quantization alone.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recship.config.loader import PipelineConfig
from recship.config.settings import QUANT_MODES
from recship.data.reader import iter_batches
from recship.export.artifact import MODEL_FILE, load_artifact
from recship.export.best import select_checkpoint
from recship.export.exporter import ExportOptions, export_model
from recship.features.fg import FeatureGenerator, generate_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.training.checkpoint import load_checkpoint
from recship.training.metrics import compute_auc
from recship.training.trainer import dataset_type_name, label_name

logger = logging.getLogger(__name__)

Batch = tuple[dict[str, torch.Tensor], np.ndarray]


@dataclass
class ModeReport:
    """One quantization mode's artifact, scored on the eval data.

    Attributes:
        quant_emb: pooled tables' mode.
        quant_ec_emb: sequence tables' mode.
        artifact_bytes: the whole export directory.
        embedding_bytes: the model's tensors minus its dense parameters.
        auc: the artifact's AUC on the eval data.
        checkpoint_auc: the checkpoint's AUC on the same inputs.
        rows_per_sec: model forward throughput (FG excluded).
    """

    quant_emb: str
    quant_ec_emb: str
    artifact_bytes: int
    embedding_bytes: int
    auc: float
    checkpoint_auc: float
    rows_per_sec: float


def _eval_batches(config: PipelineConfig, rows: int) -> list[Batch]:
    generator = FeatureGenerator(model_feature_specs(config))
    label = label_name(config)
    batches = iter_batches(
        config.eval_input_path,
        dataset_type=dataset_type_name(config),
        batch_size=config.data_config.eval_batch_size or 1024,
        columns=generator.input_columns + [label],
    )
    out, seen = [], 0
    for batch in batches:
        labels = batch.column(label).to_numpy(zero_copy_only=False)
        out.append((generate_tensors(generator, batch), labels.astype(np.float32)))
        seen += batch.num_rows
        if rows and seen >= rows:
            break
    return out


def _score(model, batches: list[Batch]) -> tuple[float, float]:
    probs, labels, elapsed = [], [], 0.0
    with torch.no_grad():
        for inputs, label in batches:
            started = time.perf_counter()
            probs.append(model(inputs)["probs"].numpy())
            elapsed += time.perf_counter() - started
            labels.append(label)
    rows = sum(len(p) for p in probs)
    auc = compute_auc(np.concatenate(probs), np.concatenate(labels))
    return auc, rows / elapsed if elapsed > 0 else 0.0


def _embedding_bytes(export_dir: Path, dense_bytes: int) -> int:
    scripted = torch.jit.load(str(export_dir / MODEL_FILE), map_location="cpu")
    total = sum(t.numel() * t.element_size() for t in scripted.state_dict().values())
    return total - dense_bytes


def build_quant_report(
    config: PipelineConfig,
    work_dir: str | Path,
    checkpoint: str | Path | None = None,
    *,
    modes: list[tuple[str, str]] | None = None,
    eval_rows: int = 0,
) -> list[ModeReport]:
    """Export the checkpoint in each mode under `work_dir` and score each.

    Args:
        config: the pipeline config (its eval_input_path is scored).
        work_dir: a new directory; each mode's export goes to a subdirectory.
        checkpoint: default as `recship export` (export_config decides).
        modes: (pooled, sequence) pairs; default each mode for both.
        eval_rows: score at most this many eval rows; 0 means all.
    """
    work_dir = Path(work_dir)
    modes = modes or [(mode, mode) for mode in QUANT_MODES]
    checkpoint_path = select_checkpoint(config, checkpoint)
    batches = _eval_batches(config, eval_rows)

    # The checkpoint's own AUC on the very same inputs.
    model = build_model(config)
    load_checkpoint(checkpoint_path, model)
    model.eval()
    dense_bytes = sum(
        p.numel() * p.element_size()
        for name, p in model.named_parameters()
        if not name.startswith("embedding.")
    )
    checkpoint_auc, _ = _score(model, batches)

    reports = []
    for pooled, sequence in modes:
        export_dir = work_dir / f"{pooled}-{sequence}"
        result = export_model(
            config,
            export_dir,
            checkpoint_path,
            ExportOptions(quant_emb=pooled, quant_ec_emb=sequence),
        )
        auc, rate = _score(load_artifact(export_dir).model, batches)
        reports.append(
            ModeReport(
                pooled,
                sequence,
                result.bytes,
                _embedding_bytes(export_dir, dense_bytes),
                auc,
                checkpoint_auc,
                rate,
            )
        )
        logger.info("%s/%s: AUC %.5f, %d bytes", pooled, sequence, auc, result.bytes)
    return reports


def format_report(reports: list[ModeReport]) -> str:
    """A Markdown table of the reports, sizes relative to the FP32 row."""
    base = next(
        (r for r in reports if (r.quant_emb, r.quant_ec_emb) == ("FP32", "FP32")),
        reports[0],
    )
    lines = [
        "| QUANT_EMB | QUANT_EC_EMB | artifact MB | embeddings MB | vs FP32 "
        "| AUC | checkpoint AUC | AUC diff | rows/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        lines.append(
            f"| {r.quant_emb} | {r.quant_ec_emb} | {r.artifact_bytes / 1e6:.2f} "
            f"| {r.embedding_bytes / 1e6:.2f} "
            f"| {r.embedding_bytes / base.embedding_bytes:.3f} "
            f"| {r.auc:.5f} | {r.checkpoint_auc:.5f} "
            f"| {r.auc - r.checkpoint_auc:+.5f} | {r.rows_per_sec:,.0f} |"
        )
    return "\n".join(lines) + "\n"
