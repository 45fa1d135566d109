"""`recship export`: a checkpoint to a self-contained serving artifact.

Steps: load the checkpoint, quantize its embeddings, trace with TorchRec's FX
tracer and script with TorchScript, write the artifact beside its final path,
verify it in a fresh process that imports only torch, then rename it into
place. A server watching the parent directory never sees half an export.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchrec
from torchrec.fx import symbolic_trace

import recship
from recship.config.loader import PipelineConfig, save_pipeline_config
from recship.data.reader import iter_batches
from recship.errors import ExportError
from recship.export import aot, artifact, storage
from recship.export.best import select_checkpoint
from recship.export.quantization import quantize_model, tolerance
from recship.export.tiling import check_tiled_scores, request_inputs, tile_model
from recship.features.fg import FeatureGenerator, generate_tensors
from recship.features.spec import specs_to_fg_json
from recship.models.builder import build_model, model_feature_specs
from recship.training.checkpoint import load_checkpoint
from recship.training.trainer import dataset_type_name

logger = logging.getLogger(__name__)

VERIFY_SCRIPT = Path(__file__).with_name("verify_artifact.py")


@dataclass
class ExportOptions:
    """How to export.

    Attributes:
        quant_emb: mode of pooled embedding tables (TorchEasyRec QUANT_EMB).
        quant_ec_emb: mode of sequence tables (QUANT_EC_EMB).
        sample_input_path: rows to verify the artifact on; default eval data.
        sample_rows: how many of them.
        enable_aot: also compile the dense part with AOTInductor
            (TorchEasyRec ENABLE_AOT); kept only where faster.
        aot_keep_slower: keep the AOT files even when they are not faster.
        aot_bench_rows: rows per call of the AOT benchmark (one request).
        input_tile: user-feature tiling (TorchEasyRec INPUT_TILE): 0 none,
            2 user-side FG once, 3 user-side embeddings once too.
    """

    quant_emb: str = "INT8"
    quant_ec_emb: str = "INT8"
    sample_input_path: str | None = None
    sample_rows: int = 64
    enable_aot: bool = False
    aot_keep_slower: bool = False
    aot_bench_rows: int = 200
    input_tile: int = 0


@dataclass
class ExportResult:
    export_dir: str
    checkpoint: str
    max_prob_diff: float
    tolerance: float
    bytes: int
    aot: dict | None = None


def _sample_batch(
    config: PipelineConfig,
    generator: FeatureGenerator,
    options: ExportOptions,
    rows: int | None = None,
):
    path = (
        options.sample_input_path or config.eval_input_path or config.train_input_path
    )
    batches = iter_batches(
        path,
        dataset_type=dataset_type_name(config),
        batch_size=rows or options.sample_rows,
        columns=generator.input_columns,
    )
    batch = next(iter(batches), None)
    if batch is None:
        raise ExportError(f"no rows in {path} to verify the export with")
    return batch


def _script(model: torch.nn.Module) -> torch.jit.ScriptModule:
    traced = symbolic_trace(model)
    return torch.jit.script(traced)


def _verify_in_fresh_process(
    model_path: Path, inputs: dict[str, torch.Tensor], rows: int, workdir: Path
) -> dict[str, torch.Tensor]:
    inputs_path, outputs_path = workdir / "inputs.pt", workdir / "outputs.pt"
    torch.save(dict(inputs, __rows__=torch.tensor(rows)), inputs_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -I: isolated mode, so neither the cwd nor PYTHONPATH can lend recship.
    command = [
        sys.executable,
        "-I",
        str(VERIFY_SCRIPT),
        str(model_path),
        str(inputs_path),
    ]
    done = subprocess.run(
        command + [str(outputs_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise ExportError(
            f"the exported model failed to load or run:\n{done.stderr[-3000:]}"
        )
    result = torch.load(outputs_path)
    if result["foreign_modules"]:
        raise ExportError(
            f"loading the artifact imported {result['foreign_modules'][:5]}; it must "
            "need only torch and fbgemm_gpu"
        )
    return result["outputs"]


def export_model(
    config: PipelineConfig,
    export_dir: str | Path,
    checkpoint: str | Path | None = None,
    options: ExportOptions | None = None,
) -> ExportResult:
    """Export `checkpoint` (default: model_dir's latest) to `export_dir`.

    Raises:
        ExportError: export_dir exists, several ranks were launched, or the
            artifact's scores differ from the checkpoint's beyond tolerance.
    """
    options = options or ExportOptions()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ExportError(
            f"export runs in one process, but WORLD_SIZE is "
            f"{os.environ['WORLD_SIZE']}; launch `recship export` without torchrun"
        )
    if storage.is_remote(export_dir):
        return _export_remote(config, str(export_dir), checkpoint, options)
    export_dir = Path(export_dir)
    if export_dir.exists():
        raise ExportError(
            f"{export_dir} exists; export to a new directory (or remove it)"
        )

    # Load the checkpoint and score the sample rows with it.
    checkpoint_path = select_checkpoint(config, checkpoint)
    model = build_model(config)
    meta = load_checkpoint(checkpoint_path, model)
    model.eval()
    specs = model_feature_specs(config)
    generator = FeatureGenerator(specs)
    batch = _sample_batch(config, generator, options)
    inputs = generate_tensors(generator, batch)
    with torch.no_grad():
        expected = model(inputs)

    # Quantize, script and write everything beside the final directory.
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{export_dir.name}.tmp-", dir=export_dir.parent)
    )
    staging.chmod(0o755)
    try:
        with torch.no_grad():
            quantized = quantize_model(model, options.quant_emb, options.quant_ec_emb)
            tiled = tile_model(quantized, specs, options.input_tile)
            scripted = _script(tiled)
        if options.input_tile:
            check_tiled_scores(quantized, scripted, generator, batch)
        scripted.save(str(staging / artifact.MODEL_FILE))
        aot_record = None
        if options.enable_aot:
            bench = _sample_batch(config, generator, options, options.aot_bench_rows)
            aot_record = aot.build_aot(
                staging,
                tiled,
                scripted,
                generate_tensors(generator, bench),
                request_inputs=(
                    request_inputs(generator, bench) if options.input_tile else None
                ),
                keep_slower=options.aot_keep_slower,
            )
        save_pipeline_config(config, staging / artifact.CONFIG_FILE)
        (staging / artifact.FG_FILE).write_text(
            json.dumps(specs_to_fg_json(specs), indent=2)
        )
        (staging / artifact.ASSETS_DIR).mkdir()
        model_acc = {
            "quant_emb": options.quant_emb,
            "quant_ec_emb": options.quant_ec_emb,
            "input_tile": options.input_tile,
            "aot": aot_record or {"enabled": False},
            "outputs": sorted(expected),
            "input_signature": {
                name: {"dtype": str(t.dtype).removeprefix("torch."), "ndim": t.dim()}
                for name, t in inputs.items()
            },
            "versions": {
                "recship": recship.__version__,
                "torch": torch.__version__,
                "torchrec": getattr(torchrec, "__version__", "unknown"),
            },
        }
        (staging / artifact.ACC_FILE).write_text(json.dumps(model_acc, indent=2))

        # Verify in a fresh process that imports only torch (and fbgemm_gpu).
        with tempfile.TemporaryDirectory() as workdir:
            got = _verify_in_fresh_process(
                staging / artifact.MODEL_FILE, inputs, batch.num_rows, Path(workdir)
            )
        diff = float((got["probs"] - expected["probs"]).abs().max())
        limit = tolerance(options.quant_emb, options.quant_ec_emb)
        if not np.isfinite(diff) or diff > limit:
            raise ExportError(
                f"artifact scores differ from the checkpoint's by {diff:.6f} (limit "
                f"{limit} for {options.quant_emb}/{options.quant_ec_emb}); not exported"
            )

        manifest = artifact.build_manifest(
            staging,
            {
                "source_checkpoint": str(checkpoint_path.resolve()),
                "source_step": meta.get("step"),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "verification": {"rows": batch.num_rows, "max_prob_diff": diff},
            },
        )
        (staging / artifact.MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        os.replace(staging, export_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    size = sum(p.stat().st_size for p in export_dir.rglob("*") if p.is_file())
    logger.info("exported %s (%d bytes, max prob diff %.2e)", export_dir, size, diff)
    return ExportResult(
        str(export_dir), str(checkpoint_path), diff, limit, size, aot_record
    )


def _export_remote(
    config: PipelineConfig,
    url: str,
    checkpoint: str | Path | None,
    options: ExportOptions,
) -> ExportResult:
    # Build the export in a local scratch directory, then upload it with its
    # manifest last (see export.storage).
    if storage.remote_exists(url):
        raise ExportError(f"{url} already holds an export; export to a new path")
    with tempfile.TemporaryDirectory(prefix="recship-export-") as scratch:
        local = Path(scratch) / "export"
        result = export_model(config, local, checkpoint, options)
        storage.upload_export(local, url)
    result.export_dir = url
    return result
