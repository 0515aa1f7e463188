"""Human-readable summaries of raw data, for ``gan-hpc data inspect``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gan_hpc.data.types import Arrays, RawData, Table

MAX_CATEGORIES_SHOWN = 8


def describe_columns(table: Table) -> pd.DataFrame:
    """One row per column: kind, dtype, missing count, distinct values and categories or range."""
    rows = []
    for info in table.columns:
        series = table.frame[info.name]
        if info.kind == "categorical":
            categories = list(info.categories) or sorted(series.dropna().astype(str).unique())
            shown = ", ".join(categories[:MAX_CATEGORIES_SHOWN])
            detail = shown + (
                f", ... ({len(categories)} in all)"
                if len(categories) > MAX_CATEGORIES_SHOWN
                else ""
            )
        elif info.kind == "numeric" and series.notna().any():
            detail = f"{series.min():.6g} .. {series.max():.6g}"
        elif info.kind == "date" and series.notna().any():
            detail = f"{series.min()} .. {series.max()}"
        else:
            detail = ""
        rows.append(
            {
                "column": info.name,
                "kind": info.kind,
                "dtype": str(series.dtype),
                "missing": int(series.isna().sum()),
                "distinct": int(series.nunique(dropna=True)),
                "categories / range": detail,
            }
        )
    return pd.DataFrame(rows)


def describe(raw: RawData) -> str:
    """A multi-line summary of a table's schema or an array set's shapes."""
    if isinstance(raw, Table):
        header = f"{raw.source}: table, {len(raw.frame)} rows x {len(raw.columns)} columns"
        return header + "\n" + describe_columns(raw).to_string(index=False)
    return _describe_arrays(raw)


def _describe_arrays(arrays: Arrays) -> str:
    """Shapes, value range, labels and conditions of an :class:`Arrays`."""
    samples = arrays.samples
    lines = [
        f"{arrays.source}: {arrays.kind} data, {samples.shape[0]} samples "
        f"of shape {tuple(samples.shape[1:])}",
        f"  dtype {samples.dtype}, values "
        f"{float(np.nanmin(samples)):.6g} .. {float(np.nanmax(samples)):.6g}",
    ]
    if arrays.channel_names:
        lines.append(f"  channels: {', '.join(arrays.channel_names)}")
    if arrays.axis is not None:
        lines.append(
            f"  axis {arrays.axis_name or 'index'}: {len(arrays.axis)} points, "
            f"{float(arrays.axis[0]):.6g} .. {float(arrays.axis[-1]):.6g}"
        )
    if arrays.labels is not None:
        counts = np.bincount(arrays.labels, minlength=len(arrays.label_names))
        names = arrays.label_names or tuple(str(i) for i in range(len(counts)))
        pairs = ", ".join(f"{name}: {count}" for name, count in zip(names, counts, strict=False))
        lines.append(f"  labels ({len(counts)} classes): {pairs}")
    if arrays.conditions is not None:
        for index, name in enumerate(arrays.condition_names):
            column = arrays.conditions[:, index]
            lines.append(
                f"  condition {name}: {float(column.min()):.6g} .. {float(column.max()):.6g}"
            )
    for key, value in arrays.metadata.items():
        lines.append(f"  {key}: {_short(value)}")
    return "\n".join(lines)


def _short(value: object) -> str:
    """A metadata value, long sequences cut to their first few items."""
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) > MAX_CATEGORIES_SHOWN:
        head = ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in list(value)[:6])
        return f"[{head}, ...] ({len(value)} in all)"
    return str(value)
