"""What offline predict scores with: an export, or a checkpoint and its config.

Both give a `Scorer`: the FG to run on raw rows, the model to call on its
output, and the model's output names. From an export this is the artifact
the server runs; from a checkpoint it is the eager model, for scoring before
anything is exported.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from recship.errors import ConfigError
from recship.features.fg import FeatureGenerator

Model = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass
class Scorer:
    """FG and model of one predict run.

    Attributes:
        generator: FG of the model's features.
        model: inputs -> {"probs": [B], "logits": [B], ...}.
        output_names: the model's outputs, in order.
        source: the export directory or checkpoint scored with.
    """

    generator: FeatureGenerator
    model: Model
    output_names: list[str]
    source: str


def load_scorer(
    scripted_model_path: str | Path | None = None,
    *,
    checkpoint_path: str | Path | None = None,
    pipeline_config_path: str | Path | None = None,
) -> Scorer:
    """A scorer from an export directory (local or fsspec URL), or from a
    checkpoint (or model_dir, meaning its latest) plus its pipeline config.

    Raises:
        ConfigError: neither or both sources were given.
    """
    if scripted_model_path and (checkpoint_path or pipeline_config_path):
        raise ConfigError(
            "give either --scripted_model_path (an export) or --checkpoint_path "
            "with --pipeline_config_path, not both"
        )
    if scripted_model_path:
        from recship.export.artifact import load_artifact

        loaded = load_artifact(scripted_model_path)
        return Scorer(
            loaded.generator, loaded.model, loaded.output_names, str(loaded.path)
        )
    if not pipeline_config_path:
        raise ConfigError(
            "nothing to score with: pass --scripted_model_path (an export) or "
            "--pipeline_config_path (with --checkpoint_path, default model_dir's "
            "latest checkpoint)"
        )
    return _checkpoint_scorer(pipeline_config_path, checkpoint_path)


def _checkpoint_scorer(
    pipeline_config_path: str | Path, checkpoint_path: str | Path | None
) -> Scorer:
    from recship.config.loader import load_pipeline_config
    from recship.models.builder import build_model, model_feature_specs
    from recship.training.checkpoint import load_checkpoint, resolve_checkpoint

    config = load_pipeline_config(str(pipeline_config_path))
    checkpoint = resolve_checkpoint(checkpoint_path or config.model_dir)
    model = build_model(config)
    load_checkpoint(checkpoint, model)
    model.eval()
    generator = FeatureGenerator(model_feature_specs(config))
    return Scorer(generator, model, ["logits", "probs"], str(checkpoint))
