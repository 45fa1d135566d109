"""Score saved inputs with an exported `scripted_model.pt`, importing only torch.

Run as a script in a fresh process by the exporter (never imported by
recship): it proves the artifact loads without recship or torchrec and
records its outputs at several batch sizes for comparison.

Usage: python verify_artifact.py MODEL_PT INPUTS_PT OUTPUTS_PT
"""

import sys

import torch

try:  # quantized embedding kernels live in fbgemm_gpu; FP32 models need none.
    import fbgemm_gpu  # noqa: F401
except ImportError:
    pass


def _slice(inputs: dict, start: int, stop: int) -> dict:
    sliced = {}
    for name, tensor in inputs.items():
        if name.endswith(".lengths"):
            continue
        base = name[: -len(".values")]
        lengths = inputs.get(f"{base}.lengths")
        if lengths is None:
            sliced[name] = tensor[start:stop]
            continue
        offsets = torch.cat(
            [torch.zeros(1, dtype=torch.long), lengths.long().cumsum(0)]
        )
        sliced[name] = tensor[offsets[start] : offsets[stop]]
        sliced[f"{base}.lengths"] = lengths[start:stop]
    return sliced


def main() -> None:
    model_path, inputs_path, outputs_path = sys.argv[1:4]
    model = torch.jit.load(model_path)
    inputs = torch.load(inputs_path)
    rows = int(inputs.pop("__rows__"))

    # Score in chunks of 1, 7 and the rest, three times over, so that the
    # result must not depend on batch size or on earlier calls.
    outputs = {}
    for _ in range(3):
        chunks = []
        start = 0
        for size in (1, 7, rows):
            stop = min(rows, start + size)
            if stop > start:
                with torch.no_grad():
                    chunks.append(model(_slice(inputs, start, stop)))
            start = stop
        outputs = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    loaded = sorted(
        m for m in sys.modules if m.split(".")[0] in ("recship", "torchrec")
    )
    torch.save({"outputs": outputs, "foreign_modules": loaded}, outputs_path)


if __name__ == "__main__":
    main()
