"""Which checkpoint to export: `export_config.exporter_type` latest or best.

"latest" is model_dir's newest checkpoint. "best" evaluates every checkpoint
still in model_dir on the eval data at export time (not during training, so
it needs no training option and works on any model_dir) and picks the one
whose `best_exporter_metric` is largest, or smallest when
`metric_larger_is_better` is false. Each checkpoint's metrics are kept in
its own `eval_result.json`, so a second export does not evaluate again.
"""

import json
import logging
from pathlib import Path

from recship.config.loader import PipelineConfig
from recship.errors import CheckpointError, ConfigError
from recship.training.checkpoint import list_checkpoints, resolve_checkpoint

logger = logging.getLogger(__name__)

EVAL_RESULT_FILE = "eval_result.json"
EXPORTER_TYPES = ("latest", "best")


def checkpoint_metrics(config: PipelineConfig, checkpoint: Path) -> dict[str, float]:
    """Eval metrics of one checkpoint, from its eval_result.json or evaluated."""
    from recship.training.trainer import evaluate

    cached = checkpoint / EVAL_RESULT_FILE
    if cached.is_file():
        return json.loads(cached.read_text())
    metrics = evaluate(config, str(checkpoint))
    cached.write_text(json.dumps(metrics, indent=2))
    return metrics


def select_checkpoint(
    config: PipelineConfig, checkpoint: str | Path | None = None
) -> Path:
    """The checkpoint to export.

    Args:
        config: its export_config decides latest or best.
        checkpoint: an explicit checkpoint (or model_dir) wins over the config.

    Raises:
        ConfigError: exporter_type is unknown or the metric is not computed.
        CheckpointError: model_dir holds no checkpoint.
    """
    export_config = config.export_config
    kind = export_config.exporter_type
    if kind not in EXPORTER_TYPES:
        raise ConfigError(
            f"export_config.exporter_type {kind!r} is not one of {EXPORTER_TYPES}"
        )
    if checkpoint is not None or kind == "latest":
        return resolve_checkpoint(checkpoint or config.model_dir)

    candidates = list_checkpoints(config.model_dir)
    if not candidates:
        raise CheckpointError(
            f"no checkpoint in {config.model_dir} to pick the best of; train first"
        )
    name = export_config.best_exporter_metric
    scored = []
    for path in candidates:
        metrics = checkpoint_metrics(config, path)
        if name not in metrics:
            raise ConfigError(
                f"export_config.best_exporter_metric {name!r} is not among the eval "
                f"metrics {sorted(metrics)} of {path}; add it to model_config.metrics"
            )
        scored.append((float(metrics[name]), path))
    sign = 1.0 if export_config.metric_larger_is_better else -1.0
    value, best = max(scored, key=lambda pair: sign * pair[0])
    logger.info("best checkpoint by %s: %s (%.6f)", name, best, value)
    return best
