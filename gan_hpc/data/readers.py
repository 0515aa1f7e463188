"""Readers: one plain function per data format, listed in :data:`READERS`.

Every reader takes the trial's :class:`~gan_hpc.config.DataConfig` and the file to read and
returns :data:`~gan_hpc.data.types.RawData`: a :class:`~gan_hpc.data.types.Table` (ARFF, CSV)
or :class:`~gan_hpc.data.types.Arrays` (images, MATLAB arrays, FRF signals). Bad input raises
a one-line :class:`~gan_hpc.errors.DataError` naming the file (and the line where known), what
is wrong and the fix. :func:`read_data` is the entry point: it picks the format, checks the
file exists, reads it and applies ``data.drop_columns``.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import logging
import math
import re
import struct
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import arff
import numpy as np
import pandas as pd
import scipy.io
from openpyxl.utils.exceptions import InvalidFileException

from gan_hpc.config import DataConfig, DataFormat, FrfRepresentation
from gan_hpc.data.synthetic import COORDINATE_NAMES, simulate_plate_frf
from gan_hpc.data.types import Arrays, ColumnInfo, RawData, Table
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)

Reader = Callable[[DataConfig, Path | None], RawData]

FORMATS: tuple[str, ...] = get_args(DataFormat)
_GZIP_MAGIC = b"\x1f\x8b"


# ------------------------------------------------------------------------------- shared helpers


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


def _read_text(path: Path) -> str:
    """Read the file as UTF-8 text (gunzipped when needed)."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.start} is not UTF-8 (fix: re-save the file as UTF-8)"
        ) from None


def _resolve_beside(base: Path, name: str) -> Path:
    """Resolve ``name``: as given if absolute or present from the cwd, else beside ``base``."""
    candidate = Path(name)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return base.parent / candidate


def _encode_labels(raw: np.ndarray, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices into the sorted distinct labels, and those labels as strings."""
    values = np.asarray(raw).ravel()
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise DataError(f"{source}: labels contain missing values (fix: drop those samples)")
        if np.all(values == np.round(values)):
            values = values.astype(np.int64)
    distinct, indices = np.unique(values, return_inverse=True)
    return indices.astype(np.int64), tuple(str(v) for v in distinct.tolist())


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


# ---------------------------------------------------------------------------------------- ARFF

_RE_ARFF_ATTRIBUTE = re.compile(
    r"""^@attribute\s+("[^"]*"|'[^']*'|[^{}%,\s]+)\s+(.*)$""", re.IGNORECASE
)
_RE_ARFF_DATE = re.compile(r"""^date(?:\s+(?:"(.*)"|'(.*)'|(\S+)))?\s*$""", re.IGNORECASE)
_NUMERIC_ARFF_TYPES = ("NUMERIC", "REAL", "INTEGER")

# Java SimpleDateFormat letters (as written in ARFF DATE patterns) -> strptime directives,
# by pattern letter and run length (0 = any other length).
_JAVA_DATE_DIRECTIVES: dict[str, dict[int, str]] = {
    "y": {2: "%y", 0: "%Y"},
    "M": {1: "%m", 2: "%m", 3: "%b", 0: "%B"},
    "d": {0: "%d"},
    "H": {0: "%H"},
    "h": {0: "%I"},
    "m": {0: "%M"},
    "s": {0: "%S"},
    "S": {0: "%f"},
    "a": {0: "%p"},
    "E": {1: "%a", 2: "%a", 3: "%a", 0: "%A"},
    "D": {0: "%j"},
    "Z": {0: "%z"},
    "z": {0: "%z"},
    "X": {0: "%z"},
}

