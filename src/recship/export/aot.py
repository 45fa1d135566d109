"""AOT compilation of the dense part of a model with AOTInductor.

The model splits at its embedding lookups: the sparse part (TorchRec's
quantized embedding collections, `model.embedding`) stays TorchScript, and
everything after it (towers, DIN attention, final MLP) is exported with
`torch.export` and compiled ahead of time to a `.pt2` package by
AOTInductor. Batch size B and sequence length T stay dynamic.

An artifact with AOT holds, beside the plain `scripted_model.pt`:

    aot/sparse_model.pt   TorchScript: inputs -> {group: [B, D], seq: [B, T, D]}
    aot/dense_model.pt2   AOTInductor package: that dict -> model outputs

Export benchmarks both paths on the same rows and keeps the AOT files only
when they are faster (`model_acc.json` records the ratio either way).
"""

import copy
import logging
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from recship.errors import ExportError

logger = logging.getLogger(__name__)

AOT_DIR = "aot"
SPARSE_FILE = f"{AOT_DIR}/sparse_model.pt"
DENSE_FILE = f"{AOT_DIR}/dense_model.pt2"

# NOTE: an AOTInductor package serves as many concurrent calls as it has
# runners; the server's worker threads call it at once.
NUM_RUNNERS = 4

Inputs = dict[str, torch.Tensor]


class _Passthrough(nn.Module):
    """Stands in for the embedding lookups: the inputs are already looked up."""

    def forward(self, grouped: Inputs) -> Inputs:
        return grouped


def split_dense(model: nn.Module) -> nn.Module:
    """The model after its lookups: `forward(grouped) -> outputs`.

    A shallow copy of `model` whose `embedding` returns its input, so the
    model's own forward runs the dense part; weights are shared.

    Raises:
        ExportError: the model keeps its lookups elsewhere than `.embedding`.
    """
    if not isinstance(getattr(model, "embedding", None), nn.Module):
        raise ExportError(
            f"AOT needs the model's embedding lookups in `.embedding`; "
            f"{type(model).__name__} has none. Export without --enable_aot."
        )
    dense = copy.copy(model)
    dense._modules = dict(model._modules)
    dense._modules["embedding"] = _Passthrough()
    return dense


def _dynamic_shapes(grouped: Inputs) -> dict[str, dict[int, torch.export.Dim]]:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    steps: dict[str, torch.export.Dim] = {}
    shapes = {}
    for name, tensor in grouped.items():
        dims = {0: batch}
        if tensor.dim() == 3:
            group = name.rsplit(".", 1)[0]
            safe = "".join(c if c.isalnum() else "_" for c in group)
            steps.setdefault(group, torch.export.Dim(f"steps_{safe}", min=1, max=4096))
            dims[1] = steps[group]
        shapes[name] = dims
    return shapes


def compile_dense(dense: nn.Module, grouped: Inputs, package_path: Path) -> None:
    """`torch.export` the dense part on `grouped` and AOT-compile it.

    Args:
        dense: from `split_dense`.
        grouped: sample lookups, B >= 2 rows ([B, D] and [B, T, D] tensors).
        package_path: the `.pt2` file to write.

    Raises:
        ExportError: export or compilation failed; the message has the cause.
    """
    package_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # torch's own pytree code warns about its deprecated LeafSpec check
            # while packaging; it concerns torch internals, not this model.
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(
                dense, (grouped,), dynamic_shapes=(_dynamic_shapes(grouped),)
            )
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(package_path)
            )
    except Exception as exc:  # noqa: BLE001 - any compiler failure is reported
        raise ExportError(
            f"AOTInductor could not compile the dense part: "
            f"{type(exc).__name__}: {str(exc)[:2000]}. Export without --enable_aot."
        ) from exc


def load_dense(package_path: Path) -> Callable[[Inputs], Inputs]:
    """Load an AOTInductor package for CPU inference."""
    from torch._inductor.package import load_package

    return load_package(str(package_path), num_runners=NUM_RUNNERS)


class AotModel:
    """The TorchScript sparse part followed by the AOT-compiled dense part.

    Called like the scripted model: `model(inputs) -> {"probs": [B], ...}`.
    """

    def __init__(
        self, sparse: torch.jit.ScriptModule, dense: Callable[[Inputs], Inputs]
    ) -> None:
        self.sparse = sparse
        self.dense = dense

    def __call__(self, inputs: Inputs) -> Inputs:
        return self.dense(self.sparse(inputs))

    def eval(self) -> "AotModel":
        self.sparse.eval()
        return self


