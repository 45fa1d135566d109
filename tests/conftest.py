"""Session-wide fixtures: one tiny trained model and export for server tests."""

import pytest

from recship.export.artifact import load_artifact
from recship.export.exporter import ExportOptions, export_model
from recship.testing.tiny import build_tiny_export


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """(TinyWorld, export_dir) of a tiny MultiTowerDIN trained one epoch, INT8."""
    return build_tiny_export(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_tiled_artifact(tiny_export, tmp_path_factory):
    """(TinyWorld, LoadedArtifact) of the same checkpoint, INT8 with INPUT_TILE 3."""
    world, _ = tiny_export
    export_dir = tmp_path_factory.mktemp("tiled") / "int8-tile3"
    options = ExportOptions(quant_emb="INT8", quant_ec_emb="INT8", input_tile=3)
    export_model(world.config, export_dir, options=options)
    return world, load_artifact(export_dir)
