"""The service config file, its checks and the flags that override it."""

import json

import pytest

from recship.cli.main import build_parser
from recship.errors import ConfigError
from recship.serving.settings import (
    OPTION_PATHS,
    ServiceSettings,
    load_service_settings,
    settings_from_args,
)

FULL = {
    "name": "tzrec_din",
    "model_path": "export/",
    "token": "t",
    "metadata": {
        "workers": 2,
        "rpc": {"worker_threads": 8, "max_queue_size": 16, "intra_op_threads": 1,
                "max_body_bytes": 1024, "host": "::1", "port": 9000},
    },
    "model_config": {"item_empty_score": -1},
    "feature_store": {"item_table": "items.parquet", "item_id_column": "adgroup_id"},
    "warmup": {"warmup_data_path": "w/", "warmup_cnt_per_file": 2,
               "warmup_pb_files_count": 5, "warmup_item_counts": [1, 50],
               "warmup_rounds": 2},
    "logging": {"request_log_path": "logs/", "long_request_threshold": 20,
                "save_long_request": True, "request_log_queue_size": 10},
}  # fmt: skip


def write(tmp_path, document) -> str:
    path = tmp_path / "service.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_every_option_is_read_from_its_place(tmp_path):
    settings = load_service_settings(write(tmp_path, FULL))
    assert settings.name == "tzrec_din" and settings.workers == 2
    assert settings.worker_threads == 8 and settings.max_queue_size == 16
    assert settings.host == "::1" and settings.port == 9000
    assert settings.item_empty_score == -1.0
    assert isinstance(settings.item_empty_score, float)
    assert settings.warmup_item_counts == [1, 50]
    assert settings.save_long_request is True
    assert settings.long_request_threshold == 20.0


def test_flags_win_over_the_file(tmp_path):
    args = build_parser().parse_args(
        ["serve", "--service_config", write(tmp_path, FULL), "--worker_threads", "3",
         "--no-save_long_request", "--warmup_item_counts", "1,2,3"]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.worker_threads == 3
    assert settings.save_long_request is False
    assert settings.warmup_item_counts == [1, 2, 3]
    assert settings.max_queue_size == 16  # from the file


def test_defaults_without_a_file():
    assert load_service_settings(None) == ServiceSettings()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"metadata": {"rpc": {"worker_thread": 2}}}, "metadata.rpc.worker_thread"),
        ({"metadata": {"rpc": {"worker_threads": "8"}}}, "expected an integer"),
        ({"metadata": {"rpc": {"worker_threads": 0}}}, "worker_threads=0"),
        ({"warmup": {"warmup_pb_files_count": 3}}, "needs warmup_data_path"),
        ({"logging": {"save_long_request": True}}, "needs request_log_path"),
        ({"metadata": 3}, "unknown key 'metadata'"),
        ([], "JSON object"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, document, message):
    with pytest.raises(ConfigError, match=message):
        load_service_settings(write(tmp_path, document))


def test_unreadable_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x",\n "port": }')
    with pytest.raises(ConfigError, match="line 2"):
        load_service_settings(path)


def test_every_option_has_a_place_in_the_file():
    from dataclasses import fields

    assert {f.name for f in fields(ServiceSettings)} == set(OPTION_PATHS)
