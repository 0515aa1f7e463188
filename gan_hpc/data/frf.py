"""FRF readers: measured FRFs from Excel/CSV files, and simulated plate FRFs.

:func:`read_frf_excel` reads a coordinates table plus one FRF file per excitation point;
:func:`read_synthetic_frf` wraps :mod:`gan_hpc.data.synthetic`. Both return
:class:`~gan_hpc.data.types.Arrays` of kind ``"signal"`` whose channels come from
:func:`frf_channels`.
"""

from __future__ import annotations

import logging
import math
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.utils.exceptions import InvalidFileException

from gan_hpc.config import DataConfig, FrfRepresentation
from gan_hpc.data.paths import _check_column, _one_line, _require_path, _resolve_beside
from gan_hpc.data.synthetic import COORDINATE_NAMES, simulate_plate_frf
from gan_hpc.data.types import Arrays
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)

_FRF_COLUMN_PATTERNS = {
    "frequency": re.compile(r"^freq"),
    "real": re.compile(r"^re(al)?(?![a-z])"),
    "imag": re.compile(r"^im(ag(inary)?)?(?![a-z])"),
    "magnitude": re.compile(r"^(mag|amp|abs)"),
    "phase": re.compile(r"^(phase|phi|angle)"),
}
_FRF_FILE_SUFFIXES = (".xlsx", ".xls", ".csv")


