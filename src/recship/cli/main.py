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
    from recship.config.settings import resolve_quant_mode
    from recship.export.exporter import ExportOptions, export_model

    config = _load_config(args)
    options = ExportOptions(
        quant_emb=resolve_quant_mode(args.quant_emb, "QUANT_EMB"),
        quant_ec_emb=resolve_quant_mode(args.quant_ec_emb, "QUANT_EC_EMB"),
        sample_input_path=args.sample_input_path,
    )
    result = export_model(config, args.export_dir, args.checkpoint_path, options)
    print(
        f"exported {result.export_dir} from {result.checkpoint}: {result.bytes} bytes, "
        f"max prob diff vs checkpoint {result.max_prob_diff:.2e} "
        f"(limit {result.tolerance})"
    )


def cmd_predict(args: argparse.Namespace) -> None:
    from recship.predict.predictor import PredictOptions, predict

    options = PredictOptions(
        reserved_columns=_split(args.reserved_columns),
        output_columns=_split(args.output_columns),
        batch_size=args.batch_size,
        dataset_type=args.dataset_type,
        writer_type=args.writer_type,
        predict_steps=args.predict_steps,
        progress=not args.no_progress,
    )
    result = predict(
        args.scripted_model_path,
        args.predict_input_path,
        args.predict_output_path,
        options,
    )
    print(
        f"scored {result.rows} rows ({result.rows_per_sec:.0f} rows/s) "
        f"into {result.output_path}"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from recship.serving.app import build_app
    from recship.serving.server import run_server
    from recship.serving.service import ServiceOptions, build_ranker

    ranker = build_ranker(
        ServiceOptions(
            export_dir=args.scripted_model_path,
            item_table=args.item_table,
            item_id_column=args.item_id_column,
            item_empty_score=args.item_empty_score,
        )
    )
    app = build_app(
        ranker,
        service_name=args.service_name,
        worker_threads=args.worker_threads,
        max_queue_size=args.max_queue_size,
    )
    run_server(app, host=args.host, port=args.port)


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

    pred = add("predict", cmd_predict, "score a table offline with an export")
    pred.add_argument(
        "--scripted_model_path", required=True, help="the export directory"
    )
    pred.add_argument("--predict_input_path", required=True)
    pred.add_argument("--predict_output_path", required=True, help="output directory")
    pred.add_argument(
        "--reserved_columns", help="input columns to copy, comma-separated"
    )
    pred.add_argument("--output_columns", help="model outputs to write (default all)")
    pred.add_argument("--batch_size", type=int, default=1024)
    pred.add_argument("--dataset_type", default="ParquetDataset")
    pred.add_argument("--writer_type", default="ParquetWriter")
    pred.add_argument("--predict_steps", type=int, default=0)
    pred.add_argument("--no_progress", action="store_true")

    serve = add("serve", cmd_serve, "serve an export over HTTP")
    serve.add_argument(
        "--scripted_model_path", required=True, help="the export directory"
    )
    serve.add_argument("--item_table", help="Parquet/CSV item features (in memory)")
    serve.add_argument("--item_id_column", help="id column of the item table")
    serve.add_argument("--item_empty_score", type=float, default=0.0)
    serve.add_argument("--service_name", default="recship")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--worker_threads", type=int, default=4)
    serve.add_argument("--max_queue_size", type=int, default=64)

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

    demo = add("demo", cmd_demo, "the whole chain: data, train, export, predict, serve")
    demo.add_argument("--workdir", default="runs/demo")
    demo.add_argument("--num_rows", type=int, default=200_000)
    demo.add_argument(
        "--num_items", type=int, default=200, help="candidates per request"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--real_data", help="run on this real Taobao sample CSV instead")
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
