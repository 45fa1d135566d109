"""Offline batch scoring with an exported model.

Reads rows (Parquet or CSV), runs the artifact's FG and scripted model, and
writes the chosen output columns next to reserved input columns, as
TorchEasyRec's predict does. Each rank writes its own part file, so several
`torchrun` ranks score disjoint parts of the input.
"""

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import torch
from tqdm import tqdm

from recship.data.reader import iter_batches, resolve_paths, write_table
from recship.errors import DataError
from recship.export.artifact import load_artifact
from recship.features.fg import generate_tensors

logger = logging.getLogger(__name__)


@dataclass
class PredictOptions:
    """Options of `recship predict` (TorchEasyRec's names)."""

    reserved_columns: list[str] = field(default_factory=list)
    output_columns: list[str] = field(default_factory=list)
    batch_size: int = 1024
    dataset_type: str = "ParquetDataset"
    writer_type: str = "ParquetWriter"
    predict_steps: int = 0
    progress: bool = True


@dataclass
class PredictResult:
    output_path: str
    rows: int
    rows_per_sec: float


def _part_name(rank: int, writer_type: str) -> str:
    return f"part-{rank:05d}.{'csv' if writer_type == 'CsvWriter' else 'parquet'}"


def predict(
    scripted_model_path: str | Path,
    predict_input_path: str,
    predict_output_path: str | Path,
    options: PredictOptions | None = None,
) -> PredictResult:
    """Score `predict_input_path` with an export; write part files to the output dir."""
    options = options or PredictOptions()
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    loaded = load_artifact(scripted_model_path)
    outputs = options.output_columns or loaded.output_names
    resolve_paths(
        predict_input_path, options.dataset_type
    )  # fails early, naming the path

    # Stream batches: FG, model, then keep reserved inputs and chosen outputs.
    columns = list(
        dict.fromkeys(loaded.generator.input_columns + options.reserved_columns)
    )
    batches = iter_batches(
        predict_input_path,
        dataset_type=options.dataset_type,
        batch_size=options.batch_size,
        columns=columns,
        rank=rank,
        world_size=world_size,
    )
    tables, rows, started = [], 0, time.perf_counter()
    bar = tqdm(desc="predict", unit="row", disable=not options.progress)
    for step, batch in enumerate(batches):
        if options.predict_steps and step >= options.predict_steps:
            break
        with torch.no_grad():
            scores = loaded.model(generate_tensors(loaded.generator, batch))
        missing = [name for name in outputs if name not in scores]
        if missing:
            raise DataError(
                f"output column(s) {missing} are not model outputs {sorted(scores)}"
            )
        arrays = {name: batch.column(name) for name in options.reserved_columns}
        arrays.update({name: pa.array(scores[name].numpy()) for name in outputs})
        tables.append(pa.table(arrays))
        rows += batch.num_rows
        bar.update(batch.num_rows)
    bar.close()
    elapsed = time.perf_counter() - started

    output_dir = Path(predict_output_path)
    output_dir.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [(n, pa.float32()) for n in outputs] if not tables else tables[0].schema
    )
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    part = output_dir / _part_name(rank, options.writer_type)
    write_table(table, str(part), writer_type=options.writer_type)
    rate = rows / elapsed if elapsed > 0 else 0.0
    logger.info("predicted %d rows at %.0f rows/s into %s", rows, rate, part)
    return PredictResult(str(output_dir), rows, rate)