# What went wrong and the fix, per liac-arff exception.
_ARFF_ERRORS: dict[type[arff.ArffException], tuple[str, str]] = {
    arff.BadRelationFormat: (
        "bad @relation line",
        "write '@relation <name>', quoted if it has spaces",
    ),
    arff.BadAttributeFormat: (
        "bad @attribute line",
        "write '@attribute <name> <type>', quoting names with spaces",
    ),
    arff.BadAttributeType: (
        "unknown attribute type",
        "use numeric, real, integer, string, date or a {nominal, list}",
    ),
    arff.BadAttributeName: ("attribute name declared twice", "rename one of the attributes"),
    arff.BadNominalValue: (
        "value not among the attribute's declared nominal values",
        "add it to the attribute's {...} list or correct the value",
    ),
    arff.BadNominalFormatting: ("nominal value with spaces is not quoted", "quote the value"),
    arff.BadNumericalValue: (
        "non-numeric value in a numeric attribute",
        "correct the value, or write ? for a missing value",
    ),
    arff.BadStringValue: ("string with spaces is not quoted", "quote the value"),
    arff.BadDataFormat: (
        "data row does not match the declared attributes",  # count filled in by _arff_error
        "write one value per @attribute (? for missing), or keep sparse indices in range",
    ),
    arff.BadLayout: (
        "invalid ARFF layout",
        "the file needs '@relation', then '@attribute' lines, then '@data' and the rows",
    ),
}


class _ArffHeader:
    """What the header scan found: date attributes, data-row line numbers, attribute count."""

    def __init__(self) -> None:
        self.date_formats: dict[str, tuple[str | None, int]] = {}  # name -> (pattern, line)
        self.data_lines: list[int] = []  # 1-based line number of each data row, in order
        self.num_attributes = 0


def _scan_arff_header(lines: list[str], path: Path) -> _ArffHeader:
    """Prepare ``lines`` for liac-arff, which knows neither DATE nor RELATIONAL attributes.

    DATE attributes are declared as STRING in place (line numbers stay the same) and parsed
    afterwards; a RELATIONAL attribute is rejected with a clear message.
    """
    header = _ArffHeader()
    in_data = False
    for index, raw_line in enumerate(lines):
        line = raw_line.strip()
        if in_data:
            if line and not line.startswith("%"):
                header.data_lines.append(index + 1)
            continue
        upper = line.upper()
        if upper.startswith("@DATA"):
            in_data = True
        elif upper.startswith("@ATTRIBUTE"):
            header.num_attributes += 1
            match = _RE_ARFF_ATTRIBUTE.match(line)
            if match is None:
                what, fix = _ARFF_ERRORS[arff.BadAttributeFormat]
                raise DataError(f"{path}:{index + 1}: {what} '{_one_line(line)}' (fix: {fix})")
            quoted_name, type_text = match.groups()
            name = quoted_name.strip("\"'")
            if type_text.strip().lower() == "relational":
                raise DataError(
                    f"{path}:{index + 1}: attribute '{name}' is relational, which gan-hpc does "
                    "not support (fix: flatten the relational attribute into ordinary "
                    "attributes, one row per instance)"
                )
            date = _RE_ARFF_DATE.match(type_text.strip())
            if date is not None:
                pattern = next((g for g in date.groups() if g is not None), None)
                header.date_formats[name] = (pattern, index + 1)
                lines[index] = f"@attribute {quoted_name} string"
    if not in_data:
        raise DataError(
            f"{path}:{len(lines)}: no @data line (fix: add '@data' after the @attribute lines, "
            "then the rows)"
        )
    return header


def _arff_error(
    path: Path, exc: arff.ArffException, lines: list[str], num_attributes: int
) -> DataError:
    """Build the one-line DataError for a liac-arff exception: ``file:line: what (fix: ...)``."""
    what, fix = _ARFF_ERRORS.get(type(exc), ("cannot parse the file", "check the ARFF syntax"))
    line = getattr(exc, "line", -1)
    where = f"{path}:{line}" if line > 0 else str(path)
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    if isinstance(exc, arff.BadDataFormat):
        what = f"data row does not match the {num_attributes} declared attributes"
    if isinstance(exc, arff.BadNominalValue):
        value = re.match(r"Data value (.*) not found in nominal", exc.message or "")
        shown = repr(value.group(1)) if value else "a value"
        what = f"{shown} is not among the attribute's declared nominal values"
    elif isinstance(exc, arff.BadLayout) and exc.message and "Error parsing" in exc.message:
        what = "cannot split the row at " + _one_line(exc.message.split("Error parsing", 1)[1])
        fix = "quote values holding spaces, commas or quotes, and close every quote"
    elif text:
        what += f": '{_one_line(text)}'"
    return DataError(f"{where}: {what} (fix: {fix})")


