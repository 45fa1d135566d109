"""The `recship` command: one thin sub-command per stage.

Each command parses its flags, loads the config, calls one library function
and prints a short summary. Errors the library raises on purpose print one
`Error:` line and exit 1.
"""

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from recship.cli.featurestore import add_featurestore_commands
from recship.errors import RecshipError

logger = logging.getLogger(__name__)


def _load_config(args: argparse.Namespace):
    from recship.config.loader import load_pipeline_config

    config = load_pipeline_config(args.pipeline_config_path)
    for field in ("model_dir", "train_input_path", "eval_input_path"):
        value = getattr(args, field, None)
        if value:
            setattr(config, field, value)
    return config


def cmd_train(args: argparse.Namespace) -> None:
    from recship.training.trainer import train_and_evaluate

    config = _load_config(args)
    if args.num_steps is not None:
        config.train_config.num_steps = args.num_steps
    result = train_and_evaluate(config, progress=not args.no_progress)
    print(
        f"trained to step {result.step} ({result.examples_per_sec:.0f} examples/s); "
        f"checkpoint {result.checkpoint}"
    )
    if result.metrics:
        print("eval: " + json.dumps(result.metrics))


def cmd_eval(args: argparse.Namespace) -> None:
    from recship.training.trainer import evaluate

    config = _load_config(args)
    metrics = evaluate(
        config, args.checkpoint_path, eval_input_path=args.eval_input_path
    )
    print("eval: " + json.dumps(metrics))


def cmd_export(args: argparse.Namespace) -> None:
    from recship.config.settings import (
        resolve_flag,
        resolve_input_tile,
        resolve_quant_mode,
    )
    from recship.export.exporter import ExportOptions, export_model

    config = _load_config(args)
    if args.report:
        _export_report(config, args)
        return
    options = ExportOptions(
        quant_emb=resolve_quant_mode(args.quant_emb, "QUANT_EMB"),
        quant_ec_emb=resolve_quant_mode(args.quant_ec_emb, "QUANT_EC_EMB"),
        sample_input_path=args.sample_input_path,
        input_tile=resolve_input_tile(args.input_tile),
        enable_aot=resolve_flag(args.enable_aot, "ENABLE_AOT"),
        aot_keep_slower=args.aot_keep_slower,
    )
    result = export_model(config, args.export_dir, args.checkpoint_path, options)
    if result.aot:
        print(f"aot: {json.dumps(result.aot)}")
    print(
        f"exported {result.export_dir} from {result.checkpoint}: {result.bytes} bytes, "
        f"max prob diff vs checkpoint {result.max_prob_diff:.2e} "
        f"(limit {result.tolerance})"
    )


def _export_report(config, args: argparse.Namespace) -> None:
    from pathlib import Path

    from recship.export.report import build_quant_report, format_report

    reports = build_quant_report(config, args.export_dir, args.checkpoint_path)
    table = format_report(reports)
    (Path(args.export_dir) / "quant_report.md").write_text(table)
    print(table, end="")
    print(f"per-mode exports and quant_report.md in {args.export_dir}")


def cmd_predict(args: argparse.Namespace) -> None:
    from recship.predict.predictor import PredictOptions, predict

    options = PredictOptions(
        reserved_columns=_split(args.reserved_columns),
        output_columns=_split(args.output_columns),
        batch_size=args.batch_size,
        predict_threads=args.predict_threads,
        dataset_type=args.dataset_type,
        writer_type=args.writer_type,
        predict_steps=args.predict_steps,
        is_profiling=args.is_profiling,
        progress=not args.no_progress,
        checkpoint_path=args.checkpoint_path,
        pipeline_config_path=args.pipeline_config_path,
    )
    result = predict(
        args.scripted_model_path,
        args.predict_input_path,
        args.predict_output_path,
        options,
    )
    if result.profile_summary:
        print(result.profile_summary)
        print(f"profiler trace: {result.profile_trace}")
    print(
        f"scored {result.rows} rows ({result.rows_per_sec:.0f} rows/s) "
        f"into {result.part_file}"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from recship.serving.settings import settings_from_args
    from recship.serving.supervisor import run_service

    # --scripted_model_path and --service_name are the older names of
    # --model_path and --name.
    args.model_path = args.model_path or args.scripted_model_path
    args.name = args.name or args.service_name
    run_service(settings_from_args(args))


def cmd_replay(args: argparse.Namespace) -> None:
    from recship.tools.replay import replay_requests

    report = replay_requests(
        args.input_path,
        args.url,
        concurrency=args.concurrency,
        repeat=args.repeat,
        timeout_s=args.timeout_s,
    )
    for path, status, text in report.failures[:10]:
        print(f"{path}: {status} {text}")
    print(report.summary())


def cmd_gen_data(args: argparse.Namespace) -> None:
    from recship.data.taobao import generate_taobao_dataset

    paths = generate_taobao_dataset(
        args.output_dir,
        num_rows=args.num_rows,
        num_users=args.num_users,
        num_items=args.num_items,
        seed=args.seed,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


def cmd_convert_taobao(args: argparse.Namespace) -> None:
    from recship.tools.taobao_real import convert_fuxictr_sample

    paths = convert_fuxictr_sample(args.input_path, args.output_dir)
    for name, path in paths.items():
        print(f"{name}: {path}")


def cmd_demo(args: argparse.Namespace) -> None:
    from recship.tools.demo import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            workdir=args.workdir,
            num_rows=args.num_rows,
            seed=args.seed,
            real_data=args.real_data,
            num_items=args.num_items,
        )
    )


