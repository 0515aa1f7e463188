"""Leaderboard rendering: a ranked leaderboard (:func:`gan_hpc.sweep.rank.rank_trials`) as text.

One owner for every format (:data:`gan_hpc.sweep.directory.LEADERBOARD_FORMATS`): the aligned table
that fits a terminal, CSV, JSON records and Markdown, and ``<sweep_dir>/leaderboard.csv``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gan_hpc.config import is_quality_metric
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_text, strict_json_text
from gan_hpc.quality_names import (
    IMG_CLASS_COVERAGE,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    SIG_DETECTION_AUC,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    TAB_DETECTION_AUC,
    TAB_TABULAR_SCORE,
    TAB_TSTR,
)
from gan_hpc.sweep.directory import LEADERBOARD_FILE, LEADERBOARD_FORMATS, LeaderboardFormat
from gan_hpc.sweep.rank import CONFIRM_COLUMNS, LEADING_COLUMNS, METRIC_COLUMNS


def format_leaderboard(df: pd.DataFrame, fmt: LeaderboardFormat = "table") -> str:
    """Render a leaderboard as an aligned text table, CSV, JSON records or a Markdown table.

    Raises:
        SweepError: ``fmt`` is not one of the :data:`LEADERBOARD_FORMATS`.

    """
    if fmt == "csv":
        return str(df.to_csv(index=False))
    if fmt == "json":
        # pandas' NA is the one missing value the JSON writer does not know
        records = [
            {key: None if value is pd.NA else value for key, value in row.items()}
            for row in df.to_dict(orient="records")
        ]
        return strict_json_text(records)
    if fmt == "markdown":
        header = [str(c) for c in df.columns]
        lines = [
            "| " + " | ".join(header) + " |",
            "| " + " | ".join("---" for _ in header) + " |",
        ]
        for row in df.itertuples(index=False):
            cells = [format_cell(value).replace("|", "\\|") for value in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "table":  # every column, full headers (the terminal's view: format_table)
        return format_table(
            df, columns=[str(c) for c in df.columns], width=None, use_short_headers=False
        )
    valid = ", ".join(LEADERBOARD_FORMATS)
    raise SweepError(f"unknown leaderboard format '{fmt}' (valid: {valid})")


# Headline quality metrics per data kind, in display order: the kind whose names the
# leaderboard holds most of is the sweep's (no data needs to be read to tell).
HEADLINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "tabular": (TAB_TSTR, TAB_DETECTION_AUC, TAB_TABULAR_SCORE),
    "image": (IMG_FD, IMG_CONDITIONAL_ACCURACY, IMG_CLASS_COVERAGE),
    "signal": (SIG_SPECTRAL_ERROR, SIG_RESONANCE_ERROR, SIG_DETECTION_AUC),
}
DEFAULT_TABLE_WIDTH = 120  # when stdout is not a terminal
_TABLE_LEADING = ("rank", "trial_id", "state", "step", "gate", "score")
_TABLE_OPTIONAL = ("flags", "pareto_front", "confirm_mean", "held_up")  # shown when not empty
_SHORT_NAMES = {
    "trial_id": "trial",
    "pareto_front": "front",
    TAB_TSTR: "tstr",
    TAB_DETECTION_AUC: "detect_auc",
    TAB_TABULAR_SCORE: "tab_score",
    IMG_FD: "fd",
    IMG_CONDITIONAL_ACCURACY: "cond_acc",
    IMG_CLASS_COVERAGE: "coverage",
    SIG_SPECTRAL_ERROR: "spec_err_db",
    SIG_RESONANCE_ERROR: "reson_err",
}
_SEPARATOR = "  "


def table_columns(df: pd.DataFrame) -> list[str]:
    """The columns a terminal leaderboard shows by default, most important first.

    Rank, trial, state, step, gate and score; flags, Pareto front and confirmation figures when
    any row has them; the headline quality metrics of the sweep's data kind (but the one that
    is the score); the searched parameters.
    """
    present = set(df.columns)
    kind = max(HEADLINE_COLUMNS, key=lambda k: sum(name in present for name in HEADLINE_COLUMNS[k]))
    # a headline metric the sweep ranks by is the score column already
    headline = [
        name
        for name in HEADLINE_COLUMNS[kind]
        if name in present and not _same_values(df[name], df["score"])
    ]
    optional = [c for c in _TABLE_OPTIONAL if c in present and _has_values(df[c])]
    return [
        *(c for c in _TABLE_LEADING if c in present),
        *optional,
        *headline,
        *param_columns(df),
    ]


def param_columns(df: pd.DataFrame) -> list[str]:
    """The searched-parameter columns of a leaderboard (those after the quality metrics)."""
    known = {*LEADING_COLUMNS, *CONFIRM_COLUMNS, *METRIC_COLUMNS, "pareto_front", "checkpoint"}
    return [str(c) for c in df.columns if c not in known and not is_quality_metric(str(c))]


def _same_values(column: pd.Series, other: pd.Series) -> bool:
    """True when two columns hold the same values (missing ones included) in every row."""
    return len(column) > 0 and all(
        format_cell(a) == format_cell(b) for a, b in zip(column, other, strict=True)
    )


def _has_values(column: pd.Series) -> bool:
    """True when some cell of the column is neither missing nor empty."""
    return any(format_cell(value) for value in column)


def short_headers(columns: Sequence[str]) -> dict[str, str]:
    """Short header of each column: ``quality/`` stripped, dotted keys cut to their last part.

    The headline metrics have fixed abbreviations (``tstr``, ``fd``, ``spec_err_db``...), and
    a dotted key keeps as many trailing parts as make it unique among ``columns``.
    """
    names = {c: _SHORT_NAMES.get(c, c.removeprefix("quality/")) for c in columns}
    short = {}
    for column, name in names.items():
        # "loss.name" says which loss: the parent is the better header
        parts = name.removesuffix(".name").split(".")
        for keep in range(1, len(parts) + 1):
            tail = ".".join(parts[-keep:])
            others = (other for c, other in names.items() if c != column)
            if not any(other == tail or other.endswith(f".{tail}") for other in others):
                break
        short[column] = tail
    return short


def select_columns(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Resolve ``--columns`` names (full or short headers) to leaderboard columns.

    Raises:
        SweepError: a name matches no column; the message lists close matches or the valid ones.

    """
    short = short_headers([str(c) for c in df.columns])
    lookup = {str(c): str(c) for c in df.columns}
    lookup.update({name: column for column, name in short.items()})
    chosen = []
    for name in names:
        if name not in lookup:
            close = difflib.get_close_matches(name, list(lookup), n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"valid: {', '.join(short.values())}"
            )
            raise SweepError(f"--columns: no column '{name}' ({hint})")
        chosen.append(lookup[name])
    return chosen


