"""Locating, opening and sniffing data files: the helpers the format readers share.

The format modules (:mod:`~gan_hpc.data.arff`, :mod:`~gan_hpc.data.images`,
:mod:`~gan_hpc.data.frf`) and :mod:`~gan_hpc.data.readers` import from here, never from each
other: the required-path check, gzip-aware reads, paths beside another file, delimited-text
reading, and the helpers that word their one-line :class:`~gan_hpc.errors.DataError`
messages.
"""

from __future__ import annotations

import csv
import difflib
import gzip
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gan_hpc.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"


def _one_line(text: object, limit: int = 80) -> str:
    """``text`` on one line (newlines escaped), shortened to ``limit`` characters."""
    flat = str(text).replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _suggest(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _require_path(path: Path | None, fmt: str) -> Path:
    """Return the file a reader must read (every reader but synthetic_frf needs one)."""
    if path is None:
        raise DataError(f"data.path: format '{fmt}' reads a file (fix: set data.path)")
    return Path(path)


def _is_gzip(path: Path) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _read_bytes(path: Path) -> bytes:
    """Read the file's bytes, gunzipped when it is gzip-compressed."""
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read the file: {_one_line(exc)} (fix: check that it is complete "
            "and readable)"
        ) from None


def _resolve_beside(base: Path, name: str) -> Path:
    """Resolve ``name``: as given if absolute or present from the cwd, else beside ``base``."""
    candidate = Path(name)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return base.parent / candidate


def _check_column(name: str, available: Sequence[str], path: Path | str, key: str) -> None:
    """Raise a DataError when ``key`` names a column the file does not have."""
    if name not in available:
        raise DataError(
            f"{path}: {key}: no column '{name}'{_suggest(name, available)} "
            f"(available: {', '.join(available)})"
        )


# ------------------------------------------------------------------------------ delimited text


def _sniff_delimiter(text: str, path: Path) -> str:
    """Guess the delimiter of delimited text from its first lines (, ; tab |)."""
    sample_lines = [line for line in text.splitlines()[:20] if line.strip()]
    sample = "\n".join(sample_lines)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        pass
    # The sniffer gives up on some files (e.g. one column); take the candidate that appears
    # equally often, and at least once, on every line.
    for candidate in (",", ";", "\t", "|"):
        counts = {line.count(candidate) for line in sample_lines}
        if len(counts) == 1 and counts.pop() > 0:
            return candidate
    if len(sample_lines) > 0:
        return ","
    raise DataError(f"{path}: the file has no data lines (fix: check data.path)")


def _head_text(path: Path, skip_rows: int, num_lines: int = 20) -> str:
    """Return the first ``num_lines`` lines after ``skip_rows`` (gzip-aware), for sniffing."""
    try:
        opener = gzip.open if _is_gzip(path) else open
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
            lines = [line for _, line in zip(range(skip_rows + num_lines), handle, strict=False)]
    except (OSError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read the file: {_one_line(exc)} (fix: check that it is complete "
            "and readable)"
        ) from None
    return "".join(lines[skip_rows:])


def _read_delimited(
    path: Path,
    *,
    delimiter: str | None,
    header: int | None,
    skip_rows: int,
    missing_values: Sequence[str],
) -> pd.DataFrame:
    """pandas.read_csv with our options, its errors turned into one-line DataErrors."""
    sep = delimiter or _sniff_delimiter(_head_text(path, skip_rows), path)
    try:
        return pd.read_csv(
            path,
            sep=sep,
            header=header,
            skiprows=skip_rows,
            na_values=list(missing_values),
            skipinitialspace=True,
            compression="gzip" if _is_gzip(path) else None,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file has no data (fix: check data.path)") from None
    except pd.errors.ParserError as exc:
        message = _one_line(str(exc).strip().splitlines()[-1], 120)
        raise DataError(
            f"{path}: {message} (fix: check data.csv.delimiter {sep!r}, quoting and "
            "data.csv.skip_rows)"
        ) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the file is not UTF-8 text (fix: re-save it as UTF-8)") from None
