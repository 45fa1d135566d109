"""Build a model from the pipeline config."""

from torch import nn

from recship.config.protos import pipeline_pb2
from recship.errors import ModelError
from recship.features.spec import FeatureSpec, build_feature_specs
from recship.models.embedding import build_group_specs
from recship.models.rank_model import MultiTowerDIN


def model_feature_specs(config: pipeline_pb2.EasyRecConfig) -> list[FeatureSpec]:
    """Specs of the features the model's groups use, in config order."""
    used = {n for g in config.model_config.feature_groups for n in g.feature_names}
    return [spec for spec in build_feature_specs(config) if spec.name in used]


def build_model(config: pipeline_pb2.EasyRecConfig) -> nn.Module:
    """The model named by `model_config`, with freshly initialized weights."""
    model_config = config.model_config
    groups = build_group_specs(model_config, model_feature_specs(config))
    kind = model_config.WhichOneof("model")
    if kind in ("multi_tower", "multi_tower_din"):
        return MultiTowerDIN(groups, getattr(model_config, kind))
    raise ModelError(f"model_config.{kind} is not supported yet")
