import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format

from recship.config.loader import (
    format_pipeline_config,
    load_pipeline_config,
    parse_pipeline_config,
)
from recship.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "multi_tower_din_taobao.config"


def test_example_config_loads_with_every_feature_and_group():
    config = load_pipeline_config(EXAMPLE)
    assert len(config.feature_configs) == 17
    assert [g.group_name for g in config.model_config.feature_groups] == ["deep", "seq"]
    assert config.model_config.multi_tower_din.din_towers[0].input == "seq"
    sequence = config.feature_configs[-1].sequence_feature
    assert (sequence.sequence_name, sequence.sequence_delim) == ("click_50_seq", "|")


def test_unknown_field_fails_with_its_name_and_line(tmp_path):
    text = EXAMPLE.read_text().replace(
        "  num_epochs: 1\n", "  num_epochs: 1\n  use_tensorboard: true\n"
    )
    line = text.splitlines().index("  use_tensorboard: true") + 1
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_pipeline_config(path)
    assert "use_tensorboard" in str(error.value)
    assert f"{line}:" in str(error.value)
    assert str(path) in str(error.value)


def test_json_with_the_same_schema_loads_identically():
    config = load_pipeline_config(EXAMPLE)
    as_json = json_format.MessageToJson(config)
    assert parse_pipeline_config(as_json, "x.json") == config


def test_text_round_trip_is_lossless():
    config = load_pipeline_config(EXAMPLE)
    assert parse_pipeline_config(format_pipeline_config(config)) == config


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'feature_names: "pid"\n',
            'feature_names: "no_such"\n',
            "'no_such' is not a feature",
        ),
        ("dataset_type: ParquetDataset", "dataset_type: OdpsDataset", "OdpsDataset"),
        ('expression: "user:user_id"', 'expression: "user_id"', "expression 'user_id'"),
        ('input: "seq"', 'input: "nope"', "tower input 'nope'"),
        ("    hash_bucket_size: 20\n", "", "needs exactly one of"),
        ('label_fields: "clk"', "", "label_fields"),
    ],
)
def test_invalid_config_names_field_and_value(old, new, expected):
    text = EXAMPLE.read_text()
    assert old in text
    with pytest.raises(ConfigError) as error:
        parse_pipeline_config(text.replace(old, new, 1), "example.config")
    assert expected in str(error.value)


def test_torch_easy_rec_fg_encoded_false_is_accepted():
    text = EXAMPLE.read_text().replace("fg_mode: FG_NORMAL", "fg_encoded: false")
    assert not parse_pipeline_config(text).data_config.fg_encoded


def test_generated_protobuf_modules_match_the_proto_files(tmp_path):
    src = REPO / "src"
    protos = sorted(str(p.relative_to(src)) for p in src.rglob("*.proto"))
    command = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(src)]
    command += [f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", *protos]
    subprocess.run(command, check=True, cwd=src)
    for proto in protos:
        for suffix in ("_pb2.py", "_pb2.pyi"):
            generated = Path(proto[: -len(".proto")] + suffix)
            assert filecmp.cmp(tmp_path / generated, src / generated, shallow=False), (
                f"{generated} is stale; run scripts/gen_protos.sh"
            )


def test_json_config_error_names_unknown_field():
    with pytest.raises(ConfigError, match="bogus"):
        parse_pipeline_config(json.dumps({"model_dir": "x", "bogus": 1}), "c.json")
