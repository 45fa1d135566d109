"""AOT compilation of the dense part of a model with AOTInductor.

The model splits at its embedding lookups: the sparse part (TorchRec's
quantized embedding collections, `model.embedding`) stays TorchScript, and
everything after it (towers, DIN attention, final MLP) is exported with
`torch.export` and compiled ahead of time to a `.pt2` package by
AOTInductor. Batch size B and sequence length T stay dynamic.

An artifact with AOT holds, beside the plain `scripted_model.pt`:

    aot/sparse_model.pt   TorchScript: inputs -> {group: [B, D], seq: [B, T, D]}
    aot/dense_model.pt2   AOTInductor package: that dict -> model outputs

A tiled model (INPUT_TILE, `recship.models.tiling`) splits the same way,
with its own two parts (`recship.models.tiled_split`): mode 2 expands the
user side before the lookups, in the sparse part; mode 3 hands the user side
over once (U rows) and the compiled dense part expands it and runs the split
DIN attention. Both accept the user side with batch 1 (a rank request) or B
(offline predict), as the tiled TorchScript model does.

Export benchmarks both paths on the same rows (one request, user side once
when tiled) and keeps the AOT files only when they are faster
(`model_acc.json` records the ratio either way).
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
from recship.models.tiled_split import (
    ROWS_KEY,
    ExpandedLookups,
    TiledDense,
    TiledLookups,
    user_side_keys,
)
from recship.models.tiling import TiledMultiTowerDIN

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


def split_model(model: nn.Module) -> tuple[nn.Module, nn.Module, list[str]]:
    """The sparse part, the dense part, and the dense inputs with U rows.

    Args:
        model: the quantized model, tiled (`TiledMultiTowerDIN`) or not.

    Returns:
        (sparse, dense, user_keys): `dense(sparse(inputs))` scores like
        `model(inputs)`; `user_keys` name the sparse outputs whose first
        dimension is U (user rows), not B.
    """
    if isinstance(model, TiledMultiTowerDIN):
        if model.mode == 2:
            return ExpandedLookups(model), split_dense(model.model), []
        return TiledLookups(model), TiledDense(model), user_side_keys(model)
    dense = split_dense(model)
    return model.embedding, dense, []


def _dynamic_shapes(
    grouped: Inputs, user_keys: list[str]
) -> dict[str, dict[int, torch.export.Dim]]:
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    users = torch.export.Dim("users", min=1, max=1 << 20)
    steps: dict[str, torch.export.Dim] = {}
    shapes = {}
    for name, tensor in grouped.items():
        dims = {0: users if name in user_keys else batch}
        if tensor.dim() == 3:
            group = name.rsplit(".", 1)[0]
            safe = "".join(c if c.isalnum() else "_" for c in group)
            steps.setdefault(group, torch.export.Dim(f"steps_{safe}", min=1, max=4096))
            dims[1] = steps[group]
        shapes[name] = dims
    return shapes


def compile_dense(
    dense: nn.Module,
    grouped: Inputs,
    package_path: Path,
    user_keys: list[str] | None = None,
) -> None:
    """`torch.export` the dense part on `grouped` and AOT-compile it.

    Args:
        dense: from `split_dense` or `split_model`.
        grouped: sample lookups, B >= 2 rows ([B, D] and [B, T, D] tensors);
            the `user_keys` tensors with U >= 2 rows, U != B.
        package_path: the `.pt2` file to write.
        user_keys: inputs whose first dimension is U, dynamic apart from B.

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
                dense,
                (grouped,),
                dynamic_shapes=(_dynamic_shapes(grouped, user_keys or []),),
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


def dense_inputs(grouped: Inputs) -> Inputs:
    """The sparse part's outputs as the compiled dense part must get them.

    NOTE: the compiled code indexes its inputs with the strides it was
    traced on and does not check them; a pooled lookup can come out as a
    strided view (a column block of TorchRec's KeyedTensor), so every input
    is made contiguous, at trace time and at call time alike.
    """
    return {name: tensor.contiguous() for name, tensor in grouped.items()}


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
        return self.dense(dense_inputs(self.sparse(inputs)))

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