def format_table(
    df: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    width: int | None = DEFAULT_TABLE_WIDTH,
    use_short_headers: bool = True,
) -> str:
    """Render a leaderboard for a terminal: chosen columns, short headers, within ``width``.

    Args:
        df: a leaderboard (:func:`gan_hpc.sweep.rank.rank_trials`).
        columns: the columns to show, in order (default :func:`table_columns`).
        width: the widest a line may be; columns that do not fit are left out (empty ones
            first, then from the last; the first two always stay), and a last line names
            them. None: no limit.
        use_short_headers: headers as :func:`short_headers` makes them; False: full names.

    Returns:
        The aligned table, ending with a newline.

    """
    chosen = list(columns) if columns is not None else table_columns(df)
    headers = short_headers(chosen) if use_short_headers else {c: c for c in chosen}
    cells = {
        column: [headers[column], *(format_cell(value) for value in df[column])]
        for column in chosen
    }
    widths = {column: max(len(cell) for cell in cells[column]) for column in chosen}
    shown = list(chosen)
    while width is not None and len(shown) > 2 and _line_width(shown, widths) > width:
        # columns without a value (a parameter no trial sampled) go first, then the last one
        empty = [c for c in shown[2:] if not any(cells[c][1:])]
        shown.remove(empty[-1] if empty else shown[-1])
    lines = [
        _SEPARATOR.join(cells[c][i].ljust(widths[c]) for c in shown).rstrip()
        for i in range(len(df) + 1)
    ]
    hidden = [headers[c] for c in chosen if c not in shown]
    if hidden:
        lines.append(f"(left out to fit: {', '.join(hidden)}; see --columns, --all)")
    return "\n".join(lines) + "\n"


def _line_width(columns: Sequence[str], widths: Mapping[str, int]) -> int:
    """Width of a table line with these columns."""
    return sum(widths[c] for c in columns) + len(_SEPARATOR) * (len(columns) - 1)


def format_cell(value: Any) -> str:
    """One value as short text: floats to 4 significant digits, missing values empty."""
    if is_missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def write_leaderboard(sweep_dir: Path, df: pd.DataFrame) -> Path:
    """Write ``<sweep_dir>/leaderboard.csv`` atomically; return its path."""
    path = Path(sweep_dir) / LEADERBOARD_FILE
    atomic_write_text(path, format_leaderboard(df, "csv"))
    return path
