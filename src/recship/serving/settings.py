"""Service settings: one JSON service config file, overridable by flags.

The file follows the layout of an EAS service description where EAS has a
name for the option (`name`, `metadata.rpc.worker_threads`,
`metadata.rpc.max_queue_size`, `token`), and adds sections of our own for
the rest. Every option is optional; see docs/serving.md for each one.

    {
      "name": "tzrec_din",
      "model_path": "runs/demo/export",
      "token": "",
      "metadata": {
        "workers": 2,
        "rpc": {"worker_threads": 4, "max_queue_size": 64,
                "intra_op_threads": 1, "max_body_bytes": 8388608,
                "host": "127.0.0.1", "port": 8080}
      },
      "model_config": {"item_empty_score": 0.0},
      "feature_store": {"item_table": "items.parquet",
                        "item_id_column": "adgroup_id"},
      "warmup": {"warmup_data_path": "warmup/", "warmup_cnt_per_file": 3,
                 "warmup_pb_files_count": 20,
                 "warmup_item_counts": [1, 10, 100, 200, 1000]},
      "logging": {"request_log_path": "logs/", "long_request_threshold": 50,
                  "save_long_request": true}
    }

Flags of `recship serve` carry the same names as the last part of each path
(`--worker_threads`, `--long_request_threshold`...) and win over the file.
"""

import argparse
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from recship.errors import ConfigError

DEFAULT_WARMUP_ITEM_COUNTS = (1, 10, 100, 200, 1000)


@dataclass
class ServiceSettings:
    """Every option of a serving process group; see docs/serving.md.

    Attributes:
        name: the service name, served at `/api/predict/<name>`.
        model_path: the export directory to serve.
        token: when set, requests must be signed with it (401 otherwise).
        workers: server processes sharing the port.
        worker_threads: requests ranked at once in each process.
        max_queue_size: admitted requests that may wait for a thread in each
            process; beyond that, 503 at once.
        intra_op_threads: torch threads one forward may use (per process,
            shared by its worker threads); 0 leaves torch's default.
        max_body_bytes: largest request body; larger ones get 413.
        host: address to bind.
        port: port to bind; 0 picks a free one.
        item_empty_score: score of items that cannot be scored.
        item_table: Parquet/CSV item features for the embedded item store.
        item_id_column: the item table's id column.
        user_table: Parquet/CSV user features for the embedded store.
        user_id_column: the user table's id column (and request feature).
        redis_url: read items and users from Redis instead of files.
        redis_prefix: key prefix of the tables in Redis.
        item_refresh_interval_s: seconds between item cache refreshes.
        warmup_data_path: directory of saved PBRequest files (`*.pb`) to warm
            up on, and where live requests are saved for the next start.
        warmup_cnt_per_file: times each saved request is replayed at warm-up.
        warmup_pb_files_count: how many of the first live PB requests to save
            into `warmup_data_path`; 0 saves none.
        warmup_item_counts: sizes of the synthetic warm-up requests.
        warmup_rounds: times each synthetic request runs.
        request_log_path: directory of request logs; empty disables them.
        request_log_queue_size: records waiting for the log writer; beyond
            that, records are dropped and counted, never waited for.
        long_request_threshold: milliseconds above which a request is slow
            (its stages are logged); 0 disables.
        save_long_request: save slow requests' bodies for `recship replay`.
    """

    name: str = "recship"
    model_path: str = ""
    token: str = ""
    workers: int = 1
    worker_threads: int = 4
    max_queue_size: int = 64
    intra_op_threads: int = 0
    max_body_bytes: int = 8 << 20
    host: str = "127.0.0.1"
    port: int = 8080
    item_empty_score: float = 0.0
    item_table: str = ""
    item_id_column: str = ""
    user_table: str = ""
    user_id_column: str = ""
    redis_url: str = ""
    redis_prefix: str = "recship"
    item_refresh_interval_s: float = 10.0
    warmup_data_path: str = ""
    warmup_cnt_per_file: int = 1
    warmup_pb_files_count: int = 0
    warmup_item_counts: list[int] = field(
        default_factory=lambda: list(DEFAULT_WARMUP_ITEM_COUNTS)
    )
    warmup_rounds: int = 6
    request_log_path: str = ""
    request_log_queue_size: int = 10000
    long_request_threshold: float = 0.0
    save_long_request: bool = False

    def check(self) -> "ServiceSettings":
        """Checks ranges; returns self.

        Raises:
            ConfigError: an option is out of range; the message names it.
        """
        minimums = {
            "workers": 1,
            "worker_threads": 1,
            "max_queue_size": 0,
            "intra_op_threads": 0,
            "max_body_bytes": 1,
            "port": 0,
            "warmup_cnt_per_file": 0,
            "warmup_pb_files_count": 0,
            "warmup_rounds": 0,
            "request_log_queue_size": 1,
            "long_request_threshold": 0,
        }
        for name, low in minimums.items():
            if getattr(self, name) < low:
                raise ConfigError(
                    f"service option {name}={getattr(self, name)!r} is below its "
                    f"minimum {low}; see docs/serving.md"
                )
        if self.port > 65535:
            raise ConfigError(f"service option port={self.port} is not a port")
        if any(count < 1 for count in self.warmup_item_counts):
            raise ConfigError(
                f"warmup_item_counts {self.warmup_item_counts} must all be >= 1"
            )
        if self.warmup_pb_files_count and not self.warmup_data_path:
            raise ConfigError(
                "warmup_pb_files_count needs warmup_data_path, the directory to "
                "save live requests into"
            )
        if self.save_long_request and not self.request_log_path:
            raise ConfigError(
                "save_long_request needs request_log_path, the directory to "
                "save slow requests into"
            )
        return self


