"""Offline batch scoring with an export or a checkpoint.

Reads rows (Parquet or CSV), runs FG and the model, and writes the chosen
output columns next to reserved input columns, as TorchEasyRec's predict
does. Under `torchrun` each rank reads its own contiguous part of the input
(`RANK`/`WORLD_SIZE`) and writes its own part file `part-<rank>`, so the
part files in rank order are exactly a one-process run's output.
"""

import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import torch
from tqdm import tqdm

from recship.data.reader import iter_batches, resolve_paths, write_table
from recship.errors import ConfigError, DataError
from recship.features.fg import generate_tensors
from recship.predict.profiling import Profiler
from recship.predict.scorer import Scorer, load_scorer

logger = logging.getLogger(__name__)


@dataclass
class PredictOptions:
    """Options of `recship predict` (TorchEasyRec's names).

    Attributes:
        reserved_columns: input columns copied to the output.
        output_columns: model outputs to write; empty means all.
        batch_size: rows per model call.
        predict_threads: batches in FG and the model at once; the output
            keeps input order whatever the number.
        dataset_type: "ParquetDataset" or "CsvDataset".
        writer_type: "ParquetWriter" or "CsvWriter".
        predict_steps: stop after this many batches; 0 means all.
        is_profiling: record a torch profiler trace into the output dir.
        progress: show a progress bar with rows per second.
        checkpoint_path: score a checkpoint instead of an export (with
            pipeline_config_path); a model_dir means its latest checkpoint.
        pipeline_config_path: the checkpoint's pipeline config.
    """

    reserved_columns: list[str] = field(default_factory=list)
    output_columns: list[str] = field(default_factory=list)
    batch_size: int = 1024
    predict_threads: int = 1
    dataset_type: str = "ParquetDataset"
    writer_type: str = "ParquetWriter"
    predict_steps: int = 0
    is_profiling: bool = False
    progress: bool = True
    checkpoint_path: str | None = None
    pipeline_config_path: str | None = None


@dataclass
class PredictResult:
    """What a predict run (one rank) wrote.

    Attributes:
        output_path: the output directory.
        part_file: this rank's part file.
        rows: rows scored by this rank.
        rows_per_sec: this rank's throughput, reading to writing.
        profile_trace: the Chrome trace file, when profiling.
        profile_summary: where the time went, as a table, when profiling.
    """

    output_path: str
    part_file: str
    rows: int
    rows_per_sec: float
    profile_trace: str | None = None
    profile_summary: str | None = None


def _part_name(rank: int, writer_type: str) -> str:
    return f"part-{rank:05d}.{'csv' if writer_type == 'CsvWriter' else 'parquet'}"


def _score_batch(
    scorer: Scorer,
    batch: pa.RecordBatch,
    options: PredictOptions,
    outputs: list[str],
    profiler: Profiler,
) -> pa.Table:
    with profiler.step("fg"):
        inputs = generate_tensors(scorer.generator, batch)
    with profiler.step("model"), torch.no_grad():
        scores = scorer.model(inputs)
    missing = [name for name in outputs if name not in scores]
    if missing:
        raise DataError(
            f"output column(s) {missing} are not model outputs {sorted(scores)}"
        )
    arrays = {name: batch.column(name) for name in options.reserved_columns}
    arrays.update({name: pa.array(scores[name].numpy()) for name in outputs})
    return pa.table(arrays)


def _scored_in_order(
    batches: Iterator[pa.RecordBatch],
    score,
    threads: int,
) -> Iterator[pa.Table]:
    """`score` over `batches` on `threads` threads, yielded in input order."""
    if threads <= 1:
        yield from (score(batch) for batch in batches)
        return
    # A bounded window of futures: reading stays a few batches ahead.
    with ThreadPoolExecutor(threads, thread_name_prefix="predict") as pool:
        window: deque[Future] = deque()
        for batch in batches:
            window.append(pool.submit(score, batch))
            if len(window) >= 2 * threads:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def predict(
    scripted_model_path: str | Path | None,
    predict_input_path: str,
    predict_output_path: str | Path,
    options: PredictOptions | None = None,
) -> PredictResult:
    """Score `predict_input_path`; write this rank's part file to the output dir.

    Args:
        scripted_model_path: an export directory (local or fsspec URL), or
            None with options.checkpoint_path/pipeline_config_path.
        predict_input_path: files, globs or directories of rows.
        predict_output_path: the output directory.
        options: see `PredictOptions`.
    """
    options = options or PredictOptions()
    if options.predict_threads < 1:
        raise ConfigError(f"predict_threads is {options.predict_threads}; use >= 1")
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    scorer = load_scorer(
        scripted_model_path,
        checkpoint_path=options.checkpoint_path,
        pipeline_config_path=options.pipeline_config_path,
    )
    outputs = options.output_columns or scorer.output_names
    resolve_paths(predict_input_path, options.dataset_type)  # fails early
    output_dir = Path(predict_output_path)
    output_dir.mkdir(parents=True, exist_ok=True)

    # Stream batches through FG and the model, keeping reserved inputs.
    columns = list(
        dict.fromkeys(scorer.generator.input_columns + options.reserved_columns)
    )
    batches = iter_batches(
        predict_input_path,
        dataset_type=options.dataset_type,
        batch_size=options.batch_size,
        columns=columns,
        rank=rank,
        world_size=world_size,
    )
    if options.predict_steps:
        batches = itertools.islice(batches, options.predict_steps)
    profiler = Profiler(options.is_profiling)
    tables, rows, started = [], 0, time.perf_counter()
    bar = tqdm(desc=f"predict[{rank}]", unit="row", disable=not options.progress)
    with profiler:
        scored = _scored_in_order(
            batches,
            lambda batch: _score_batch(scorer, batch, options, outputs, profiler),
            options.predict_threads,
        )
        for table in scored:
            tables.append(table)
            rows += table.num_rows
            bar.update(table.num_rows)
        bar.close()

        # Write this rank's part file, even when its part of the input is empty.
        with profiler.step("write"):
            schema = pa.schema(
                [(n, pa.float32()) for n in outputs] if not tables else tables[0].schema
            )
            table = pa.concat_tables(tables) if tables else schema.empty_table()
            part = output_dir / _part_name(rank, options.writer_type)
            write_table(table, str(part), writer_type=options.writer_type)
    elapsed = time.perf_counter() - started

    rate = rows / elapsed if elapsed > 0 else 0.0
    logger.info("predicted %d rows at %.0f rows/s into %s", rows, rate, part)
    result = PredictResult(str(output_dir), str(part), rows, rate)
    if options.is_profiling:
        trace = output_dir / f"profile-{rank:05d}.json"
        result.profile_trace, result.profile_summary = profiler.save(trace)
    return result