def cmd_infer_data(args: argparse.Namespace) -> None:
    from recship.export.artifact import load_artifact
    from recship.tools import infer_data

    loaded = load_artifact(args.scripted_model_path)
    if args.input_path:
        requests = infer_data.requests_from_table(
            loaded,
            args.input_path,
            user_id_column=args.user_id_column,
            item_id_column=args.item_id_column,
            dataset_type=args.dataset_type,
            max_requests=args.num_requests,
            max_items=args.num_items,
        )
    else:
        requests = infer_data.synthetic_requests(
            loaded,
            num_requests=args.num_requests,
            num_items=args.num_items,
            seed=args.seed,
            item_id_column=args.item_id_column,
        )
    if args.output_dir:
        written = infer_data.write_requests(requests, args.output_dir)
        print(
            f"wrote {len(requests)} requests ({len(written)} files) to "
            f"{args.output_dir}"
        )
    if args.show is not None:
        shown = infer_data.show_request(loaded, requests[args.show])
        print(infer_data.format_shown(shown))


def cmd_bench_serve(args: argparse.Namespace) -> None:
    from recship.tools.bench.harness import BenchOptions, run_bench

    options = BenchOptions(
        workdir=args.workdir,
        num_rows=args.num_rows,
        checkpoint=args.checkpoint_path,
        max_requests=args.max_requests,
        max_seconds=args.max_seconds,
        workers=args.workers,
        worker_threads=args.worker_threads,
        torch_threads=args.torch_threads,
        torchserve=not args.no_torchserve,
        item_counts=tuple(int(v) for v in _split(args.item_counts)),
        concurrency=tuple(int(v) for v in _split(args.concurrency)),
    )
    if args.config:
        options.config_path = args.config
    result = run_bench(options)
    print(f"written: {result.outputs['markdown']}, {result.outputs['plot']}")


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline_config_path", required=True)
    parser.add_argument("--model_dir", help="overrides model_dir of the config")
    parser.add_argument("--train_input_path", help="overrides the config's path")
    parser.add_argument("--eval_input_path", help="overrides the config's path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recship", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--log_level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    train = add("train", cmd_train, "train and evaluate a model from a pipeline config")
    _add_config_flags(train)
    train.add_argument("--num_steps", type=int, help="overrides train_config.num_steps")
    train.add_argument("--no_progress", action="store_true")

    evaluate = add("eval", cmd_eval, "evaluate a checkpoint on the eval data")
    _add_config_flags(evaluate)
    evaluate.add_argument("--checkpoint_path", help="default: model_dir's latest")

    export = add("export", cmd_export, "export a checkpoint for serving")
    _add_config_flags(export)
    export.add_argument("--export_dir", required=True)
    export.add_argument("--checkpoint_path", help="default: model_dir's latest")
    export.add_argument(
        "--quant_emb", help="pooled tables: FP32 FP16 INT8 INT4 INT2 (QUANT_EMB)"
    )
    export.add_argument(
        "--quant_ec_emb", help="sequence tables, same modes (QUANT_EC_EMB)"
    )
    export.add_argument("--sample_input_path", help="rows to verify the export on")
    export.add_argument(
        "--input_tile",
        type=int,
        help="user-feature tiling: 0 none, 2 user FG once, 3 user embeddings "
        "once too (INPUT_TILE)",
    )
    export.add_argument(
        "--enable_aot",
        action="store_true",
        default=None,
        help="AOT-compile the dense part, kept where faster (ENABLE_AOT)",
    )
    export.add_argument(
        "--aot_keep_slower", action="store_true", help="keep AOT even if slower"
    )
    export.add_argument(
        "--report",
        action="store_true",
        help="export every quantization mode under --export_dir and print "
        "size and AUC per mode",
    )

    pred = add("predict", cmd_predict, "score a table offline with an export")
    pred.add_argument(
        "--scripted_model_path", help="the export directory (local or fsspec URL)"
    )
    pred.add_argument(
        "--checkpoint_path", help="score this checkpoint instead (default latest)"
    )
    pred.add_argument(
        "--pipeline_config_path", help="the checkpoint's config (no export needed)"
    )
    pred.add_argument("--predict_input_path", required=True)
    pred.add_argument("--predict_output_path", required=True, help="output directory")
    pred.add_argument(
        "--reserved_columns", help="input columns to copy, comma-separated"
    )
    pred.add_argument("--output_columns", help="model outputs to write (default all)")
    pred.add_argument("--batch_size", type=int, default=1024)
    pred.add_argument(
        "--predict_threads", type=int, default=1, help="batches scored at once"
    )
    pred.add_argument("--dataset_type", default="ParquetDataset")
    pred.add_argument("--writer_type", default="ParquetWriter")
    pred.add_argument("--predict_steps", type=int, default=0)
    pred.add_argument(
        "--is_profiling", action="store_true", help="write a torch profiler trace"
    )
    pred.add_argument("--no_progress", action="store_true")

    serve = add("serve", cmd_serve, "serve an export over HTTP")
    serve.add_argument("--scripted_model_path", help="the export directory")
    serve.add_argument("--service_name", help="same as --name")
    # Every service option (docs/serving.md) as a flag; flags win over the
    # --service_config file.
    from recship.serving.settings import add_service_flags

    add_service_flags(serve)

    replay = add("replay", cmd_replay, "send saved requests to a server")
    replay.add_argument(
        "--input_path", required=True, help="a saved request, or a directory"
    )
    replay.add_argument(
        "--url", required=True, help="http://HOST:PORT/api/predict/<service>"
    )
    replay.add_argument("--concurrency", type=int, default=1)
    replay.add_argument("--repeat", type=int, default=1)
    replay.add_argument("--timeout_s", type=float, default=30.0)

    gen = add("gen-data", cmd_gen_data, "generate Taobao-schema train/eval/item data")
    gen.add_argument("--output_dir", required=True)
    gen.add_argument("--num_rows", type=int, default=200_000)
    gen.add_argument("--num_users", type=int, default=20_000)
    gen.add_argument("--num_items", type=int, default=50_000)
    gen.add_argument("--seed", type=int, default=0)

    conv = add(
        "convert-taobao",
        cmd_convert_taobao,
        "convert the real Taobao sample CSV (FuxiCTR layout) to recship's schema",
    )
    conv.add_argument("--input_path", required=True)
    conv.add_argument("--output_dir", required=True)

    infer = add(
        "infer-data",
        cmd_infer_data,
        "write rank requests (protobuf and JSON) from a table or synthetic values, "
        "and show one scored online and offline",
    )
    infer.add_argument(
        "--scripted_model_path", required=True, help="the export directory"
    )
    infer.add_argument("--input_path", help="table of real rows (default synthetic)")
    infer.add_argument("--dataset_type", default="ParquetDataset")
    infer.add_argument("--user_id_column", default="user_id")
    infer.add_argument("--item_id_column", default="adgroup_id")
    infer.add_argument("--num_requests", type=int, default=10)
    infer.add_argument("--num_items", type=int, default=200, help="items per request")
    infer.add_argument("--seed", type=int, default=0)
    infer.add_argument("--output_dir", help="where to write request-<n>.pb/.json")
    infer.add_argument("--show", type=int, help="print request N's features and scores")

    demo = add("demo", cmd_demo, "the whole chain: data, train, export, predict, serve")
    demo.add_argument("--workdir", default="runs/demo")
    demo.add_argument("--num_rows", type=int, default=200_000)
    demo.add_argument(
        "--num_items", type=int, default=200, help="candidates per request"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--real_data", help="run on this real Taobao sample CSV instead")

    bench = add("bench", None, "benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_serve = bench_commands.add_parser(
        "serve",
        help="recship serve against the model's forward and TorchServe",
        description="recship serve against the model's forward and TorchServe",
    )
    bench_serve.set_defaults(handler=cmd_bench_serve)
    bench_serve.add_argument("--workdir", default="runs/bench")
    bench_serve.add_argument("--config", help="pipeline config (default: example)")
    bench_serve.add_argument("--num_rows", type=int, default=20_000)
    bench_serve.add_argument(
        "--checkpoint_path", help="export this checkpoint instead of training"
    )
    bench_serve.add_argument("--item_counts", default="200,1000")
    bench_serve.add_argument("--concurrency", default="1,4,16")
    bench_serve.add_argument("--max_requests", type=int, default=300)
    bench_serve.add_argument("--max_seconds", type=float, default=20.0)
    bench_serve.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server processes of recship (--workers) and of TorchServe",
    )
    bench_serve.add_argument(
        "--worker_threads", type=int, default=1, help="recship threads per process"
    )
    bench_serve.add_argument("--torch_threads", type=int, default=1)
    bench_serve.add_argument(
        "--no_torchserve", action="store_true", help="bench recship only"
    )

    add_featurestore_commands(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.handler(args)
    except RecshipError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
