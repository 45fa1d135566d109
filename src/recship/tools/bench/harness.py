"""`recship bench serve`: recship's server against its own model and TorchServe.

Steps, in one run on one machine: generate data, train the example model
once, export it twice from the same checkpoint (recship: INT8 embeddings
and INPUT_TILE=3; baseline: FP32, untiled), time each model's forward on
prepared tensors, then start each server in turn (cold start to ready,
first request, closed-loop load at each concurrency and request size, RSS)
and write `bench.md`, `bench.json` and `bench.png`.
"""

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recship.config.loader import load_pipeline_config, save_pipeline_config
from recship.data.taobao import generate_taobao_dataset
from recship.errors import RecshipError
from recship.tools.bench import forward, report, servers
from recship.tools.bench.workload import (
    LoadResult,
    build_rank_body,
    first_request_ms,
    run_load,
)

logger = logging.getLogger(__name__)

EXAMPLE_CONFIG = servers.REPO_ROOT / "examples" / "multi_tower_din_taobao.config"


@dataclass
class BenchOptions:
    """What to bench and how hard.

    Attributes:
        workdir: data, model, exports and outputs go here.
        config_path: pipeline config to train (the example by default).
        num_rows: generated training rows.
        checkpoint: a trained checkpoint to export instead of training; its
            config's data paths are used.
        item_counts: N of the requests.
        concurrency: client thread counts.
        max_requests: requests per level, at most.
        max_seconds: seconds per level, at most.
        workers: server processes of each server: recship's `--workers`
            (processes sharing the port) and TorchServe's worker processes.
        worker_threads: recship's rank threads per process. One is best on
            a small machine: a process's threads share one GIL (FG and the
            app are Python), so parallelism comes from processes, as
            TorchServe's does.
        torch_threads: intra-op threads per worker, in both servers.
        torchserve: also bench TorchServe (needs scripts/setup_torchserve.sh).
        input_tile: recship export's INPUT_TILE mode.
        quant: recship export's embedding quantization.
    """

    workdir: str = "runs/bench"
    config_path: str = str(EXAMPLE_CONFIG)
    num_rows: int = 20_000
    checkpoint: str | None = None
    item_counts: tuple[int, ...] = (200, 1000)
    concurrency: tuple[int, ...] = (1, 4, 16)
    max_requests: int = 300
    max_seconds: float = 20.0
    workers: int = 2
    worker_threads: int = 1
    torch_threads: int = 1
    torchserve: bool = True
    input_tile: int = 3
    quant: str = "INT8"
    say: Callable[[str], None] = field(default=print, repr=False)


@dataclass
class BenchReport:
    """Everything one run measured."""

    results: dict[str, dict[tuple[int, int], LoadResult]] = field(default_factory=dict)
    forward_ms: dict[str, dict[int, float]] = field(default_factory=dict)
    cold_start_s: dict[str, float] = field(default_factory=dict)
    first_request_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)


def _prepare_model(options: BenchOptions, workdir: Path):
    """(config, eval path, items path, checkpoint) of a trained model."""
    from recship.training.trainer import train_and_evaluate

    config = load_pipeline_config(options.config_path)
    if options.checkpoint:
        items = str(Path(config.eval_input_path).with_name("items.parquet"))
        return config, config.eval_input_path, items, options.checkpoint
    options.say(f"data: {options.num_rows} generated rows")
    data = generate_taobao_dataset(str(workdir / "data"), num_rows=options.num_rows)
    config.train_input_path, config.eval_input_path = data["train"], data["eval"]
    config.model_dir = str(workdir / "model")
    save_pipeline_config(config, workdir / "pipeline.config")
    options.say("train: one pass over the generated rows")
    trained = train_and_evaluate(config, progress=sys.stderr.isatty())
    return config, data["eval"], data["items"], trained.checkpoint


def _export_both(options: BenchOptions, config, checkpoint: str, workdir: Path):
    from recship.export.exporter import ExportOptions, export_model

    ours = workdir / f"export-{options.quant.lower()}-tile{options.input_tile}"
    plain = workdir / "export-fp32-plain"
    for path, quant, tile in (
        (ours, options.quant, options.input_tile),
        (plain, "FP32", 0),
    ):
        if path.exists():
            raise RecshipError(f"{path} exists; pass a fresh --workdir")
        options.say(f"export: {path.name}")
        export_model(
            config,
            path,
            checkpoint,
            ExportOptions(quant_emb=quant, quant_ec_emb=quant, input_tile=tile),
        )
    return ours, plain


