"""ARFF reader: liac-arff plus a header scan for DATE attributes and one-line errors.

liac-arff knows neither DATE nor RELATIONAL attributes: :func:`read_arff` declares DATE
attributes as STRING before decoding and parses them afterwards (Java SimpleDateFormat
patterns turned into strptime formats), rejects RELATIONAL ones, and maps every liac-arff
exception to a ``file:line: what (fix: ...)`` :class:`~gan_hpc.errors.DataError`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import arff
import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data.paths import _one_line, _read_bytes, _require_path
from gan_hpc.data.types import ColumnInfo, Table
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)


def _read_text(path: Path) -> str:
    """Read the file as UTF-8 text (gunzipped when needed)."""
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.start} is not UTF-8 (fix: re-save the file as UTF-8)"
        ) from None


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
