"""The train and eval loops.

`train_and_evaluate` runs one process of a (possibly `torchrun`-launched)
training job: it reads its shard of the input, runs FG, trains with the
sparse and dense optimizers, writes checkpoints, resumes from the latest one,
and evaluates the final model.
"""

import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from recship.config.loader import PipelineConfig, save_pipeline_config
from recship.config.protos import data_pb2
from recship.data.reader import iter_batches
from recship.errors import DataError
from recship.features.fg import FeatureGenerator, generate_tensors
from recship.models.builder import build_model, model_feature_specs
from recship.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from recship.training.metrics import compute_metrics
from recship.training.optimizers import build_optimizers

logger = logging.getLogger(__name__)

SEED = 2024


@dataclass
class TrainResult:
    """What a training run did."""

    model_dir: str
    step: int
    checkpoint: str
    examples: int = 0
    examples_per_sec: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


def dataset_type_name(config: PipelineConfig) -> str:
    return data_pb2.DatasetType.Name(config.data_config.dataset_type)


def label_name(config: PipelineConfig) -> str:
    return config.data_config.label_fields[0]


def _distributed() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return rank, world_size


def _labels(batch: pa.RecordBatch, name: str) -> torch.Tensor:
    column = batch.column(name)
    if column.null_count:
        raise DataError(f"label column {name!r} has {column.null_count} empty values")
    return torch.from_numpy(column.to_numpy(zero_copy_only=False).astype(np.float32))


@dataclass
class _Loop:
    """What every training step needs."""

    trained: nn.Module  # the model, or its DDP wrapper
    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]
    generator: FeatureGenerator
    label: str
    config: PipelineConfig
    rank: int


def _train_steps(
    loop: _Loop, batches: Iterator[pa.RecordBatch], step: int, progress: bool
) -> tuple[int, int]:
    """Run the steps; returns the final step and the examples seen."""
    train_config = loop.config.train_config
    loss_fn = nn.BCEWithLogitsLoss()
    examples, window_examples, window_start = 0, 0, time.perf_counter()
    bar = tqdm(
        desc="train", unit="step", disable=not progress or loop.rank != 0, initial=step
    )
    for batch in batches:
        inputs = generate_tensors(loop.generator, batch)
        loss = loss_fn(loop.trained(inputs)["logits"], _labels(batch, loop.label))
        for optimizer in loop.optimizers.values():
            optimizer.zero_grad()
        loss.backward()
        for optimizer in loop.optimizers.values():
            optimizer.step()

        step += 1
        examples += batch.num_rows
        window_examples += batch.num_rows
        bar.update(1)
        if step % max(1, train_config.log_step_count_steps) == 0:
            now = time.perf_counter()
            rate = window_examples / max(now - window_start, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.4f}", ex_s=f"{rate:.0f}")
            logger.info("step %d loss %.5f examples/s %.0f", step, loss.item(), rate)
            window_examples, window_start = 0, now
        if loop.rank == 0 and step % max(1, train_config.save_checkpoints_steps) == 0:
            save_checkpoint(
                loop.config.model_dir,
                step,
                loop.model,
                loop.optimizers,
                {},
                train_config.keep_checkpoint_max,
            )
    bar.close()
    return step, examples


