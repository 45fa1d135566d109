"""Checkpoints: `model.ckpt-<step>` directories written atomically.

A checkpoint directory holds `model.pt` (the model's state_dict),
`optimizer.pt` (each optimizer's state) and `meta.json` (step, epoch,
created_at). It is written beside its final name and renamed into place, so a
reader never sees half a checkpoint.
"""

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recship.errors import CheckpointError

logger = logging.getLogger(__name__)

_CKPT_PATTERN = re.compile(r"^model\.ckpt-(\d+)$")


def list_checkpoints(model_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `model_dir`, oldest step first."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = []
    for child in model_dir.iterdir():
        match = _CKPT_PATTERN.match(child.name)
        if match and (child / "meta.json").is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(model_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of `model_dir`, or None."""
    checkpoints = list_checkpoints(model_dir)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(
    model_dir: str | Path,
    step: int,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
    keep_max: int = 10,
) -> Path:
    """Write `model.ckpt-<step>` atomically and prune the oldest beyond keep_max."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / f"model.ckpt-{step}"
    staging = model_dir / f".model.ckpt-{step}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()

    torch.save(model.state_dict(), staging / "model.pt")
    torch.save(
        {k: o.state_dict() for k, o in optimizers.items()}, staging / "optimizer.pt"
    )
    record = dict(meta, step=step, created_at=time.time())
    (staging / "meta.json").write_text(json.dumps(record, indent=2))

    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    logger.info("saved checkpoint %s", final)

    for old in list_checkpoints(model_dir)[:-keep_max] if keep_max > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself or from a model_dir (its latest)."""
    path = Path(path)
    if (path / "meta.json").is_file() and (path / "model.pt").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(
            f"no checkpoint at {path}: expected a model.ckpt-<step> directory or "
            "a model_dir holding one. Train first (recship train)."
        )
    return latest


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Load weights (and optimizer state) from a checkpoint; returns its meta."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError) as exc:
        raise CheckpointError(
            f"cannot load {path}/model.pt into the model: {exc}"
        ) from exc
    if optimizers:
        saved = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(saved[name])
    meta = json.loads((path / "meta.json").read_text())
    meta["path"] = str(path)
    return meta
