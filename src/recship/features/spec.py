"""Feature specs: one flat description per model input, and `fg.json`.

A `FeatureSpec` is what FG and the model need to know about one feature. Specs
come from the pipeline config's `feature_configs` (training) or from the
export's `fg.json` (serving); both paths meet here, so FG cannot differ
between them.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from recship.config.protos import feature_pb2, pipeline_pb2
from recship.errors import FeatureError

FG_JSON_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One model input feature.

    Attributes:
        name: feature name; for sequence sub-features `<sequence>__<name>`.
        kind: "id_feature" or "raw_feature".
        side: "user", "item" or "context".
        column: raw input column FG reads.
        embedding_name: table name; features sharing it share a table.
        embedding_dim: embedding width; 0 for dense raw features.
        sequence_name: the sequence this is a sub-feature of, or "".
    """

    name: str
    kind: str
    side: str
    column: str
    embedding_name: str = ""
    embedding_dim: int = 0
    hash_bucket_size: int = 0
    num_buckets: int = 0
    vocab_list: tuple[str, ...] = ()
    default_value: str = ""
    separator: str = "\x1d"
    pooling: str = "sum"
    boundaries: tuple[float, ...] = ()
    value_dim: int = 1
    sequence_name: str = ""
    sequence_length: int = 0
    sequence_delim: str = ""
    sequence_pk: str = ""
    # For a sequence sub-feature: the item column its expression names
    # (`item:cate_id` -> "cate_id"), which online joins read by sequence_pk.
    item_column: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_sparse(self) -> bool:
        """True when the feature is embedded (ids, or bucketized raw values)."""
        return self.kind == "id_feature" or bool(self.boundaries)

    @property
    def is_sequence(self) -> bool:
        return bool(self.sequence_name)

    @property
    def request_side(self) -> str:
        """Where a rank request carries the raw value.

        A sequence is the user's history, so its sub-features arrive with the
        user's features even though their expressions name item columns.
        """
        return "user" if self.is_sequence else self.side

    @property
    def num_embeddings(self) -> int:
        """Rows of the embedding table this feature needs."""
        if self.hash_bucket_size:
            return self.hash_bucket_size
        if self.num_buckets:
            return self.num_buckets
        if self.vocab_list:
            return len(self.vocab_list) + 1  # the last row holds unknown values
        return len(self.boundaries) + 1


def _spec_from_proto(
    feature: Any, kind: str, sequence: feature_pb2.SequenceFeature | None
) -> FeatureSpec:
    side, _, column = feature.expression.partition(":")
    name = feature.feature_name
    embedding_name = feature.embedding_name or f"{name}_emb"
    common: dict[str, Any] = {
        "kind": kind,
        "side": side,
        "embedding_name": embedding_name,
        "embedding_dim": feature.embedding_dim,
        "default_value": feature.default_value,
        "separator": feature.separator,
    }
    if kind == "id_feature":
        common.update(
            hash_bucket_size=feature.hash_bucket_size,
            num_buckets=feature.num_buckets,
            vocab_list=tuple(feature.vocab_list),
            pooling=feature.pooling,
        )
    else:
        common.update(
            boundaries=tuple(float(b) for b in feature.boundaries),
            value_dim=feature.value_dim,
        )
    if sequence is None:
        return FeatureSpec(name=name, column=column, **common)
    full_name = f"{sequence.sequence_name}__{name}"
    return FeatureSpec(
        name=full_name,
        column=full_name,
        sequence_name=sequence.sequence_name,
        sequence_length=sequence.sequence_length,
        sequence_delim=sequence.sequence_delim,
        sequence_pk=sequence.sequence_pk,
        item_column=column,
        **common,
    )


def build_feature_specs(config: pipeline_pb2.EasyRecConfig) -> list[FeatureSpec]:
    """Feature specs of every feature in the config, in config order."""
    specs: list[FeatureSpec] = []
    for feature_config in config.feature_configs:
        kind = feature_config.WhichOneof("feature")
        if kind == "sequence_feature":
            sequence = feature_config.sequence_feature
            for sub in sequence.features:
                sub_kind = sub.WhichOneof("feature")
                specs.append(
                    _spec_from_proto(getattr(sub, sub_kind), sub_kind, sequence)
                )
        else:
            specs.append(_spec_from_proto(getattr(feature_config, kind), kind, None))
    return specs


def specs_to_fg_json(specs: list[FeatureSpec]) -> dict[str, Any]:
    """The `fg.json` document for `specs` (what the server's FG runs)."""
    features = []
    for spec in specs:
        entry = {k: v for k, v in asdict(spec).items() if k != "extra"}
        entry["vocab_list"] = list(spec.vocab_list)
        entry["boundaries"] = list(spec.boundaries)
        features.append(entry)
    return {"version": FG_JSON_VERSION, "features": features}


def specs_from_fg_json(
    document: dict[str, Any], source: str = "fg.json"
) -> list[FeatureSpec]:
    """Feature specs from an `fg.json` document written by `specs_to_fg_json`."""
    if document.get("version") != FG_JSON_VERSION:
        raise FeatureError(
            f"{source}: unsupported fg.json version {document.get('version')!r}; "
            f"this recship reads version {FG_JSON_VERSION}. Re-export the model."
        )
    specs = []
    for i, entry in enumerate(document.get("features", [])):
        try:
            entry = dict(entry)
            entry["vocab_list"] = tuple(entry.get("vocab_list", ()))
            entry["boundaries"] = tuple(entry.get("boundaries", ()))
            specs.append(FeatureSpec(**entry))
        except TypeError as exc:
            raise FeatureError(f"{source}: features[{i}]: {exc}") from exc
    return specs
