"""Durable file writes (temp file, fsync, rename) for every file that must survive a crash."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gan_hpc.errors import GanHpcError


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry so a rename inside it survives a power cut."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (e.g. certain network mounts) refuse fsync on directories
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from a group sharing the sweep
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write strict JSON atomically: sorted keys, indented, NaN and infinities as null.

    Every JSON file a sweep keeps goes through here, so no caller strips NaN itself: other
    parsers (``jq``, browsers, pandas' strict mode) reject the ``NaN`` tokens Python would write.
    """
    atomic_write_text(path, strict_json_text(payload, sort_keys=True))


def strict_json_text(payload: Any, *, sort_keys: bool = False) -> str:
    """``payload`` as indented strict JSON text ending with a newline (NaN, inf: null)."""
    text = json.dumps(
        _strict_json(payload), indent=2, sort_keys=sort_keys, allow_nan=False, default=_json_default
    )
    return text + "\n"


def read_json(path: Path) -> Any:
    """Read a JSON file, raising a one-line :class:`GanHpcError` that names it when it is bad."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GanHpcError(f"{path}: file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GanHpcError(f"{path}: not valid JSON ({exc}); delete or restore the file") from exc


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON record as a line, flushed and fsynced (the file is append-only).

    When the file does not end with a newline (a writer died mid-append), the record starts on a
    fresh line, so the torn line stays alone and readers skip it without losing this record.
    The line is strict JSON: NaN and infinities are written as null (see
    :func:`atomic_write_json`).
    """
    line = (
        json.dumps(
            _strict_json(dict(record)), sort_keys=True, allow_nan=False, default=_json_default
        )
        + "\n"
    )
    with open(path, "ab+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                line = "\n" + line
        handle.write(line.encode("utf-8"))  # append mode: always at the end, whatever the seek
        handle.flush()
        os.fsync(handle.fileno())


def parse_jsonl_line(line: str, *, key: str | None = None) -> dict[str, Any] | None:
    """One JSONL record (a JSON object), or None for a line that holds none.

    A line whose start was torn off by a crash and then followed by a good record, written by an
    older writer that did not start a fresh line, reads as that record: the record is the one
    suffix starting at ``{`` that parses whole (the torn prefix never closes its braces).

    Args:
        line: the line, with or without its newline.
        key: a key every record has (e.g. ``step``); a suffix without it is an object nested in
            the torn record, not a record, and is not recovered.

    """
    text = line.strip()
    start = 0 if text else -1
    while start != -1:
        try:
            value = json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if not isinstance(value, dict) or (start and key is not None and key not in value):
            return None
        return value
    return None


def read_jsonl(path: Path, *, key: str | None = None) -> list[dict[str, Any]]:
    """Read an append-only JSONL file; torn lines (crash mid-append) are skipped, never more.

    Args:
        path: the file (missing: no records).
        key: a key every record has; see :func:`parse_jsonl_line`.

    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    records = (parse_jsonl_line(line, key=key) for line in text.split("\n"))
    return [record for record in records if record is not None]


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (numpy's included) turned into None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _strict_json(value.item())  # a numpy scalar
        except (TypeError, ValueError):
            return value  # an array: _json_default says it is not serialisable
    return value


def _json_default(value: Any) -> Any:
    """Make numpy scalars, paths and tuples JSON-serialisable."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