def _java_to_strptime(pattern: str, name: str, where: str) -> str:
    """Convert a Java SimpleDateFormat pattern (ARFF DATE) to a strptime format."""
    out: list[str] = []
    for match in re.finditer(r"'([^']*)'|([A-Za-z])\2*|([^A-Za-z']+)", pattern):
        quoted, letter, literal = match.group(1), match.group(2), match.group(3)
        if quoted is not None:
            out.append(quoted.replace("%", "%%") if quoted else "'")
        elif literal is not None:
            out.append(literal.replace("%", "%%"))
        else:
            directives = _JAVA_DATE_DIRECTIVES.get(letter)
            if directives is None:
                raise DataError(
                    f"{where}: attribute '{name}': date pattern letter '{letter}' in "
                    f"{pattern!r} is not supported (fix: use y M d H h m s S a E D Z)"
                )
            run = len(match.group(0))
            out.append(directives.get(run, directives[0]))
    return "".join(out)


def _parse_arff_dates(
    values: list[Any], name: str, pattern: str | None, where: str, path: Path, rows: list[int]
) -> pd.Series:
    """Parse one DATE column (strings, None = missing) into naive datetime64 (UTC if zoned)."""
    series = pd.Series(values, dtype=object)
    if pattern is None:
        candidates = ["ISO8601"]  # Weka's default, yyyy-MM-dd'T'HH:mm:ss
    else:
        fmt = _java_to_strptime(pattern, name, where)
        # Java's time-zone letters accept both "+0430" and "UTC"; strptime needs %z / %Z.
        candidates = [fmt, fmt.replace("%z", "%Z")] if "%z" in fmt else [fmt]
    for fmt in candidates:
        zoned = "%z" in fmt or "%Z" in fmt
        try:
            parsed = pd.to_datetime(series, format=fmt, utc=zoned)
        except (ValueError, OverflowError):
            continue
        return parsed.dt.tz_convert(None) if zoned else parsed
    coerced = pd.to_datetime(series, format=candidates[0], errors="coerce", utc=True)
    bad = int(np.flatnonzero(series.notna().to_numpy() & coerced.isna().to_numpy())[0])
    shown = pattern or "ISO-8601"
    raise DataError(
        f"{path}:{rows[bad]}: value {series.iloc[bad]!r} of date attribute '{name}' does not "
        f"match the pattern {shown!r} (fix: correct the value or the @attribute date pattern)"
    )


def read_arff(config: DataConfig, path: Path | None) -> Table:
    """Read an ARFF file (dense or sparse rows) with liac-arff.

    Numeric attributes become float64 (NaN = missing), nominal ones pandas Categoricals with
    the declared categories, strings object, dates datetime64. ``?`` is always missing, also
    where a header declares it as a nominal value (UCI Adult).

    Raises:
        DataError: ``file:line: what (fix: ...)`` for a malformed file or an unsupported
            (relational) attribute.

    """
    path = _require_path(path, "arff")
    lines = _read_text(path).splitlines()
    header = _scan_arff_header(lines, path)
    decoder = arff.ArffDecoder()
    try:
        decoded = decoder.decode(lines)
    except arff.ArffException as exc:
        raise _arff_error(path, exc, lines, header.num_attributes) from None
    except (ValueError, OverflowError) as exc:
        # liac-arff attaches line numbers only to its own exceptions; the decoder's counter is
        # the line it was reading.
        line = getattr(decoder, "_current_line", 0)
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        if text.startswith("@"):
            raise DataError(
                f"{path}:{line}: malformed header line '{_one_line(text)}' (fix: write "
                "'@relation <name>', '@attribute <name> <type>' or '@data')"
            ) from None
        raise DataError(
            f"{path}:{line}: cannot parse the row: {_one_line(exc)} (fix: correct the value)"
        ) from None
    attributes: list[tuple[str, Any]] = decoded["attributes"]
    rows: list[list[Any]] = decoded["data"]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in attributes]
    frame: dict[str, Any] = {}
    infos: list[ColumnInfo] = []
    for (name, kind), values in zip(attributes, columns, strict=True):
        if isinstance(kind, list):
            # '?' parses as None: it is the missing marker, never a category.
            categories = list(dict.fromkeys(v for v in kind if v is not None))
            frame[name] = pd.Categorical(values, categories=categories)
            infos.append(ColumnInfo(name=name, kind="categorical", categories=tuple(categories)))
        elif kind in _NUMERIC_ARFF_TYPES:
            try:
                frame[name] = np.array(values, dtype=np.float64)
            except (ValueError, TypeError):
                raise DataError(
                    f"{path}: numeric attribute '{name}' holds a value that is not a number "
                    "(fix: correct it, or write ? for a missing value)"
                ) from None
            infos.append(ColumnInfo(name=name, kind="numeric"))
        elif name in header.date_formats:
            pattern, line = header.date_formats[name]
            frame[name] = _parse_arff_dates(
                list(values), name, pattern, f"{path}:{line}", path, header.data_lines
            ).to_numpy()
            infos.append(ColumnInfo(name=name, kind="date"))
        else:
            frame[name] = pd.Series(values, dtype=object).to_numpy()
            infos.append(ColumnInfo(name=name, kind="string"))
    table = pd.DataFrame(frame, index=pd.RangeIndex(len(rows)))
    logger.debug("read %s: %d rows x %d columns", path, len(table), len(infos))
    return Table(frame=table, columns=tuple(infos), source=str(path))