# Where each option lives in the service config file.
OPTION_PATHS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "model_path": ("model_path",),
    "token": ("token",),
    "workers": ("metadata", "workers"),
    "worker_threads": ("metadata", "rpc", "worker_threads"),
    "max_queue_size": ("metadata", "rpc", "max_queue_size"),
    "intra_op_threads": ("metadata", "rpc", "intra_op_threads"),
    "max_body_bytes": ("metadata", "rpc", "max_body_bytes"),
    "host": ("metadata", "rpc", "host"),
    "port": ("metadata", "rpc", "port"),
    "item_empty_score": ("model_config", "item_empty_score"),
    "item_table": ("feature_store", "item_table"),
    "item_id_column": ("feature_store", "item_id_column"),
    "user_table": ("feature_store", "user_table"),
    "user_id_column": ("feature_store", "user_id_column"),
    "redis_url": ("feature_store", "redis_url"),
    "redis_prefix": ("feature_store", "redis_prefix"),
    "item_refresh_interval_s": ("feature_store", "item_refresh_interval_s"),
    "warmup_data_path": ("warmup", "warmup_data_path"),
    "warmup_cnt_per_file": ("warmup", "warmup_cnt_per_file"),
    "warmup_pb_files_count": ("warmup", "warmup_pb_files_count"),
    "warmup_item_counts": ("warmup", "warmup_item_counts"),
    "warmup_rounds": ("warmup", "warmup_rounds"),
    "request_log_path": ("logging", "request_log_path"),
    "request_log_queue_size": ("logging", "request_log_queue_size"),
    "long_request_threshold": ("logging", "long_request_threshold"),
    "save_long_request": ("logging", "save_long_request"),
}


def load_service_settings(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> ServiceSettings:
    """Reads a service config file and applies flag overrides.

    Args:
        path: the JSON file; None starts from the defaults.
        overrides: option name to value; None values are ignored (a flag
            that was not given).

    Returns:
        The checked settings.

    Raises:
        ConfigError: the file is unreadable, not JSON, has an unknown key or
            a value of the wrong type; the message names the file and key.
    """
    settings = ServiceSettings()
    if path is not None:
        document = _read_document(Path(path))
        settings = replace(settings, **parse_service_config(document, str(path)))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(given) - set(OPTION_PATHS))
    if unknown:
        raise ConfigError(f"unknown service option(s) {unknown}")
    settings = replace(settings, **given)
    return settings.check()


def parse_service_config(document: Any, source: str) -> dict[str, Any]:
    """Option values of a parsed service config document.

    Args:
        document: the parsed JSON.
        source: the file name, for messages.

    Returns:
        Option name to value, for the options the document sets.
    """
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: a service config is a JSON object")
    _reject_unknown_keys(document, (), source)
    types = {f.name: f.type for f in fields(ServiceSettings)}
    values: dict[str, Any] = {}
    for name, option_path in OPTION_PATHS.items():
        found, value = _lookup(document, option_path)
        if found:
            values[name] = _coerce(value, types[name], ".".join(option_path), source)
    return values


def _read_document(path: Path) -> Any:
    """The parsed JSON of a service config file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read service config {path}: {err}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"service config {path} is not JSON: line {err.lineno}, "
            f"column {err.colno}: {err.msg}"
        ) from err


def _reject_unknown_keys(node: dict[str, Any], prefix: tuple[str, ...], source: str):
    """Fails on a key that is neither an option nor a section of options."""
    sections = {p[: len(prefix) + 1] for p in OPTION_PATHS.values() if len(p) > 1}
    for key, value in node.items():
        path = (*prefix, key)
        if path in OPTION_PATHS.values():
            continue
        if path in sections and isinstance(value, dict):
            _reject_unknown_keys(value, path, source)
            continue
        known = sorted(".".join(p) for p in OPTION_PATHS.values())
        raise ConfigError(
            f"{source}: unknown key {'.'.join(path)!r}; known options: "
            f"{', '.join(known)}"
        )


def _lookup(document: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    """Walks `path`; (False, None) when a part is absent."""
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def _coerce(value: Any, kind: Any, where: str, source: str) -> Any:
    """Checks a JSON value against the option's type (ints pass as floats)."""
    checks = {
        str: ("a string", isinstance(value, str)),
        int: ("an integer", type(value) is int),
        float: ("a number", type(value) in (int, float)),
        bool: ("true or false", type(value) is bool),
    }
    if kind == list[int]:
        expected = "a list of integers"
        ok = isinstance(value, list) and all(type(v) is int for v in value)
    else:
        expected, ok = checks[kind]
    if not ok:
        raise ConfigError(
            f"{source}: {where} is {value!r}; expected {expected} (see docs/serving.md)"
        )
    return float(value) if kind is float else value


def add_service_flags(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per service option (`--worker_threads`...), default None
    so that only given flags override the service config file.

    A flag the parser already has is left as it is.
    """
    parser.add_argument(
        "--service_config", help="JSON service config file (docs/serving.md)"
    )
    for option in fields(ServiceSettings):
        kwargs: dict[str, Any] = {
            "default": None,
            "help": f"service option {option.name}",
        }
        if option.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.type == list[int]:
            kwargs["type"] = _int_list
        else:
            kwargs["type"] = option.type
        try:
            parser.add_argument(f"--{option.name}", **kwargs)
        except argparse.ArgumentError:
            continue


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """The settings of `--service_config` with the given flags applied."""
    overrides = {
        option.name: getattr(args, option.name, None)
        for option in fields(ServiceSettings)
    }
    return load_service_settings(getattr(args, "service_config", None), overrides)


def _int_list(text: str) -> list[int]:
    """Parses `1,10,100` for list flags."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from err
