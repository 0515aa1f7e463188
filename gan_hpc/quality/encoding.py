"""Tables as numbers: column kinds, category labels and a one-hot + min-max row encoder.

Shared by the tabular metrics (detection, ML efficacy, closest records) and the seed's
cosine-distance analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_MISSING = "<missing>"  # the category of a missing categorical value


def is_numeric_column(series: pd.Series) -> bool:
    """Numbers and dates are compared as numbers; everything else as categories."""
    if pd.api.types.is_bool_dtype(series):
        return False
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series)


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as float64 (dates as nanoseconds; NaN where missing or not a number)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.to_numpy(dtype="datetime64[ns]")
        out = values.astype(np.int64).astype(np.float64)
        out[np.isnat(values)] = np.nan
        return out
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)


def category_labels(series: pd.Series) -> np.ndarray:
    """A column as strings, missing values as the category ``<missing>``."""
    values = series.to_numpy(dtype=object)
    labels = values.astype(str)
    labels[pd.isna(values)] = _MISSING
    return labels


@dataclass(frozen=True)
class TableEncoder:
    """Rows -> float vectors: min-max numerics (NaN -> 0 plus an indicator), one-hot categories.

    Fitted on a reference table (:func:`fit_table_encoder`); categories unseen there encode as
    all zeros, numerics outside its range fall outside [0, 1].
    """

    numeric: tuple[tuple[str, float, float, bool], ...]  # name, low, high, has_missing
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # name, categories

    @property
    def num_features(self) -> int:
        """Width of an encoded row."""
        widths = [1 + int(has_missing) for _, _, _, has_missing in self.numeric]
        return sum(widths) + sum(len(categories) for _, categories in self.categorical)

    def encode(self, frame: pd.DataFrame, *, onehot_scale: float = 1.0) -> np.ndarray:
        """(N, num_features) float32; one-hot entries are ``onehot_scale`` instead of 1."""
        blocks: list[np.ndarray] = []
        for name, low, high, has_missing in self.numeric:
            values = (numeric_values(frame[name]) - low) / (high - low if high > low else 1.0)
            missing = np.isnan(values)
            blocks.append(np.where(missing, 0.0, values)[:, None])
            if has_missing:
                blocks.append(missing[:, None].astype(np.float64))
        for name, categories in self.categorical:
            # -1 for a label outside the fitted categories (e.g. a generated rarity)
            codes = pd.Index(categories).get_indexer(np.asarray(category_labels(frame[name])))
            onehot = np.zeros((len(frame), len(categories)))
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = onehot_scale
            blocks.append(onehot)
        if not blocks:
            return np.zeros((len(frame), 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)


def fit_table_encoder(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> TableEncoder:
    """Fit a :class:`TableEncoder` on ``frame`` (all columns, or ``columns`` in that order)."""
    numeric: list[tuple[str, float, float, bool]] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for name in frame.columns if columns is None else columns:
        series = frame[name]
        if is_numeric_column(series):
            values = numeric_values(series)
            present = values[~np.isnan(values)]
            low, high = (float(present.min()), float(present.max())) if len(present) else (0.0, 1.0)
            numeric.append((name, low, high, bool(np.isnan(values).any())))
        else:
            categorical.append((name, tuple(pd.unique(category_labels(series)))))
    return TableEncoder(numeric=tuple(numeric), categorical=tuple(categorical))
