"""`recship featurestore load`: put a Parquet feature table into Redis."""

import argparse
from collections.abc import Callable

# The same defaults as recship.serving.redis_loader, kept here so that the
# CLI starts without importing Redis and Arrow.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "recship"


def cmd_featurestore_load(args: argparse.Namespace) -> None:
    from recship.serving.redis_loader import load_file_to_redis

    result = load_file_to_redis(
        args.input_path,
        table_name=args.table,
        id_column=args.id_column,
        redis_url=args.redis_url,
        prefix=args.prefix,
        batch_size=args.batch_size,
    )
    skipped = f", skipped {result.skipped} without an id" if result.skipped else ""
    print(
        f"wrote {result.rows} rows to {args.prefix}:{result.table}:<id> "
        f"(version {result.version}) in {result.seconds:.2f}s{skipped}"
    )


def add_featurestore_commands(
    add: Callable[[str, Callable, str], argparse.ArgumentParser],
) -> None:
    """Registers `featurestore` and its sub-commands with `add` of cli.main."""
    featurestore = add(
        "featurestore", lambda args: None, "manage the online feature store"
    )
    actions = featurestore.add_subparsers(dest="featurestore_command", required=True)
    load = actions.add_parser(
        "load",
        help="load a Parquet/CSV table into Redis",
        description="load a Parquet/CSV table into Redis, one hash per row",
    )
    load.set_defaults(handler=cmd_featurestore_load)
    load.add_argument("--input_path", required=True, help="a Parquet or CSV file")
    load.add_argument("--table", required=True, choices=["items", "users"])
    load.add_argument(
        "--id_column", required=True, help="the id column, e.g. adgroup_id"
    )
    load.add_argument("--redis_url", default=DEFAULT_REDIS_URL)
    load.add_argument("--prefix", default=DEFAULT_PREFIX, help="key prefix")
    load.add_argument("--batch_size", type=int, default=1000, help="rows per pipeline")