# ----------------------------------------------------------------------------------------- CSV


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


def _check_column(name: str, available: Sequence[str], path: Path | str, key: str) -> None:
    """Raise a DataError when ``key`` names a column the file does not have."""
    if name not in available:
        raise DataError(
            f"{path}: {key}: no column '{name}'{_suggest(name, available)} "
            f"(available: {', '.join(available)})"
        )


# -------------------------------------------------------------------------------------- images

# IDX element types by the header's type code (all big-endian on disk).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CHANNEL_COUNTS = (1, 3, 4)


def _read_idx_array(path: Path) -> np.ndarray:
    """Parse an IDX file (MNIST's format): magic 0 0 type ndim, big-endian uint32 dims, data."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (bad magic number) (fix: check data.path)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX element type 0x{type_code:02x} (fix: check the file)")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: IDX header is truncated (fix: download the file again)")
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(
            f"{path}: IDX file has {len(data)} bytes but its header {dims} needs {expected} "
            "(fix: download the file again)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def _load_labels(path: Path, num_samples: int, source: Path) -> np.ndarray:
    """Labels from an .npy or IDX file, checked to have one per sample."""
    if not path.is_file():
        raise DataError(f"{path}: labels file not found (fix: check data.images.labels_path)")
    if path.suffix.lower() == ".npy":
        labels = _np_load(path)
    else:
        labels = _read_idx_array(path)
    labels = np.asarray(labels).ravel()
    if len(labels) != num_samples:
        raise DataError(
            f"{path}: {len(labels)} labels for {num_samples} samples in {source} "
            "(fix: point data.images.labels_path at the matching labels file)"
        )
    return labels


def _flat_to_image_shape(
    num_pixels: int, image_shape: tuple[int, ...], source: str
) -> tuple[int, ...]:
    """(C, H, W) for flat rows: ``image_shape`` ((H, W) or (C, H, W)) or an inferred square."""
    if image_shape:
        shape = tuple(image_shape) if len(image_shape) == 3 else (1, *image_shape)
        if len(shape) != 3 or int(np.prod(shape)) != num_pixels:
            raise DataError(
                f"{source}: data.images.image_shape {tuple(image_shape)} does not hold "
                f"{num_pixels} values per row (fix: give (H, W) or (C, H, W) with that product)"
            )
        return shape
    side = math.isqrt(num_pixels)
    if side * side != num_pixels:
        raise DataError(
            f"{source}: {num_pixels} values per row is not a square image (fix: set "
            "data.images.image_shape to (H, W) or (C, H, W))"
        )
    return (1, side, side)


def _to_nchw(array: np.ndarray, config: DataConfig, source: str) -> np.ndarray:
    """Images as (N, C, H, W): flat rows reshaped, (N, H, W) given C=1, channels-last moved."""
    if array.ndim == 2:
        shape = _flat_to_image_shape(array.shape[1], config.images.image_shape, source)
        return array.reshape(len(array), *shape)
    if array.ndim == 3:
        return array[:, None, :, :]
    if array.ndim == 4:
        if array.shape[-1] in _CHANNEL_COUNTS and array.shape[1] not in _CHANNEL_COUNTS:
            return np.ascontiguousarray(np.moveaxis(array, -1, 1))
        if array.shape[1] in _CHANNEL_COUNTS:
            return array
    raise DataError(
        f"{source}: cannot read an array of shape {array.shape} as images (fix: store "
        "(N, H, W), (N, C, H, W) or (N, H, W, C) with C in 1, 3, 4, or flat (N, H*W) rows)"
    )


def _image_arrays(
    images: np.ndarray, labels: np.ndarray | None, config: DataConfig, source: str
) -> Arrays:
    """Arrays(kind='image') with class-index labels."""
    samples = _to_nchw(images, config, source)
    if labels is None:
        return Arrays(kind="image", samples=samples, source=source)
    indices, names = _encode_labels(labels, source)
    return Arrays(kind="image", samples=samples, source=source, labels=indices, label_names=names)


def read_idx(config: DataConfig, path: Path | None) -> Arrays:
    """Read MNIST-style IDX images (gzipped or raw), labels from ``images.labels_path``."""
    path = _require_path(path, "idx")
    images = _read_idx_array(path)
    labels = None
    if config.images.labels_path is not None:
        labels_path = _resolve_beside(path, config.images.labels_path)
        labels = _load_labels(labels_path, len(images), path)
    return _image_arrays(images, labels, config, str(path))


def _np_load(path: Path) -> Any:
    """np.load without pickles, its errors as DataErrors."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: cannot read as NumPy data: {_one_line(exc)} (fix: save it with numpy.save "
            "/ numpy.savez, without object arrays)"
        ) from None


