"""Export directories on local, memory:// and S3 (moto on loopback) paths."""

import json
import uuid

import fsspec
import pytest

from recship.errors import ExportError
from recship.export import storage
from recship.export.artifact import build_manifest, verify_manifest
from recship.testing.s3 import S3_TEST_ENV, moto_s3_server


def _fake_export(root):
    """A small directory with a real manifest (no model needed here)."""
    root.mkdir()
    (root / "fg.json").write_text('{"features": []}')
    (root / "assets").mkdir()
    (root / "assets" / "vocab.txt").write_text("a\nb\n")
    (root / "MANIFEST.json").write_text(json.dumps(build_manifest(root, {})))
    return root


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    for name, value in S3_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"exports-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    # s3fs caches file systems per arguments; drop them so each test sees
    # this test's environment.
    fsspec.filesystem("s3").clear_instance_cache()
    return bucket


def test_is_remote_tells_urls_from_local_paths(tmp_path):
    assert storage.is_remote("s3://bucket/model/1")
    assert storage.is_remote("memory://exports/1")
    assert not storage.is_remote(tmp_path / "export")
    assert not storage.is_remote("file:///tmp/export")


@pytest.mark.parametrize("scheme", ["memory", "s3"])
def test_upload_then_fetch_round_trips_and_caches(scheme, tmp_path, request):
    if scheme == "s3":
        url = f"s3://{request.getfixturevalue('s3_env')}/model/1"
    else:
        url = f"memory://recship-{uuid.uuid4().hex[:8]}/model/1"
    local = _fake_export(tmp_path / "export")

    storage.upload_export(local, url)
    assert storage.remote_exists(url)
    fetched = storage.fetch_export(url, tmp_path / "cache")

    assert (fetched / "assets" / "vocab.txt").read_text() == "a\nb\n"
    verify_manifest(fetched)
    # A second reader finds the cached copy (same manifest, same directory).
    assert storage.fetch_export(url, tmp_path / "cache") == fetched
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [fetched.name]


def test_upload_refuses_a_path_that_holds_an_export(tmp_path):
    url = f"memory://recship-{uuid.uuid4().hex[:8]}/model/1"
    storage.upload_export(_fake_export(tmp_path / "a"), url)
    with pytest.raises(ExportError, match="already holds an export"):
        storage.upload_export(_fake_export(tmp_path / "b"), url)


def test_reader_refuses_an_upload_without_its_manifest(tmp_path):
    # Files are there but the manifest (uploaded last) is not: an upload in
    # progress must look like no export at all.
    url = f"memory://recship-{uuid.uuid4().hex[:8]}/model/1"
    fs, root = storage._strip(url)
    fs.pipe_file(f"{root}/fg.json", b"{}")
    assert not storage.remote_exists(url)
    with pytest.raises(ExportError, match="has no MANIFEST.json"):
        storage.fetch_export(url, tmp_path / "cache")


def test_changed_export_gets_a_new_cache_entry(tmp_path):
    url = f"memory://recship-{uuid.uuid4().hex[:8]}/model/1"
    storage.upload_export(_fake_export(tmp_path / "a"), url)
    first = storage.fetch_export(url, tmp_path / "cache")

    fs, root = storage._strip(url)
    fs.rm(f"{root}/{storage.MANIFEST_FILE}")
    changed = _fake_export(tmp_path / "b")
    (changed / "fg.json").write_text('{"features": [1]}')
    (changed / "MANIFEST.json").write_text(json.dumps(build_manifest(changed, {})))
    storage.upload_export(changed, url)

    second = storage.fetch_export(url, tmp_path / "cache")
    assert second != first
    assert (second / "fg.json").read_text() == '{"features": [1]}'
