"""Export directories on fsspec paths: local, `memory://`, `s3://` and others.

An export is always built in a local directory. For a remote path it is
then uploaded file by file with `MANIFEST.json` last, and readers accept a
remote export only once its manifest is there: a reader never uses half an
upload. Readers download an export into a local cache directory named by
the sha256 of its manifest, so a model version is fetched once per machine
and a changed export (a new manifest) never mixes with an old copy.

S3-compatible stores take their endpoint and credentials the usual way for
botocore (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs

from recship.errors import ExportError

logger = logging.getLogger(__name__)

MANIFEST_FILE = "MANIFEST.json"


def is_remote(path: str | Path) -> bool:
    """True for a URL with a protocol other than the local file system."""
    text = str(path)
    if "://" not in text:
        return False
    return text.split("://", 1)[0] not in ("file", "local")


def _strip(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = url_to_fs(url)
    return fs, root.rstrip("/")


def remote_exists(url: str) -> bool:
    """True when `url` holds a complete export (its manifest)."""
    fs, root = _strip(url)
    return fs.exists(f"{root}/{MANIFEST_FILE}")


def upload_export(local_dir: str | Path, url: str) -> None:
    """Copy a finished local export to `url`, the manifest last.

    Raises:
        ExportError: `url` already holds an export, or a file cannot be
            written (the message names it).
    """
    local_dir = Path(local_dir)
    fs, root = _strip(url)
    if fs.exists(f"{root}/{MANIFEST_FILE}"):
        raise ExportError(
            f"{url} already holds an export; export to a new path (or remove it)"
        )

    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    manifest = local_dir / MANIFEST_FILE
    ordered = [p for p in files if p != manifest] + [manifest]
    for path in ordered:
        relative = path.relative_to(local_dir).as_posix()
        target = f"{root}/{relative}"
        try:
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)
        except (OSError, ValueError) as exc:
            raise ExportError(f"cannot upload {relative} to {url}: {exc}") from exc
    logger.info("uploaded %s to %s (%d files)", local_dir, url, len(ordered))


def default_cache_dir() -> Path:
    """Where remote exports are downloaded (see `config.settings`)."""
    from recship.config.settings import resolve_export_cache_dir

    return Path(resolve_export_cache_dir())


def fetch_export(url: str, cache_dir: str | Path | None = None) -> Path:
    """A local copy of the remote export at `url`, downloaded once.

    The copy lives in `<cache_dir>/<sha256 of the manifest>`; it is written
    beside that name and renamed into place, so concurrent readers on one
    machine either find a complete copy or make their own.

    Raises:
        ExportError: `url` has no manifest (absent, or an upload in
            progress) or a file cannot be read.
    """
    fs, root = _strip(url)
    manifest_url = f"{root}/{MANIFEST_FILE}"
    try:
        manifest_bytes = fs.cat_file(manifest_url)
    except FileNotFoundError as exc:
        raise ExportError(
            f"{url} has no {MANIFEST_FILE}: not an export, or its upload has not "
            "finished; export there first or wait for the upload"
        ) from exc
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    final = cache / digest
    if (final / MANIFEST_FILE).is_file():
        return final

    # Download every listed file, then the manifest, then rename into place.
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}.tmp-", dir=cache))
    try:
        for relative in json.loads(manifest_bytes)["files"]:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fs.get_file(f"{root}/{relative}", str(target))
            except (OSError, ValueError) as exc:
                raise ExportError(
                    f"cannot download {relative} of {url}: {exc}"
                ) from exc
        (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
        staging.chmod(0o755)
        try:
            os.replace(staging, final)
        except OSError:
            # Another reader renamed its complete copy first; use that one.
            if not (final / MANIFEST_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("fetched %s into %s", url, final)
    return final