def read_npy(config: DataConfig, path: Path | None) -> Arrays:
    """Read an image array from .npy; labels from ``images.labels_path`` (.npy or IDX)."""
    path = _require_path(path, "npy")
    images = np.asarray(_np_load(path))
    labels = None
    if config.images.labels_path is not None:
        labels_path = _resolve_beside(path, config.images.labels_path)
        labels = _load_labels(labels_path, len(images), path)
    return _image_arrays(images, labels, config, str(path))


def _npz_member(members: dict[str, np.ndarray], key: str, path: Path, option: str) -> np.ndarray:
    """One named .npz member, or a DataError listing the members."""
    if key not in members:
        raise DataError(
            f"{path}: no member '{key}'{_suggest(key, list(members))} "
            f"(fix: set data.images.{option} to one of: {', '.join(members)})"
        )
    return members[key]


def read_npz(config: DataConfig, path: Path | None) -> Arrays:
    """Read images (and labels) from an .npz archive.

    Images: ``images.images_key``, else the first member with 3 or more dimensions. Labels:
    ``images.labels_key``, else a 1-D ``labels`` / ``y`` member (or ``y_train`` beside
    ``x_train``) with one entry per image.
    """
    path = _require_path(path, "npz")
    with _np_load(path) as archive:
        try:
            members = {name: archive[name] for name in archive.files}
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise DataError(
                f"{path}: cannot read a member: {_one_line(exc)} (fix: save plain numeric "
                "arrays with numpy.savez)"
            ) from None
    options = config.images
    if options.images_key is not None:
        images_key = options.images_key
        images = _npz_member(members, images_key, path, "images_key")
    else:
        candidates = [name for name, value in members.items() if value.ndim >= 3]
        if not candidates:
            shapes = ", ".join(f"{name} {value.shape}" for name, value in members.items())
            raise DataError(
                f"{path}: no member with 3 or more dimensions ({shapes or 'empty archive'}) "
                "(fix: set data.images.images_key)"
            )
        images_key = candidates[0]
        images = members[images_key]
    labels = None
    if options.labels_key is not None:
        labels = _npz_member(members, options.labels_key, path, "labels_key").ravel()
    else:
        paired = "y" + images_key[1:] if images_key[:1] in ("x", "X") else None
        for key in ("labels", "y", paired):
            value = members.get(key) if key else None
            if value is not None and value.ndim == 1 and len(value) == len(images):
                labels = value
                break
    if labels is not None and len(labels) != len(images):
        raise DataError(
            f"{path}: {len(labels)} labels for {len(images)} images (fix: set "
            "data.images.labels_key to the matching member)"
        )
    return _image_arrays(images, labels, config, f"{path}:{images_key}")


