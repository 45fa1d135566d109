"""Tiny, deterministic builders for tests: data, a config, a trained export.

Everything here is small enough to build in seconds on one core, and real:
generated Taobao-schema Parquet, a protobuf pipeline config, TorchRec
embeddings, a trained checkpoint and an exported artifact.
"""

from dataclasses import dataclass
from pathlib import Path

from recship.config.loader import PipelineConfig, parse_pipeline_config
from recship.data.taobao import generate_taobao_dataset

# Small tables, the example model's feature set and groups.
_USER_IDS = [
    ("user_id", "num_buckets: 1141730"),
    ("cms_segid", "num_buckets: 98"),
    ("cms_group_id", "num_buckets: 14"),
    ("final_gender_code", "num_buckets: 3"),
    ("age_level", "num_buckets: 8"),
    ("pvalue_level", "num_buckets: 5"),
    ("shopping_level", "num_buckets: 5"),
    ("occupation", "num_buckets: 3"),
    ("new_user_class_level", "num_buckets: 6"),
]
_ITEM_IDS = [
    ("adgroup_id", "hash_bucket_size: 5000"),
    ("cate_id", "num_buckets: 12961"),
    ("campaign_id", "hash_bucket_size: 5000"),
    ("customer", "hash_bucket_size: 5000"),
    ("brand", "hash_bucket_size: 5000"),
]
_SEQUENCE = [
    ("adgroup_id", "hash_bucket_size: 5000"),
    ("cate_id", "num_buckets: 12961"),
    ("brand", "hash_bucket_size: 5000"),
]

# User-side raw columns a test's rank request for the tiny model carries.
TINY_USER_COLUMNS = [
    "user_id", "cms_segid", "cms_group_id", "age_level",
    "click_50_seq__adgroup_id", "click_50_seq__cate_id", "click_50_seq__brand",
]  # fmt: skip


def _id_feature(name: str, side: str, size: str, dim: int) -> str:
    return (
        f'id_feature {{ feature_name: "{name}" expression: "{side}:{name}" '
        f"{size} embedding_dim: {dim} }}"
    )


def tiny_config_text(
    data_dir: str | Path, model_dir: str | Path, *, sequence_pk: str = "", dim: int = 8
) -> str:
    """A small MultiTowerDIN pipeline config over `data_dir`'s Taobao data."""
    data_dir = Path(data_dir)
    features = [
        f"feature_configs {{ {_id_feature(n, 'user', s, dim)} }}" for n, s in _USER_IDS
    ]
    features += [
        f"feature_configs {{ {_id_feature(n, 'item', s, dim)} }}" for n, s in _ITEM_IDS
    ]
    features.append(
        'feature_configs { raw_feature { feature_name: "price" '
        'expression: "item:price" boundaries: [10, 50, 100, 500] '
        f"embedding_dim: {dim} }} }}"
    )
    features.append(
        "feature_configs { "
        + _id_feature("pid", "context", "hash_bucket_size: 20", dim)
        + " }"
    )
    sub = " ".join(
        f"features {{ {_id_feature(n, 'item', s, dim)} }}" for n, s in _SEQUENCE
    )
    pk = f'sequence_pk: "{sequence_pk}" ' if sequence_pk else ""
    features.append(
        'feature_configs { sequence_feature { sequence_name: "click_50_seq" '
        f'sequence_length: 50 sequence_delim: "|" {pk}{sub} }} }}'
    )
    deep = [n for n, _ in _USER_IDS + _ITEM_IDS] + ["price", "pid"]
    seq = ["adgroup_id", "cate_id", "brand"] + [
        f"click_50_seq__{n}" for n, _ in _SEQUENCE
    ]
    names = lambda group: " ".join(f'feature_names: "{n}"' for n in group)  # noqa: E731
    return f"""
train_input_path: "{data_dir / "train.parquet"}"
eval_input_path: "{data_dir / "eval.parquet"}"
model_dir: "{model_dir}"
train_config {{
  sparse_optimizer {{ adagrad_optimizer {{ lr: 0.05 }} constant_learning_rate {{}} }}
  dense_optimizer {{ adam_optimizer {{ lr: 0.003 }} constant_learning_rate {{}} }}
  num_epochs: 1
  save_checkpoints_steps: 1000
  log_step_count_steps: 1000
}}
eval_config {{}}
data_config {{
  batch_size: 128
  dataset_type: ParquetDataset
  fg_mode: FG_NORMAL
  label_fields: "clk"
  num_workers: 1
}}
{chr(10).join(features)}
model_config {{
  feature_groups {{ group_name: "deep" {names(deep)} group_type: DEEP }}
  feature_groups {{ group_name: "seq" {names(seq)} group_type: SEQUENCE }}
  multi_tower_din {{
    towers {{ input: "deep" mlp {{ hidden_units: [32, 16] }} }}
    din_towers {{ input: "seq" attn_mlp {{ hidden_units: [16, 8] }} }}
    final {{ hidden_units: [16] }}
  }}
  metrics {{ auc {{}} }}
  losses {{ binary_cross_entropy {{}} }}
}}
"""


@dataclass
class TinyWorld:
    """Paths of a tiny generated data set and its config."""

    root: Path
    data: dict[str, str]
    config: PipelineConfig
    config_path: Path


def build_tiny_world(
    root: str | Path, *, num_rows: int = 3000, seed: int = 0, sequence_pk: str = ""
) -> TinyWorld:
    """Generate tiny data under `root` and write its pipeline config."""
    root = Path(root)
    data = generate_taobao_dataset(
        str(root / "data"), num_rows=num_rows, num_users=200, num_items=300, seed=seed
    )
    text = tiny_config_text(root / "data", root / "model", sequence_pk=sequence_pk)
    config_path = root / "pipeline.config"
    config_path.write_text(text)
    return TinyWorld(
        root, data, parse_pipeline_config(text, str(config_path)), config_path
    )


def build_tiny_export(
    root: str | Path,
    *,
    quant: str = "INT8",
    num_rows: int = 3000,
    sequence_pk: str = "",
) -> tuple[TinyWorld, Path]:
    """Tiny data, trained for one epoch, exported with `quant` embeddings."""
    from recship.export.exporter import ExportOptions, export_model
    from recship.training.trainer import train_and_evaluate

    world = build_tiny_world(root, num_rows=num_rows, sequence_pk=sequence_pk)
    train_and_evaluate(world.config, progress=False)
    export_dir = Path(root) / "export"
    export_model(
        world.config,
        export_dir,
        options=ExportOptions(quant_emb=quant, quant_ec_emb=quant),
    )
    return world, export_dir