def _bench_server(options, server, bodies, bench: BenchReport) -> None:
    name = server.name
    bench.cold_start_s[name] = server.cold_start_s
    # Readiness includes recship's warm-up: the first request after it is
    # timed on an already open connection, like the steady ones.
    first = json.dumps(bodies[200 if 200 in bodies else min(bodies)]).encode()
    bench.first_request_ms[name] = first_request_ms(server.rank_url, first)
    results = bench.results.setdefault(name, {})
    for items, body in bodies.items():
        for concurrency in options.concurrency:
            result = run_load(
                server.rank_url,
                body,
                concurrency=concurrency,
                max_requests=options.max_requests,
                max_seconds=options.max_seconds,
            )
            results[(items, concurrency)] = result
            options.say(
                f"  {name} {items} items c={concurrency}: p50 "
                f"{result.percentile(50):.1f} ms p99 {result.percentile(99):.1f} ms "
                f"{result.items_per_s:,.0f} items/s ({result.errors} errors)"
            )
    bench.rss_mb[name] = server.rss_mb()


def run_bench(options: BenchOptions) -> BenchReport:
    """Run the benchmark; write bench.md, bench.json and bench.png."""
    workdir = Path(options.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bench = BenchReport()
    # NOTE: httpx logs every request at INFO; thousands of lines per level
    # would drown the bench's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if options.torchserve and not servers.torchserve_available():
        raise RecshipError(
            "TorchServe is not set up: run scripts/setup_torchserve.sh, or pass "
            "--no_torchserve"
        )

    # A trained checkpoint, exported twice.
    config, eval_path, items_path, checkpoint = _prepare_model(options, workdir)
    ours, plain = _export_both(options, config, checkpoint, workdir)
    bench.exports = {"recship": str(ours), "torchserve": str(plain)}
    bodies = {n: build_rank_body(eval_path, items_path, n) for n in options.item_counts}

    # The models' own forward time, with the servers' thread count.
    torch.set_num_threads(options.torch_threads)
    targets = (
        {"recship": ours, "torchserve": plain}
        if options.torchserve
        else {"recship": ours}
    )
    for name, export_dir in targets.items():
        bench.forward_ms[name] = {}
        for items, body in bodies.items():
            model, inputs = forward.prepare_inputs(str(export_dir), body, items_path)
            bench.forward_ms[name][items] = forward.time_forward(model, inputs)
        options.say(f"forward {name}: {bench.forward_ms[name]} ms")

    # Each server in turn, alone on the machine.
    starts = {
        "recship": lambda: servers.start_recship(
            ours,
            items_path,
            workdir,
            worker_threads=options.worker_threads,
            torch_threads=options.torch_threads,
            extra_args=["--workers", str(options.workers)],
        ),
        "torchserve": lambda: servers.start_torchserve(
            plain,
            items_path,
            workdir,
            workers=options.workers,
            torch_threads=options.torch_threads,
        ),
    }
    for name in targets:
        options.say(f"serve: {name}")
        server = starts[name]()
        try:
            _bench_server(options, server, bodies, bench)
        finally:
            server.stop()

    _write_outputs(bench, workdir)
    options.say(report.render_markdown(bench))
    return bench


def _write_outputs(bench: BenchReport, workdir: Path) -> None:
    markdown, plot = workdir / "bench.md", workdir / "bench.png"
    markdown.write_text(report.render_markdown(bench))
    report.save_plot(bench.results, plot)
    raw = {
        "results": {
            server: {
                f"{items}x{c}": {
                    "latencies_ms": r.latencies_ms,
                    "wall_s": r.wall_s,
                    "errors": r.errors,
                }
                for (items, c), r in results.items()
            }
            for server, results in bench.results.items()
        },
        "forward_ms": bench.forward_ms,
        "cold_start_s": bench.cold_start_s,
        "first_request_ms": bench.first_request_ms,
        "rss_mb": bench.rss_mb,
        "ratios": report.target_ratios(bench),
        "exports": bench.exports,
    }
    (workdir / "bench.json").write_text(json.dumps(raw, indent=2))
    bench.outputs = {"markdown": str(markdown), "plot": str(plot)}