def _first_line_has_text(text: str, delimiter: str) -> bool:
    """Whether the first line holds a non-numeric token (i.e. is a header)."""
    first = text.splitlines()[0] if text else ""
    tokens = first.split() if delimiter == r"\s+" else first.split(delimiter)
    for token in tokens:
        try:
            float(token.strip().strip("\"'"))
        except ValueError:
            return True
    return False


def read_pixels_csv(config: DataConfig, path: Path | None) -> Arrays:
    """Read flattened images, one per CSV row, plus a label column (header detected).

    ``images.label_column`` (default -1, the last column; None for no labels) holds the label;
    the other columns are pixels reshaped to ``images.image_shape`` or an inferred square.
    """
    path = _require_path(path, "pixels_csv")
    options = config.csv
    head = _head_text(path, options.skip_rows)
    delimiter = options.delimiter or _sniff_delimiter(head, path)
    frame = _read_delimited(
        path,
        delimiter=delimiter,
        header=0 if _first_line_has_text(head, delimiter) else None,
        skip_rows=options.skip_rows,
        missing_values=(),
    )
    values = frame.to_numpy()
    if values.dtype.kind not in "iuf":
        raise DataError(
            f"{path}: pixel rows must be numbers (fix: use format 'csv' for tables, or remove "
            "the non-numeric columns)"
        )
    label_column = config.images.label_column
    labels = None
    if label_column is not None:
        if not -values.shape[1] <= label_column < values.shape[1]:
            raise DataError(
                f"{path}: data.images.label_column {label_column} is out of range for "
                f"{values.shape[1]} columns (fix: give a column index, or null for no labels)"
            )
        labels = values[:, label_column]
        values = np.delete(values, label_column % values.shape[1], axis=1)
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise DataError(f"{path}: some pixel values are missing (fix: fill or drop those rows)")
    return _image_arrays(values, labels, config, str(path))


# ---------------------------------------------------------------------------------------- MATLAB


def read_mat(config: DataConfig, path: Path | None) -> Arrays:
    """Read a numeric array from a MATLAB v5 .mat file as images (one sample per row).

    Flat rows of P values are reshaped to ``images.image_shape`` if set, to the square side if
    P is square, or else zero-padded to the next square (4734 -> 69 x 69);
    ``metadata["flat_length"]`` keeps P so padding can be removed.
    """
    path = _require_path(path, "mat")
    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(
            f"{path}: is a MATLAB v7.3 (HDF5) file, which gan-hpc cannot read (fix: re-save it "
            "in MATLAB with save(..., '-v7'), or convert it to .npy/.npz and set data.format "
            "to npy/npz)"
        ) from None
    except (ValueError, OSError, scipy.io.matlab.MatReadError) as exc:
        raise DataError(
            f"{path}: not a readable MATLAB v5 file: {_one_line(exc)} (fix: re-save it with "
            "save(..., '-v7'))"
        ) from None
    variables = [name for name in contents if not name.startswith("__")]
    options = config.mat
    if options.variable is not None:
        if options.variable not in variables:
            raise DataError(
                f"{path}: no variable '{options.variable}'{_suggest(options.variable, variables)}"
                f" (fix: set data.mat.variable to one of: {', '.join(variables)})"
            )
        name = options.variable
    elif len(variables) == 1:
        name = variables[0]
    else:
        raise DataError(
            f"{path}: holds {len(variables)} variables ({', '.join(variables) or 'none'}) "
            "(fix: set data.mat.variable to the one to read)"
        )
    array = np.asarray(contents[name])
    if array.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: variable '{name}' is not a numeric array (dtype {array.dtype}) (fix: store "
            "the samples as a numeric matrix)"
        )
    array = np.moveaxis(np.atleast_2d(array), options.samples_axis, 0)
    source = f"{path}:{name}"
    metadata: dict[str, Any] = {}
    if array.ndim == 2:
        num_values = array.shape[1]
        metadata["flat_length"] = num_values
        side = math.isqrt(num_values)
        if not config.images.image_shape and side * side != num_values and options.pad_to_square:
            side += 1
            padded = np.zeros((len(array), side * side), dtype=array.dtype)
            padded[:, :num_values] = array
            array = padded
    samples = _to_nchw(np.ascontiguousarray(array), config, source)
    return Arrays(kind="image", samples=samples, source=source, metadata=metadata)


# ------------------------------------------------------------------------------------------ FRF

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
