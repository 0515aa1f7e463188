"""On-disk cache of parsed, transformed datasets: 100 trials need not parse one file 100 times.

An entry is one directory per key, where the key is the SHA-256 of the input files' content
hashes, the :class:`~gan_hpc.config.DataConfig` as canonical JSON (without ``use_cache`` and
``cache_dir``) and :data:`CACHE_FORMAT_VERSION`::

    <cache root>/<key>/arrays.npz   the split arrays (uncompressed, no pickles)
    <cache root>/<key>/meta.json    schema, transform state, source hash, shapes, npz sha256

Both files are written atomically, ``meta.json`` last, so an entry without a valid
``meta.json`` is never used. The zip members carry a fixed timestamp, so writers of the same
key write the same bytes and concurrent writers are safe: the last one wins. A reader
checks the arrays against the hash in ``meta.json``; a stale, truncated or corrupt entry is
logged as a warning and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gan_hpc.config import DataConfig
from gan_hpc.config_validation import config_to_dict
from gan_hpc.data.paths import _resolve_beside
from gan_hpc.data.readers import format_for_path
from gan_hpc.errors import DataError
from gan_hpc.files import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 4  # bump when the arrays or the transform state change meaning
CACHE_DIR_ENV = "GAN_HPC_CACHE_DIR"
ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same arrays give the same bytes
_CONFIG_KEYS_IGNORED = ("use_cache", "cache_dir")


@dataclass(frozen=True)
class CacheEntry:
    """A verified cache entry: the arrays by name and the metadata the writer stored."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


class _InvalidEntry(Exception):
    """A cache entry failed a check."""


def cache_root(config: DataConfig) -> Path:
    """``data.cache_dir``, else ``$GAN_HPC_CACHE_DIR``, else ``~/.cache/gan_hpc``."""
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    return Path.home() / ".cache" / "gan_hpc"


def input_files(config: DataConfig) -> list[Path]:
    """List the existing files a dataset is read from, in a fixed order.

    The data file and ``test_path``, each with its ``images.labels_path`` (resolved as the
    readers do); for ``frf_excel`` every file in the coordinates file's folder and in
    ``frf.frf_folder``. ``synthetic_frf`` reads no file. A file that does not exist is left
    out: the reader reports it.
    """
    if config.format == "synthetic_frf":
        return []
    files: list[Path] = []
    for name in (config.path, config.test_path):
        if name is None:
            continue
        path = Path(name)
        if _format_of(config, path) == "frf_excel":
            folder = path if path.is_dir() else path.parent
            files += _files_under(folder)
            if config.frf.frf_folder is not None:
                coordinates = path / config.frf.coordinates_file if path.is_dir() else path
                files += _files_under(_resolve_beside(coordinates, config.frf.frf_folder))
            continue
        files += _files_under(path) if path.is_dir() else [path]
        if config.images.labels_path is not None:
            files.append(_resolve_beside(path, config.images.labels_path))
    unique = list(dict.fromkeys(p for p in files if p.is_file()))
    return unique


def _format_of(config: DataConfig, path: Path) -> str | None:
    """Return the configured format, else the one inferred from the path (None: unknown)."""
    if config.format is not None:
        return config.format
    try:
        return format_for_path(path)
    except DataError:
        return None  # read_data reports it


def _files_under(folder: Path) -> list[Path]:
    """Every file below ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def source_hash(file_hashes: Sequence[str]) -> str:
    """SHA-256 over the input files' content hashes (and nothing else)."""
    return hashlib.sha256("\n".join(file_hashes).encode("ascii")).hexdigest()


def cache_key(config: DataConfig, file_hashes: Sequence[str]) -> str:
    """Hash input content + the data config + :data:`CACHE_FORMAT_VERSION` into a key."""
    settings = {k: v for k, v in config_to_dict(config).items() if k not in _CONFIG_KEYS_IGNORED}
    document = {"version": CACHE_FORMAT_VERSION, "files": list(file_hashes), "config": settings}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_entry(directory: Path, key: str) -> CacheEntry | None:
    """Load and verify the entry in ``directory``; None when absent or invalid (logged)."""
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise _InvalidEntry("meta.json is not an object")
        if meta.get("format_version") != CACHE_FORMAT_VERSION or meta.get("key") != key:
            raise _InvalidEntry("stale entry (another format version or key)")
        data = (directory / ARRAYS_FILE).read_bytes()
        if hashlib.sha256(data).hexdigest() != meta.get("arrays_sha256"):
            raise _InvalidEntry("arrays.npz does not match the hash in meta.json")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        shapes = {name: list(array.shape) for name, array in arrays.items()}
        if shapes != meta.get("shapes"):
            raise _InvalidEntry("array shapes do not match meta.json")
    except (OSError, ValueError, zipfile.BadZipFile, _InvalidEntry) as exc:
        logger.warning("dataset cache entry %s is invalid (%s); rebuilding it", directory, exc)
        return None
    return CacheEntry(arrays=arrays, meta=meta)


def write_entry(
    directory: Path, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> None:
    """Write an entry atomically: ``arrays.npz`` first, then ``meta.json`` with its hash.

    A failure to write (read-only or full disk) is logged, not raised: the cache is optional.
    """
    data = _npz_bytes(arrays)
    full_meta = {
        **meta,
        "format_version": CACHE_FORMAT_VERSION,
        "key": key,
        "arrays_sha256": hashlib.sha256(data).hexdigest(),
        "shapes": {name: list(array.shape) for name, array in arrays.items()},
    }
    try:
        atomic_write_bytes(directory / ARRAYS_FILE, data)
        atomic_write_json(directory / META_FILE, full_meta)
    except OSError as exc:
        logger.warning(
            "cannot write the dataset cache entry %s (%s); continuing without", directory, exc
        )


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed .npz (as ``np.savez``) with fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE_TIME)
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()