def _compile_example(grouped: Inputs, user_keys: list[str]) -> Inputs:
    # torch.export fixes a size seen as 1, and may tie two sizes seen equal, so
    # the user side is traced with U = 2 rows, apart from B.
    if not user_keys:
        return grouped
    batch = int(grouped[ROWS_KEY].shape[0])
    if batch < 3:
        raise ExportError(
            f"AOT of a tiled model needs at least 3 sample rows, got {batch}; "
            "raise aot_bench_rows"
        )
    example = dict(grouped)
    for key in user_keys:
        example[key] = grouped[key][:2].contiguous()
    example[ROWS_KEY] = torch.arange(batch) % 2
    return example


def _max_diff(want: Inputs, got: Inputs) -> float:
    return max(float((got[k] - want[k]).abs().max()) for k in want)


def build_aot(
    export_dir: Path,
    model: nn.Module,
    scripted: torch.jit.ScriptModule,
    inputs: Inputs,
    *,
    request_inputs: Inputs | None = None,
    keep_slower: bool = False,
    rounds: int = 5,
) -> dict:
    """Write the AOT files of an export, check and benchmark them.

    Args:
        export_dir: the (staging) export directory.
        model: the quantized eager model `scripted` was made from, tiled
            (`TiledMultiTowerDIN`) or not.
        scripted: the plain TorchScript model, the reference.
        inputs: FG output of one request's rows (B >= 3), user side on every
            row.
        request_inputs: for a tiled model, the same rows with the user side
            once, as the server sends them; checked too, and benchmarked
            instead of `inputs`.
        keep_slower: keep the AOT files even where they are not faster.
        rounds: benchmark rounds.

    Returns:
        The `aot` record of model_acc.json: kept, speedup, times.

    Raises:
        ExportError: compilation failed or the AOT scores differ.
    """
    # Script the sparse part and compile the dense part on its output.
    from torchrec.fx import symbolic_trace

    sparse_module, dense, user_keys = split_model(model)
    sparse = torch.jit.script(symbolic_trace(sparse_module))
    (export_dir / AOT_DIR).mkdir(exist_ok=True)
    sparse.save(str(export_dir / SPARSE_FILE))
    with torch.no_grad():
        grouped = _compile_example(dense_inputs(sparse(inputs)), user_keys)
        compile_dense(dense, grouped, export_dir / DENSE_FILE, user_keys)

    # Same scores as the scripted model on every input form, then which is
    # faster on one request.
    aot_model = load_aot_model(export_dir)
    forms = [inputs] if request_inputs is None else [inputs, request_inputs]
    with torch.no_grad():
        diff = max(_max_diff(scripted(x), aot_model(x)) for x in forms)
        rows = int(scripted(forms[-1])["probs"].shape[0])
    if diff > 1e-4:
        raise ExportError(
            f"the AOT-compiled model's outputs differ from TorchScript's by {diff:.2e}"
        )
    bench = bench_aot(scripted, aot_model, [forms[-1]] * 10, rounds=rounds)
    kept = keep_slower or bench.speedup > 1.0
    if not kept:
        for name in (SPARSE_FILE, DENSE_FILE):
            (export_dir / name).unlink()
        (export_dir / AOT_DIR).rmdir()
    logger.info(
        "AOT model: %.3f ms vs TorchScript %.3f ms per %d-row call (x%.2f); %s",
        bench.aot_s * 1e3,
        bench.scripted_s * 1e3,
        rows,
        bench.speedup,
        "kept" if kept else "dropped (not faster)",
    )
    return {
        "enabled": True,
        "kept": kept,
        "speedup": round(bench.speedup, 4),
        "scripted_ms": round(bench.scripted_s * 1e3, 4),
        "aot_ms": round(bench.aot_s * 1e3, 4),
        "bench_rows": rows,
        "bench_user_once": request_inputs is not None,
        "max_abs_diff": diff,
    }
