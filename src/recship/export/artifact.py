"""The export artifact: file names, the manifest, and loading it back.

export/
  scripted_model.pt   TorchScript: forward(Dict[str, Tensor]) -> Dict[str, Tensor]
  pipeline.config     the config used
  fg.json             the FG spec the server runs
  model_acc.json      export options and the input signature
  assets/             vocab files and other inputs of FG
  MANIFEST.json       sha256 of every file, source checkpoint, created_at
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recship.errors import ExportError
from recship.features.fg import FeatureGenerator
from recship.features.spec import specs_from_fg_json

MODEL_FILE = "scripted_model.pt"
CONFIG_FILE = "pipeline.config"
FG_FILE = "fg.json"
ACC_FILE = "model_acc.json"
MANIFEST_FILE = "MANIFEST.json"
ASSETS_DIR = "assets"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(export_dir: Path, source: dict[str, Any]) -> dict[str, Any]:
    """sha256 and size of every file under `export_dir` but the manifest."""
    files = {}
    for path in sorted(export_dir.rglob("*")):
        if path.is_file() and path.name != MANIFEST_FILE:
            relative = path.relative_to(export_dir).as_posix()
            files[relative] = {
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
            }
    return dict(source, files=files)


def verify_manifest(export_dir: Path) -> dict[str, Any]:
    """Check every file against MANIFEST.json; return the manifest."""
    manifest_path = export_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ExportError(
            f"{export_dir} has no {MANIFEST_FILE}; it is not a recship export"
        )
    manifest = json.loads(manifest_path.read_text())
    for relative, entry in manifest["files"].items():
        path = export_dir / relative
        if not path.is_file():
            raise ExportError(
                f"{export_dir}: {relative} is listed in the manifest but missing"
            )
        if sha256_file(path) != entry["sha256"]:
            raise ExportError(
                f"{export_dir}: {relative} does not match its sha256 in the manifest"
            )
    return manifest


@dataclass
class LoadedArtifact:
    """An export directory loaded for scoring."""

    path: Path
    model: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
    generator: FeatureGenerator
    model_acc: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def output_names(self) -> list[str]:
        return list(self.model_acc.get("outputs", ["probs"]))


def load_artifact(
    export_dir: str | Path, verify: bool = True, *, use_aot: bool = True
) -> LoadedArtifact:
    """Load the model and FG of an export directory.

    Args:
        export_dir: a local directory or an fsspec URL (`s3://...`,
            `memory://...`); a URL is downloaded into the local export cache
            first (see `export.storage`).
        verify: check every file against MANIFEST.json.
        use_aot: load the AOT-compiled dense part when the export kept one;
            False loads the plain TorchScript model.
    """
    from recship.export import aot, storage

    if storage.is_remote(export_dir):
        export_dir = storage.fetch_export(str(export_dir))
    export_dir = Path(export_dir)
    if not (export_dir / MODEL_FILE).is_file():
        raise ExportError(f"{export_dir} has no {MODEL_FILE}; pass an export directory")
    manifest = verify_manifest(export_dir) if verify else {}

    try:
        import fbgemm_gpu  # noqa: F401  (registers the quantized embedding kernels)
    except ImportError:  # pragma: no cover - fbgemm is a pinned dependency
        pass
    model_acc = json.loads((export_dir / ACC_FILE).read_text())
    if use_aot and model_acc.get("aot", {}).get("kept"):
        model = aot.load_aot_model(export_dir)
    else:
        model = torch.jit.load(str(export_dir / MODEL_FILE), map_location="cpu")
        model.eval()
    fg_json = json.loads((export_dir / FG_FILE).read_text())
    generator = FeatureGenerator(specs_from_fg_json(fg_json, str(export_dir / FG_FILE)))
    return LoadedArtifact(export_dir, model, generator, model_acc, manifest)
