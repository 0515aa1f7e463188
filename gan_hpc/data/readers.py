"""Readers: one plain function per data format, listed in :data:`READERS`.

Every reader takes the trial's :class:`~gan_hpc.config.DataConfig` and the file to read and
returns :data:`~gan_hpc.data.types.RawData`: a :class:`~gan_hpc.data.types.Table` (ARFF, CSV)
or :class:`~gan_hpc.data.types.Arrays` (images, MATLAB arrays, FRF signals). Bad input raises
a one-line :class:`~gan_hpc.errors.DataError` naming the file (and the line where known), what
is wrong and the fix. :func:`read_data` is the entry point: it picks the format, checks the
file exists, reads it and applies ``data.drop_columns``.

The CSV reader lives here; the other formats live in their own modules
(:mod:`~gan_hpc.data.arff`, :mod:`~gan_hpc.data.images`, :mod:`~gan_hpc.data.frf`), which
share the helpers in :mod:`~gan_hpc.data.paths`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig, DataFormat
from gan_hpc.data.arff import read_arff
from gan_hpc.data.frf import frf_channels, read_frf_excel, read_synthetic_frf
from gan_hpc.data.images import read_idx, read_mat, read_npy, read_npz, read_pixels_csv
from gan_hpc.data.paths import _check_column, _read_delimited, _require_path, _suggest
from gan_hpc.data.types import ColumnInfo, RawData, Table
from gan_hpc.errors import DataError

# frf_channels is re-exported: callers import it from here.
__all__ = [
    "FORMATS",
    "READERS",
    "Reader",
    "format_for_path",
    "frf_channels",
    "read_csv",
    "read_data",
]

logger = logging.getLogger(__name__)

Reader = Callable[[DataConfig, Path | None], RawData]

FORMATS: tuple[str, ...] = get_args(DataFormat)


# -------------------------------------------------------------------------------------- format


def format_for_path(path: Path) -> str:
    """Infer the data format from a file's suffix (or a directory holding coordinates.xlsx).

    Raises:
        DataError: for an unknown suffix, listing the formats and ``data.format``.

    """
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        if (path / "coordinates.xlsx").is_file():
            return "frf_excel"
        raise DataError(
            f"{path}: is a directory without coordinates.xlsx (fix: point data.path at a file, "
            "or at the folder holding coordinates.xlsx for FRF data)"
        )
    base = name[: -len(".gz")] if name.endswith(".gz") else name
    suffix = Path(base).suffix
    if suffix == ".arff":
        return "arff"
    if suffix in (".csv", ".tsv", ".txt", ".data"):
        return "csv"
    if suffix == ".idx" or base.endswith("ubyte"):
        return "idx"
    by_suffix = {".npz": "npz", ".npy": "npy", ".mat": "mat", ".xlsx": "frf_excel"}
    if name == base and suffix in by_suffix:
        return by_suffix[suffix]
    raise DataError(
        f"{path}: cannot tell the data format from the name '{path.name}' (fix: rename the file "
        f"or set data.format to one of: {', '.join(FORMATS)})"
    )


# ----------------------------------------------------------------------------------------- CSV


def _category_strings(column: pd.Series) -> tuple[pd.Categorical, tuple[str, ...]]:
    """Convert a column to a Categorical of strings, categories sorted (numbers numerically)."""
    present = column.dropna()
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        distinct = np.unique(present.to_numpy(dtype=np.float64))
        as_int = np.all(distinct == np.round(distinct))
        categories = [str(int(v)) if as_int else repr(float(v)) for v in distinct]
        mapping = dict(zip(distinct.tolist(), categories, strict=True))
        strings = column.map(lambda v: mapping.get(float(v)) if pd.notna(v) else None)
    else:
        strings = column.map(lambda v: str(v) if pd.notna(v) else None)
        categories = sorted({str(v) for v in present})
    return pd.Categorical(strings, categories=categories), tuple(categories)


def read_csv(config: DataConfig, path: Path | None) -> Table:
    """Read a delimited text file (CSV, TSV, ``;``-separated, gzipped or not) with pandas.

    Numeric columns become float64; every other column (and ``csv.categorical_columns``) a
    Categorical with sorted categories. Values in ``csv.missing_values`` are missing.
    """
    path = _require_path(path, "csv")
    options = config.csv
    frame = _read_delimited(
        path,
        delimiter=options.delimiter,
        header=0 if options.has_header else None,
        skip_rows=options.skip_rows,
        missing_values=options.missing_values,
    )
    if options.column_names:
        if len(options.column_names) != frame.shape[1]:
            raise DataError(
                f"{path}: data.csv.column_names has {len(options.column_names)} names but the "
                f"file has {frame.shape[1]} columns (fix: give one name per column)"
            )
        frame.columns = list(options.column_names)
    elif not options.has_header:
        frame.columns = [f"column_{i}" for i in range(frame.shape[1])]
    frame.columns = [str(c) for c in frame.columns]
    for name in options.categorical_columns:
        _check_column(name, list(frame.columns), path, "data.csv.categorical_columns")
    out: dict[str, Any] = {}
    infos: list[ColumnInfo] = []
    for name in frame.columns:
        column = frame[name]
        is_numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(
            column
        )
        if is_numeric and name not in options.categorical_columns:
            out[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            infos.append(ColumnInfo(name=name, kind="numeric"))
        else:
            out[name], categories = _category_strings(column)
            infos.append(ColumnInfo(name=name, kind="categorical", categories=categories))
    table = pd.DataFrame(out, index=pd.RangeIndex(len(frame)))
    logger.debug("read %s: %d rows x %d columns", path, len(table), len(infos))
    return Table(frame=table, columns=tuple(infos), source=str(path))


# -------------------------------------------------------------------------------- registry, API

READERS: dict[str, Reader] = {
    "arff": read_arff,
    "csv": read_csv,
    "idx": read_idx,
    "npz": read_npz,
    "npy": read_npy,
    "pixels_csv": read_pixels_csv,
    "mat": read_mat,
    "frf_excel": read_frf_excel,
    "synthetic_frf": read_synthetic_frf,
}


def _drop_columns(table: Table, names: Sequence[str]) -> Table:
    """``table`` without the columns ``names`` (each must exist)."""
    available = [info.name for info in table.columns]
    for name in names:
        _check_column(name, available, table.source, "data.drop_columns")
    keep = tuple(info for info in table.columns if info.name not in names)
    frame = table.frame[[info.name for info in keep]]
    return Table(frame=frame, columns=keep, source=table.source)


def read_data(config: DataConfig, path: Path | None = None) -> RawData:
    """Read the data a config names: pick the format, read, apply ``drop_columns``.

    Args:
        config: the data config (format, reader options, drop_columns).
        path: the file to read; defaults to ``config.path`` (``data.test_path`` callers pass
            it explicitly).

    Raises:
        DataError: one line naming the file, what is wrong and the fix.

    """
    if path is None and config.path is not None:
        path = Path(config.path)
    if config.format is not None:
        fmt: str = config.format
    elif path is None:
        raise DataError("data.path: no file given (fix: set data.path or data.format)")
    else:
        fmt = format_for_path(Path(path))
    if fmt not in READERS:
        raise DataError(
            f"data.format: unknown format '{fmt}'{_suggest(fmt, list(READERS))} "
            f"(fix: use one of: {', '.join(READERS)})"
        )
    if fmt != "synthetic_frf":
        path = _require_path(path, fmt)
        if not path.exists():
            raise DataError(f"{path}: file not found (fix: check data.path)")
        if path.is_dir() and fmt != "frf_excel":
            raise DataError(f"{path}: is a directory (fix: point data.path at the {fmt} file)")
    raw = READERS[fmt](config, path if fmt != "synthetic_frf" else None)
    if config.drop_columns:
        if not isinstance(raw, Table):
            raise DataError(
                f"{raw.source}: data.drop_columns applies to tables only, not {raw.kind} data "
                "(fix: remove data.drop_columns)"
            )
        raw = _drop_columns(raw, config.drop_columns)
    if isinstance(raw, Table) and config.condition_column is not None:
        available = [info.name for info in raw.columns]
        _check_column(config.condition_column, available, raw.source, "data.condition_column")
    return raw
