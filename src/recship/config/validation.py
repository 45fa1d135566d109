"""Checks on a parsed pipeline config that the schema alone cannot express.

Each failure names the config source and the field path, says which value is
wrong and what would be accepted.
"""

from recship.config.protos import data_pb2, model_pb2, pipeline_pb2
from recship.errors import ConfigError

SIDES = ("user", "item", "context")


def validate_pipeline_config(config: pipeline_pb2.EasyRecConfig, source: str) -> None:
    """Raise ConfigError for the first problem found in `config`."""
    _validate_data_config(config.data_config, source)
    names = _validate_features(config, source)
    _validate_model(config.model_config, names, source)


def _fail(source: str, field: str, message: str) -> None:
    raise ConfigError(f"{source}: {field}: {message}")


def _validate_data_config(data: data_pb2.DataConfig, source: str) -> None:
    if data.dataset_type == data_pb2.OdpsDataset:
        _fail(
            source,
            "data_config.dataset_type",
            "OdpsDataset (MaxCompute) is not supported; use ParquetDataset "
            "or CsvDataset with local or fsspec paths",
        )
    if data.fg_encoded or data.fg_mode in (data_pb2.FG_NONE, data_pb2.FG_BYPASS):
        _fail(
            source,
            "data_config.fg_mode",
            "only FG_NORMAL and FG_DAG (raw columns, recship runs FG) are "
            "supported for training so far; set fg_mode: FG_NORMAL",
        )
    if not data.label_fields:
        _fail(source, "data_config.label_fields", "at least one label is required")
    if data.batch_size == 0:
        _fail(source, "data_config.batch_size", "must be positive")


def _check_expression(expression: str, field: str, source: str) -> None:
    side, _, column = expression.partition(":")
    if side not in SIDES or not column:
        _fail(
            source,
            field,
            f"expression {expression!r} must be '<side>:<column>' with side one "
            f"of {', '.join(SIDES)}",
        )


def _check_id_feature(feature, field: str, source: str) -> None:
    kinds = [
        feature.HasField("hash_bucket_size"),
        feature.HasField("num_buckets"),
        len(feature.vocab_list) > 0,
    ]
    if sum(kinds) != 1:
        _fail(
            source,
            field,
            f"id_feature {feature.feature_name!r} needs exactly one of "
            "hash_bucket_size, num_buckets, vocab_list",
        )
    if feature.HasField("num_buckets") and feature.num_buckets == 0:
        _fail(source, field, f"{feature.feature_name!r}: num_buckets must be > 0")
    if feature.HasField("hash_bucket_size") and feature.hash_bucket_size == 0:
        _fail(source, field, f"{feature.feature_name!r}: hash_bucket_size must be > 0")
    if not feature.embedding_dim:
        _fail(source, field, f"id_feature {feature.feature_name!r} needs embedding_dim")
    if feature.pooling not in ("sum", "mean"):
        _fail(source, field, f"pooling {feature.pooling!r} is not sum or mean")


def _check_raw_feature(feature, field: str, source: str) -> None:
    if feature.boundaries and not feature.embedding_dim:
        _fail(
            source,
            field,
            f"raw_feature {feature.feature_name!r} has boundaries, so it "
            "needs embedding_dim",
        )
    if list(feature.boundaries) != sorted(feature.boundaries):
        _fail(source, field, f"{feature.feature_name!r}: boundaries must ascend")
    if feature.boundaries and feature.value_dim != 1:
        _fail(source, field, "bucketized raw features must have value_dim 1")
    try:
        float(feature.default_value)
    except ValueError:
        _fail(source, field, f"default_value {feature.default_value!r} is no number")


def _validate_features(config: pipeline_pb2.EasyRecConfig, source: str) -> set[str]:
    names: set[str] = set()

    def add(name: str, field: str) -> None:
        if name in names:
            _fail(source, field, f"feature name {name!r} is defined twice")
        names.add(name)

    for i, fc in enumerate(config.feature_configs):
        field = f"feature_configs[{i}]"
        kind = fc.WhichOneof("feature")
        if kind is None:
            _fail(source, field, "empty feature config")
        if kind == "sequence_feature":
            seq = fc.sequence_feature
            if not seq.features:
                _fail(source, field, f"sequence {seq.sequence_name!r} has no features")
            for j, sub in enumerate(seq.features):
                sub_field = f"{field}.sequence_feature.features[{j}]"
                sub_kind = sub.WhichOneof("feature")
                feature = getattr(sub, sub_kind)
                _check_expression(feature.expression, sub_field, source)
                if sub_kind == "id_feature":
                    _check_id_feature(feature, sub_field, source)
                else:
                    _check_raw_feature(feature, sub_field, source)
                add(f"{seq.sequence_name}__{feature.feature_name}", sub_field)
            continue
        feature = getattr(fc, kind)
        sub_field = f"{field}.{kind}"
        _check_expression(feature.expression, sub_field, source)
        if kind == "id_feature":
            _check_id_feature(feature, sub_field, source)
        else:
            _check_raw_feature(feature, sub_field, source)
        add(feature.feature_name, sub_field)
    return names


def _validate_model(model: model_pb2.ModelConfig, names: set[str], source: str) -> None:
    if model.WhichOneof("model") is None:
        _fail(source, "model_config", "no model set (e.g. multi_tower_din { ... })")
    groups: set[str] = set()
    for i, group in enumerate(model.feature_groups):
        field = f"model_config.feature_groups[{i}]"
        if group.group_name in groups:
            _fail(source, field, f"group name {group.group_name!r} is used twice")
        groups.add(group.group_name)
        if group.group_type == model_pb2.WIDE:
            _fail(source, field, "WIDE groups are not supported by this model yet")
        if not group.feature_names:
            _fail(source, field, f"group {group.group_name!r} has no features")
        for name in group.feature_names:
            if name not in names:
                _fail(
                    source,
                    f"{field}.feature_names",
                    f"{name!r} is not a feature of feature_configs",
                )
    model_kind = model.WhichOneof("model")
    spec = getattr(model, model_kind)
    towers = list(spec.towers) + list(getattr(spec, "din_towers", []))
    for tower in towers:
        if tower.input not in groups:
            _fail(
                source,
                f"model_config.{model_kind}",
                f"tower input {tower.input!r} is not a feature group",
            )
    for i, loss in enumerate(model.losses):
        if loss.WhichOneof("loss") is None:
            _fail(source, f"model_config.losses[{i}]", "empty loss")
    if model.num_class != 1:
        _fail(source, "model_config.num_class", "only binary models (1) so far")