def load_aot_model(export_dir: Path) -> AotModel:
    """The AOT model of an export directory that kept its AOT files."""
    sparse = torch.jit.load(str(export_dir / SPARSE_FILE), map_location="cpu")
    sparse.eval()
    return AotModel(sparse, load_dense(export_dir / DENSE_FILE))


@dataclass
class AotBenchmark:
    """Median seconds per call of both paths on the same inputs."""

    scripted_s: float
    aot_s: float
    calls: int

    @property
    def speedup(self) -> float:
        """scripted time / AOT time; above 1 means AOT is faster."""
        return self.scripted_s / self.aot_s if self.aot_s > 0 else 0.0


def _median_time(model: Callable[[Inputs], Inputs], batches: list[Inputs]) -> float:
    times = []
    with torch.no_grad():
        for inputs in batches:
            started = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_aot(
    scripted: Callable[[Inputs], Inputs],
    aot: Callable[[Inputs], Inputs],
    batches: list[Inputs],
    *,
    rounds: int = 5,
) -> AotBenchmark:
    """Time both models on the same batches, interleaved, after a warm-up.

    The warm-up is long on purpose: TorchScript's profiling executor
    re-optimizes over its first calls, and each AOTInductor runner is slow
    on its first call.
    """
    for model in (scripted, aot):
        for _ in range(4):
            _median_time(model, batches)
    scripted_times, aot_times = [], []
    for _ in range(rounds):
        scripted_times.append(_median_time(scripted, batches))
        aot_times.append(_median_time(aot, batches))
    return AotBenchmark(
        statistics.median(scripted_times),
        statistics.median(aot_times),
        rounds * len(batches),
    )


def build_aot(
    export_dir: Path,
    quantized: nn.Module,
    scripted: torch.jit.ScriptModule,
    inputs: Inputs,
    *,
    keep_slower: bool = False,
    rounds: int = 5,
) -> dict:
    """Write the AOT files of an export, check and benchmark them.

    Args:
        export_dir: the (staging) export directory.
        quantized: the quantized eager model `scripted` was made from.
        scripted: the plain TorchScript model, the reference.
        inputs: FG output of one request's rows (B >= 2).
        keep_slower: keep the AOT files even where they are not faster.
        rounds: benchmark rounds.

    Returns:
        The `aot` record of model_acc.json: kept, speedup, times.

    Raises:
        ExportError: compilation failed or the AOT scores differ.
    """
    # Script the sparse part and compile the dense part on its output.
    from torchrec.fx import symbolic_trace

    sparse = torch.jit.script(symbolic_trace(quantized.embedding))
    (export_dir / AOT_DIR).mkdir(exist_ok=True)
    sparse.save(str(export_dir / SPARSE_FILE))
    with torch.no_grad():
        grouped = sparse(inputs)
        compile_dense(split_dense(quantized), grouped, export_dir / DENSE_FILE)

    # Same scores as the scripted model, then which is faster.
    model = load_aot_model(export_dir)
    with torch.no_grad():
        want, got = scripted(inputs), model(inputs)
    diff = max(float((got[k] - want[k]).abs().max()) for k in want)
    if diff > 1e-4:
        raise ExportError(
            f"the AOT-compiled model's outputs differ from TorchScript's by {diff:.2e}"
        )
    batches = [inputs] * 10
    bench = bench_aot(scripted, model, batches, rounds=rounds)
    kept = keep_slower or bench.speedup > 1.0
    if not kept:
        for name in (SPARSE_FILE, DENSE_FILE):
            (export_dir / name).unlink()
        (export_dir / AOT_DIR).rmdir()
    logger.info(
        "AOT model: %.3f ms vs TorchScript %.3f ms per %d-row call (x%.2f); %s",
        bench.aot_s * 1e3,
        bench.scripted_s * 1e3,
        len(next(iter(grouped.values()))),
        bench.speedup,
        "kept" if kept else "dropped (not faster)",
    )
    return {
        "enabled": True,
        "kept": kept,
        "speedup": round(bench.speedup, 4),
        "scripted_ms": round(bench.scripted_s * 1e3, 4),
        "aot_ms": round(bench.aot_s * 1e3, 4),
        "bench_rows": int(len(next(iter(grouped.values())))),
        "max_abs_diff": diff,
    }
