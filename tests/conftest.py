"""Session-wide fixtures: one tiny trained model and export for server tests."""

import pytest

from recship.testing.tiny import build_tiny_export


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """(TinyWorld, export_dir) of a tiny MultiTowerDIN trained one epoch, INT8."""
    return build_tiny_export(tmp_path_factory.mktemp("tiny"))