def frf_channels(
    frf: np.ndarray, representation: FrfRepresentation
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Complex FRFs (N, L) as real channels (N, C, L) float32 and the channel names.

    ``log_magnitude``: log10 |H|; ``magnitude``: |H|; ``real_imag``: Re H and Im H.
    """
    if representation == "real_imag":
        return np.stack([frf.real, frf.imag], axis=1).astype(np.float32), ("real", "imag")
    magnitude = np.abs(frf)
    if representation == "magnitude":
        return magnitude[:, None, :].astype(np.float32), ("magnitude",)
    return np.log10(magnitude)[:, None, :].astype(np.float32), ("log_magnitude",)


def _read_sheet(path: Path) -> pd.DataFrame:
    """Read the first sheet of an Excel file (or a CSV), errors as DataErrors."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, sep=None, engine="python")
        return pd.read_excel(path, engine="openpyxl" if path.suffix.lower() == ".xlsx" else None)
    except (
        ValueError,
        OSError,
        ImportError,
        zipfile.BadZipFile,
        InvalidFileException,
        pd.errors.ParserError,
    ) as exc:
        raise DataError(
            f"{path}: cannot read the sheet: {_one_line(exc)} (fix: check the file)"
        ) from None


def _frf_file_column(table: pd.DataFrame, coordinates_path: Path, configured: str | None) -> str:
    """Find the coordinates column that names each point's FRF file."""
    names = [str(c) for c in table.columns]
    if configured is not None:
        _check_column(configured, names, coordinates_path, "data.frf.file_column")
        return configured
    for name in names:
        values = table[name].dropna()
        if len(values) and all(
            isinstance(v, str) and v.lower().endswith(_FRF_FILE_SUFFIXES) for v in values
        ):
            return name
    raise DataError(
        f"{coordinates_path}: no column of FRF file names ending in .xlsx/.xls/.csv (columns: "
        f"{', '.join(names)}) (fix: set data.frf.file_column)"
    )


def _frf_columns(sheet: pd.DataFrame, path: Path) -> dict[str, str]:
    """Header names of the FRF columns by role: frequency plus real/imag or magnitude[/phase]."""
    found: dict[str, str] = {}
    for column in sheet.columns:
        key = str(column).strip().lower()
        for role, pattern in _FRF_COLUMN_PATTERNS.items():
            if role not in found and pattern.match(key):
                found[role] = str(column)
                break
    if "frequency" in found and {"real", "imag"} <= found.keys():
        return {role: found[role] for role in ("frequency", "real", "imag")}
    if "frequency" in found and "magnitude" in found:
        return {role: found[role] for role in ("frequency", "magnitude", "phase") if role in found}
    raise DataError(
        f"{path}: cannot find the FRF columns in {[str(c) for c in sheet.columns]} (fix: name "
        "them freq*, plus real/imag or magnitude/phase)"
    )


def _read_frf_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """One FRF file's columns by role (see :func:`_frf_columns`) and their header names."""
    sheet = _read_sheet(path)
    roles = _frf_columns(sheet, path)
    values: dict[str, np.ndarray] = {}
    for role, name in roles.items():
        column = pd.to_numeric(sheet[name], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(column).any():
            row = int(np.flatnonzero(np.isnan(column))[0]) + 2  # 1-based, after the header
            raise DataError(
                f"{path}: row {row}: column '{name}' is empty or not a number "
                "(fix: fill in every value)"
            )
        values[role] = column
    return values, roles


def _phase_in_degrees(column_name: str, phase: np.ndarray) -> bool:
    """Degrees when the header says so, or when the values span more than 2 pi."""
    key = column_name.lower()
    if "deg" in key:
        return True
    if "rad" in key:
        return False
    return float(phase.max() - phase.min()) > 2 * math.pi + 1e-6


def _frf_arrays(
    *,
    frf: np.ndarray,
    frequencies: np.ndarray,
    conditions: np.ndarray,
    condition_names: Sequence[str],
    representation: FrfRepresentation,
    source: str,
    metadata: dict[str, Any] | None = None,
) -> Arrays:
    """Arrays(kind='signal') from complex FRFs and their excitation coordinates."""
    samples, channel_names = frf_channels(frf, representation)
    return Arrays(
        kind="signal",
        samples=samples,
        source=source,
        conditions=np.asarray(conditions, dtype=np.float64),
        condition_names=tuple(condition_names),
        axis=np.asarray(frequencies, dtype=np.float64),
        axis_name="frequency_hz",
        channel_names=channel_names,
        metadata=metadata or {},
    )


def _frf_coordinates(config: DataConfig, path: Path) -> tuple[Path, pd.DataFrame, str, list[str]]:
    """Read the coordinates table; return its path, table, file column, coordinate columns."""
    options = config.frf
    coordinates_path = path / options.coordinates_file if path.is_dir() else path
    if not coordinates_path.is_file():
        raise DataError(
            f"{coordinates_path}: coordinates file not found (fix: check data.path and "
            "data.frf.coordinates_file)"
        )
    table = _read_sheet(coordinates_path)
    table.columns = [str(c) for c in table.columns]
    file_column = _frf_file_column(table, coordinates_path, options.file_column)
    columns = list(table.columns)
    if options.coordinate_columns:
        coordinate_columns = list(options.coordinate_columns)
        for name in coordinate_columns:
            _check_column(name, columns, coordinates_path, "data.frf.coordinate_columns")
    else:
        coordinate_columns = [
            c for c in columns if c != file_column and pd.api.types.is_numeric_dtype(table[c])
        ]
    if not coordinate_columns or table.empty:
        raise DataError(
            f"{coordinates_path}: no rows or no numeric coordinate columns (fix: add the "
            "excitation coordinates, or set data.frf.coordinate_columns)"
        )
    return coordinates_path, table, file_column, coordinate_columns


def read_frf_excel(config: DataConfig, path: Path | None) -> Arrays:
    """Read FRFs from a coordinates table plus one Excel (or CSV) file per excitation point.

    ``path`` is the coordinates file or the folder holding ``frf.coordinates_file``. Its rows
    give the excitation coordinates (``frf.coordinate_columns`` or every numeric column) and
    the file of that point's FRF, found in ``frf.frf_folder``, beside the coordinates file or
    in its ``frf/`` folder. FRF files hold a freq* column plus real/imag or magnitude/phase
    (phase in degrees when the header says so or the values span more than 2 pi).
    """
    path = _require_path(path, "frf_excel")
    options = config.frf
    coordinates_path, table, file_column, coordinate_columns = _frf_coordinates(config, path)
    coordinates = (
        table[coordinate_columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    )
    if np.isnan(coordinates).any():
        row = int(np.flatnonzero(np.isnan(coordinates).any(axis=1))[0]) + 2
        raise DataError(
            f"{coordinates_path}: row {row}: a coordinate is empty or not a number "
            "(fix: fill in every coordinate)"
        )
    names = [str(v) for v in table[file_column].tolist()]
    base = coordinates_path.parent
    if options.frf_folder is not None:
        folder = _resolve_beside(coordinates_path, options.frf_folder)
    elif (base / names[0]).is_file() or not (base / "frf" / names[0]).is_file():
        folder = base
    else:
        folder = base / "frf"
    curves: list[dict[str, np.ndarray]] = []
    first_roles: dict[str, str] = {}
    for row, name in enumerate(names):
        frf_path = folder / name
        if not frf_path.is_file():
            raise DataError(
                f"{coordinates_path}: row {row + 2}: FRF file '{name}' not found in {folder} "
                "(fix: add the file, correct the name, or set data.frf.frf_folder)"
            )
        values, roles = _read_frf_file(frf_path)
        if not curves:
            first_roles = roles
        elif roles.keys() != first_roles.keys():
            raise DataError(
                f"{frf_path}: has columns {list(roles.values())} but {names[0]} has "
                f"{list(first_roles.values())} (fix: use one column layout in every FRF file)"
            )
        elif len(values["frequency"]) != len(curves[0]["frequency"]) or not np.allclose(
            values["frequency"], curves[0]["frequency"], rtol=1e-9, atol=0.0
        ):
            raise DataError(
                f"{frf_path}: its frequency axis differs from the one in {names[0]} "
                "(fix: resample every FRF onto one frequency axis)"
            )
        curves.append(values)
    stacked = {role: np.stack([c[role] for c in curves]) for role in first_roles}
    if "real" in stacked:
        frf = stacked["real"] + 1j * stacked["imag"]
    elif "phase" in stacked:
        phase = stacked["phase"]
        if _phase_in_degrees(first_roles["phase"], phase):
            phase = np.radians(phase)
        frf = stacked["magnitude"] * np.exp(1j * phase)
    elif options.representation == "real_imag":
        raise DataError(
            f"{folder}: the FRF files hold magnitudes without phase, so representation "
            "'real_imag' is impossible (fix: set data.frf.representation to log_magnitude or "
            "magnitude)"
        )
    else:
        frf = stacked["magnitude"].astype(np.complex128)
    if options.representation == "log_magnitude" and not np.all(np.abs(frf) > 0):
        bad = names[int(np.flatnonzero((np.abs(frf) == 0).any(axis=1))[0])]
        raise DataError(
            f"{folder / bad}: |H| is zero at some frequency, so log10 is undefined (fix: set "
            "data.frf.representation to magnitude or real_imag)"
        )
    logger.debug("read %d FRFs x %d frequencies from %s", len(frf), frf.shape[1], folder)
    return _frf_arrays(
        frf=frf,
        frequencies=curves[0]["frequency"],
        conditions=coordinates,
        condition_names=coordinate_columns,
        representation=options.representation,
        source=str(coordinates_path),
    )


def read_synthetic_frf(config: DataConfig, path: Path | None) -> Arrays:
    """Simulate plate FRFs (:mod:`gan_hpc.data.synthetic`); ``path`` is ignored."""
    frfs = simulate_plate_frf(config.synthetic)
    return _frf_arrays(
        frf=frfs.frf,
        frequencies=frfs.frequencies_hz,
        conditions=frfs.coordinates_m,
        condition_names=COORDINATE_NAMES,
        representation=config.frf.representation,
        source="synthetic_frf",
        metadata={"natural_frequencies_hz": frfs.natural_frequencies_hz.tolist()},
    )