def train_and_evaluate(config: PipelineConfig, *, progress: bool = True) -> TrainResult:
    """Train the config's model on train_input_path, then evaluate it.

    Resumes from the newest `model.ckpt-*` of model_dir when there is one.
    """
    rank, world_size = _distributed()
    # Sparse Adagrad builds sparse tensors from torch's own, valid indices;
    # opting out explicitly skips the checks and torch's warning about them.
    torch.sparse.check_sparse_tensor_invariants.disable()
    model_dir = Path(config.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        save_pipeline_config(config, model_dir / "pipeline.config")

    # Build the model, its optimizers and FG; resume if a checkpoint exists.
    torch.manual_seed(SEED)
    model = build_model(config)
    optimizers = build_optimizers(model, config.train_config)
    step = 0
    resume = latest_checkpoint(model_dir)
    if resume is not None:
        step = int(load_checkpoint(resume, model, optimizers)["step"])
        logger.info("resuming from %s at step %d", resume, step)
    trained: nn.Module = model
    if world_size > 1:
        trained = nn.parallel.DistributedDataParallel(model)
    generator = FeatureGenerator(model_feature_specs(config))
    label = label_name(config)

    train_config = config.train_config
    batches = iter_batches(
        config.train_input_path,
        dataset_type=dataset_type_name(config),
        batch_size=config.data_config.batch_size,
        columns=generator.input_columns + [label],
        num_workers=config.data_config.num_workers,
        rank=rank,
        world_size=world_size,
        num_epochs=train_config.num_epochs,
        shuffle=config.data_config.shuffle,
        seed=SEED,
        drop_remainder=config.data_config.drop_remainder,
    )
    batches = itertools.islice(batches, step, None)
    if train_config.num_steps:
        batches = itertools.islice(batches, max(0, train_config.num_steps - step))

    # Train, logging every log_step_count_steps and saving checkpoints.
    # Ranks may get one batch more or less than each other; DDP's join lets
    # the ranks that finish early shadow the collective calls of the others.
    model.train()
    started = time.perf_counter()
    joined = trained.join() if world_size > 1 else contextlib.nullcontext()
    with joined:
        step, examples = _train_steps(
            _Loop(trained, model, optimizers, generator, label, config, rank),
            batches,
            step,
            progress,
        )
    elapsed = time.perf_counter() - started

    if rank == 0:
        save_checkpoint(
            model_dir, step, model, optimizers, {}, train_config.keep_checkpoint_max
        )
    if world_size > 1:
        dist.barrier()
    final = latest_checkpoint(model_dir)
    result = TrainResult(
        model_dir=str(model_dir),
        step=step,
        checkpoint=str(final),
        examples=examples,
        examples_per_sec=examples / elapsed if elapsed > 0 else 0.0,
    )
    logger.info(
        "trained %d examples at %.0f examples/s", examples, result.examples_per_sec
    )
    if config.eval_input_path and rank == 0:
        result.metrics = evaluate(config, str(final), model=model)
    return result


def evaluate(
    config: PipelineConfig,
    checkpoint: str | None = None,
    *,
    model: nn.Module | None = None,
    eval_input_path: str | None = None,
) -> dict[str, float]:
    """Metrics of a checkpoint (default: model_dir's latest) on the eval data.

    Writes them to `<model_dir>/eval_result.txt` as JSON and returns them.
    """
    if model is None:
        model = build_model(config)
        load_checkpoint(checkpoint or config.model_dir, model)
    generator = FeatureGenerator(model_feature_specs(config))
    label = label_name(config)
    metric_configs = list(config.model_config.metrics)
    group_keys = [
        m.grouped_auc.grouping_key
        for m in metric_configs
        if m.WhichOneof("metric") == "grouped_auc"
    ]

    probs, labels, groups = [], [], {key: [] for key in group_keys}
    batches = iter_batches(
        eval_input_path or config.eval_input_path,
        dataset_type=dataset_type_name(config),
        batch_size=config.data_config.eval_batch_size or config.data_config.batch_size,
        columns=list(dict.fromkeys(generator.input_columns + [label] + group_keys)),
        num_workers=config.data_config.num_workers,
    )
    if config.eval_config.num_steps:
        batches = itertools.islice(batches, config.eval_config.num_steps)
    model.eval()
    with torch.no_grad():
        for batch in batches:
            probs.append(model(generate_tensors(generator, batch))["probs"].numpy())
            labels.append(_labels(batch, label).numpy())
            for key in group_keys:
                groups[key].append(batch.column(key).to_numpy(zero_copy_only=False))
    model.train()

    if not probs:
        raise DataError(f"no eval rows in {eval_input_path or config.eval_input_path}")
    columns = {key: np.concatenate(parts) for key, parts in groups.items()}
    metrics = compute_metrics(
        metric_configs, np.concatenate(probs), np.concatenate(labels), columns
    )
    metrics["num_examples"] = float(sum(len(p) for p in probs))
    Path(config.model_dir).mkdir(parents=True, exist_ok=True)
    (Path(config.model_dir) / "eval_result.txt").write_text(
        json.dumps(metrics, indent=2)
    )
    logger.info("eval: %s", metrics)
    return metrics
