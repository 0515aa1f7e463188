"""Column codecs of the tabular transform, and the scaling helpers every transform shares.

A codec fits one table column on the training split and maps it to model features and back:
:class:`_NumericCodec` (numeric and date columns, a spiked numeric as a mixed block) and
:class:`_CategoricalCodec` (categorical and short string columns). Their state is plain JSON
(``to_dict`` / :func:`_codec_from_dict`). :func:`_minmax`, :func:`_unminmax`,
:func:`_class_frequencies` and :func:`_json_safe` are also used by the image and signal
transforms.
"""

from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data.types import ColumnBlock
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)

MISSING_CLASS_NAME = "<missing>"  # class name of the missing slot of a tabular condition
MAX_QUANTILES = 1000
_DATE_RESOLUTIONS_S = (86400.0, 3600.0, 60.0, 1.0)  # day, hour, minute, second
_EPOCH = pd.Timestamp(0)


# ------------------------------------------------------------------------------------ helpers


def _json_safe(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples to plain JSON types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _fields_to_dict(instance: Any) -> dict[str, Any]:
    """Return a dataclass's fields as JSON-safe values."""
    return {f.name: _json_safe(getattr(instance, f.name)) for f in dataclasses.fields(instance)}


def _minmax(values: np.ndarray, low: Any, high: Any, target: Sequence[float]) -> np.ndarray:
    """Scale ``values`` from [low, high] to ``target``; a constant maps to the target's middle."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    span = high - low
    constant = span == 0
    unit = (values - low) / np.where(constant, 1.0, span)
    unit = np.where(constant, 0.5, unit)
    return target[0] + unit * (target[1] - target[0])


def _unminmax(scaled: np.ndarray, low: Any, high: Any, target: Sequence[float]) -> np.ndarray:
    """Inverse of :func:`_minmax`, clipping to ``target`` first (so to [low, high] after)."""
    unit = (np.clip(scaled, target[0], target[1]) - target[0]) / (target[1] - target[0])
    low = np.asarray(low, dtype=np.float64)
    return low + unit * (np.asarray(high, dtype=np.float64) - low)


def _class_frequencies(codes: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Share of each class in ``codes``."""
    counts = np.bincount(codes, minlength=num_classes)[:num_classes]
    return tuple(float(c) for c in counts / max(1, len(codes)))


def _quantile_transformer(quantiles: Sequence[float], references: Sequence[float]) -> Any:
    """Rebuild a fitted scikit-learn QuantileTransformer from its stored arrays."""
    from sklearn.preprocessing import QuantileTransformer  # slow import: only when used

    qt = QuantileTransformer(output_distribution="normal", n_quantiles=len(references))
    qt.quantiles_ = np.asarray(quantiles, dtype=np.float64).reshape(-1, 1)
    qt.references_ = np.asarray(references, dtype=np.float64)
    qt.n_quantiles_ = len(references)
    qt.n_features_in_ = 1
    return qt


# ------------------------------------------------------------------------------ tabular codecs


@dataclass(frozen=True)
class _NumericCodec:
    """One numeric (or date) column: min-max or quantile-normal.

    Width 1, or 3 for a column with a ``spike`` (a value that at least
    ``data.spike_min_share`` of the training rows hold, e.g. capital-gain's 0): the one-hot
    [at the spike, elsewhere], then the other values, scaled on their own, 0 at the spike.
    The quantiles are those of the other values, so the column's tail keeps its resolution.
    """

    name: str
    origin: Literal["numeric", "date"]
    scaling: Literal["minmax", "quantile"]
    target: tuple[float, float]
    low: float  # training min (epoch seconds for dates)
    high: float
    median: float
    is_integer: bool
    quantiles: tuple[float, ...] = ()
    references: tuple[float, ...] = ()
    date_dtype: str = ""
    date_resolution_s: float = 0.0
    is_dequantized: bool = False  # U(-0.5, 0.5) noise added before the quantile map
    spike: float | None = None

    @property
    def width(self) -> int:
        """Number of model features."""
        return 1 if self.spike is None else 3

    @property
    def block(self) -> ColumnBlock:
        """The schema block."""
        if self.spike is None:
            return ColumnBlock(self.name, "numeric", 1)
        return ColumnBlock(self.name, "mixed", 3)

    @classmethod
    def fit(
        cls,
        series: pd.Series,
        origin: Literal["numeric", "date"],
        config: DataConfig,
        source: str,
    ) -> _NumericCodec | None:
        """Fit on a training column; None when it has no observed value."""
        values = _numeric_values(series, origin, source)
        observed = values[~np.isnan(values)]
        if observed.size == 0:
            return None
        spike = _spike(observed, config.spike_min_share) if origin == "numeric" else None
        scaled = observed if spike is None else observed[observed != spike]
        quantiles: tuple[float, ...] = ()
        references: tuple[float, ...] = ()
        is_integer = origin == "numeric" and bool(np.all(observed == np.round(observed)))
        is_dequantized = config.numeric_transform == "quantile" and config.dequantize and is_integer
        if config.numeric_transform == "quantile":
            from sklearn.preprocessing import QuantileTransformer

            fitted = scaled
            if is_dequantized:
                fitted = scaled + _dequantization_noise(str(series.name), scaled.size)
            # subsample=None: every training value, so the fit is exact and deterministic.
            qt = QuantileTransformer(
                output_distribution="normal",
                n_quantiles=min(MAX_QUANTILES, scaled.size),
                subsample=None,
            ).fit(fitted.reshape(-1, 1))
            quantiles = tuple(float(q) for q in qt.quantiles_[:, 0])
            references = tuple(float(r) for r in qt.references_)
        resolution = 0.0
        if origin == "date":
            resolution = next(
                (r for r in _DATE_RESOLUTIONS_S if np.all(np.mod(observed, r) == 0)), 0.0
            )
        return cls(
            name=str(series.name),
            origin=origin,
            scaling=config.numeric_transform,
            target=(float(config.minmax_range[0]), float(config.minmax_range[1])),
            low=float(observed.min()),
            high=float(observed.max()),
            median=float(np.median(observed)),
            is_integer=is_integer,
            quantiles=quantiles,
            references=references,
            date_dtype=str(series.dtype) if origin == "date" else "",
            date_resolution_s=resolution,
            is_dequantized=is_dequantized,
            spike=spike,
        )

    def prepare(self, series: pd.Series, source: str) -> np.ndarray:
        """Raw column -> float64 values, NaN where missing."""
        return _numeric_values(series, self.origin, source)

    @staticmethod
    def is_missing(prepared: np.ndarray) -> np.ndarray:
        """Mask of missing rows."""
        return np.isnan(prepared)

    def encode(self, prepared: np.ndarray) -> np.ndarray:
        """Map prepared values to (N, width) features; NaN is imputed with the training median."""
        values = np.where(np.isnan(prepared), self.median, prepared)
        if self.spike is None:
            return self._scale(values).reshape(-1, 1)
        at_spike = values == self.spike
        features = np.zeros((values.size, 3), dtype=np.float64)
        features[:, 0] = at_spike
        features[:, 1] = ~at_spike
        if not at_spike.all():
            features[~at_spike, 2] = self._scale(values[~at_spike])
        return features

    def _scale(self, values: np.ndarray) -> np.ndarray:
        """Values -> 1-D model values (dequantised first when the fit was)."""
        if self.is_dequantized:
            values = values + _dequantization_noise(self.name, values.size)
        if self.scaling == "quantile":
            qt = _quantile_transformer(self.quantiles, self.references)
            return np.asarray(qt.transform(values.reshape(-1, 1)), dtype=np.float64)[:, 0]
        return np.asarray(_minmax(values, self.low, self.high, self.target), dtype=np.float64)

    def decode(self, block: np.ndarray) -> pd.Series:
        """(N, width) model features -> a column in the trained dtype, clipped to its range."""
        block = np.asarray(block, dtype=np.float64).reshape(len(block), -1)
        scaled = block[:, -1]
        if self.scaling == "quantile":
            qt = _quantile_transformer(self.quantiles, self.references)
            values = np.asarray(qt.inverse_transform(scaled.reshape(-1, 1)))[:, 0]
        else:
            values = _unminmax(scaled, self.low, self.high, self.target)
        values = np.clip(values, self.low, self.high)
        if self.spike is not None:
            values = np.where(block[:, :2].argmax(axis=1) == 0, self.spike, values)
        return self.decode_values(values)

    def decode_values(self, values: np.ndarray) -> pd.Series:
        """Values in raw units (epoch seconds for dates) -> the column in the trained dtype."""
        values = np.asarray(values, dtype=np.float64)
        if self.origin == "date":
            return self._to_dates(values)
        if not self.is_integer:
            return pd.Series(values, name=self.name, dtype="float64")
        rounded = np.round(values)
        if np.isnan(rounded).any():
            return pd.Series(rounded, name=self.name).astype("Int64")
        return pd.Series(rounded.astype(np.int64), name=self.name)

    def _to_dates(self, seconds: np.ndarray) -> pd.Series:
        """Epoch seconds -> datetimes in the trained dtype (and time zone)."""
        if self.date_resolution_s > 0:
            seconds = np.round(seconds / self.date_resolution_s) * self.date_resolution_s
        # Whole microseconds keep the float -> datetime conversion exact for second data.
        micros = pd.array(np.round(seconds * 1e6), dtype="Int64")
        naive = pd.Series(pd.to_datetime(micros, unit="us"), name=self.name)
        dtype = pd.api.types.pandas_dtype(self.date_dtype)
        if isinstance(dtype, pd.DatetimeTZDtype):
            return naive.dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
        return naive.astype(dtype)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {"codec": "numeric", **_fields_to_dict(self)}


def _spike(observed: np.ndarray, min_share: float | None) -> float | None:
    """The value that at least ``min_share`` of ``observed`` hold, if any other value exists."""
    if min_share is None:
        return None
    values, counts = np.unique(observed, return_counts=True)
    top = int(counts.argmax())
    if len(values) < 2 or counts[top] < min_share * observed.size:
        return None
    return float(values[top])


def _dequantization_noise(name: str, size: int) -> np.ndarray:
    """U(-0.5, 0.5) noise for ``size`` values of column ``name``, the same in every process.

    Seeded by the column's name and the number of values, so a split encodes the same way
    every time (the encoded arrays are cached, and DDP ranks must agree).
    """
    rng = np.random.default_rng([zlib.crc32(name.encode("utf-8")), size])
    return rng.uniform(-0.5, 0.5, size)


def _numeric_values(
    series: pd.Series, origin: Literal["numeric", "date"], source: str
) -> np.ndarray:
    """Return a numeric or date column as float64 (dates: epoch seconds), NaN if missing."""
    try:
        if origin == "date":
            dates = pd.to_datetime(series)
            if isinstance(dates.dtype, pd.DatetimeTZDtype):
                dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
            seconds = (dates - _EPOCH) / pd.Timedelta(seconds=1)
            return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{source}: column '{series.name}': expected {origin} values, got "
            f"{series.dtype} ({exc}); fix the file or declare the column's type"
        ) from None


@dataclass(frozen=True)
class _CategoricalCodec:
    """One categorical (or short string) column: one-hot block or a scaled integer code."""

    name: str
    origin: Literal["categorical", "string"]
    encoding: Literal["onehot", "codes"]
    target: tuple[float, float]
    categories: tuple[Any, ...]
    ordered: bool
    has_missing_slot: bool  # code len(categories) means missing
    mode_code: int  # imputes a missing value when there is no missing slot

    @property
    def num_classes(self) -> int:
        """Categories plus the missing slot, if any."""
        return len(self.categories) + int(self.has_missing_slot)

    @property
    def width(self) -> int:
        """Number of model features."""
        return self.num_classes if self.encoding == "onehot" else 1

    @property
    def block(self) -> ColumnBlock:
        """The schema block (codes are a numeric feature of width 1)."""
        if self.encoding == "onehot":
            return ColumnBlock(self.name, "categorical", self.width)
        return ColumnBlock(self.name, "numeric", 1)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the classes in code order (the missing slot last)."""
        names = tuple(str(c) for c in self.categories)
        return names + ((MISSING_CLASS_NAME,) if self.has_missing_slot else ())

    @classmethod
    def fit(
        cls, series: pd.Series, origin: Literal["categorical", "string"], config: DataConfig
    ) -> _CategoricalCodec:
        """Fit on a training column (declared categories, or sorted distinct strings)."""
        if isinstance(series.dtype, pd.CategoricalDtype):
            categories = tuple(series.cat.categories.tolist())
            ordered = bool(series.cat.ordered)
        else:
            categories = tuple(sorted(series.dropna().unique().tolist(), key=str))
            ordered = False
        codes = _category_codes(series, categories)
        observed = codes[codes >= 0]
        mode = (
            int(np.bincount(observed, minlength=len(categories)).argmax()) if observed.size else 0
        )
        return cls(
            name=str(series.name),
            origin=origin,
            encoding=config.categorical_encoding,
            target=(float(config.minmax_range[0]), float(config.minmax_range[1])),
            categories=categories,
            ordered=ordered,
            has_missing_slot=config.missing == "category" and bool((codes < 0).any()),
            mode_code=mode,
        )

    def prepare(self, series: pd.Series, source: str) -> np.ndarray:
        """Raw column -> int64 codes in the trained categories, -1 where missing or unseen."""
        codes = _category_codes(series, self.categories)
        unseen = (codes < 0) & series.notna().to_numpy()
        if unseen.any():
            shown = sorted({str(v) for v in series[unseen].unique()})
            logger.warning(
                "%s: column '%s': %d value(s) of categories unseen in training treated as "
                "missing: %s",
                source,
                self.name,
                int(unseen.sum()),
                ", ".join(repr(v) for v in shown[:20]),
            )
        return codes

    @staticmethod
    def is_missing(prepared: np.ndarray) -> np.ndarray:
        """Mask of missing rows."""
        return prepared < 0

    def class_codes(self, prepared: np.ndarray) -> np.ndarray:
        """Codes with missing values mapped to the missing slot (or the training mode)."""
        missing = prepared < 0
        if not missing.any():
            return prepared
        if self.has_missing_slot:
            return np.where(missing, len(self.categories), prepared)
        logger.warning(
            "column '%s': %d missing value(s) but none in training; imputed with %r",
            self.name,
            int(missing.sum()),
            self.categories[self.mode_code] if self.categories else None,
        )
        return np.where(missing, self.mode_code, prepared)

    def encode(self, prepared: np.ndarray) -> np.ndarray:
        """Map prepared codes to (N, width) model features."""
        codes = self.class_codes(prepared)
        if self.encoding == "onehot":
            onehot = np.zeros((codes.size, self.num_classes), dtype=np.float64)
            onehot[np.arange(codes.size), codes] = 1.0
            return onehot
        return _minmax(codes.astype(np.float64), 0, self.num_classes - 1, self.target).reshape(
            -1, 1
        )

    def decode(self, block: np.ndarray) -> pd.Series:
        """(N, width) generator output -> the column (argmax of one-hot, rounded codes)."""
        return self.decode_codes(self.block_codes(block))

    def block_codes(self, block: np.ndarray) -> np.ndarray:
        """(N, width) generator output -> int64 class codes (argmax, or rounded codes)."""
        block = np.asarray(block, dtype=np.float64)
        if self.encoding == "onehot":
            return block.argmax(axis=1).astype(np.int64)
        scaled = _unminmax(block[:, 0], 0, self.num_classes - 1, self.target)
        return np.clip(np.round(np.nan_to_num(scaled)), 0, self.num_classes - 1).astype(np.int64)

    def decode_values(self, values: np.ndarray) -> pd.Series:
        """Class codes given as numbers -> the column (the same as :meth:`decode_codes`)."""
        return self.decode_codes(np.asarray(values).astype(np.int64))

    def decode_codes(self, codes: np.ndarray) -> pd.Series:
        """Class codes -> the column; the missing slot becomes NaN."""
        codes = np.where(codes >= len(self.categories), -1, np.asarray(codes, dtype=np.int64))
        dtype = pd.CategoricalDtype(list(self.categories), ordered=self.ordered)
        values = pd.Categorical.from_codes(codes, dtype=dtype)
        if self.origin == "string":
            return pd.Series(np.asarray(values, dtype=object), name=self.name, dtype=object)
        return pd.Series(values, name=self.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {"codec": "categorical", **_fields_to_dict(self)}


def _category_codes(series: pd.Series, categories: Sequence[Any]) -> np.ndarray:
    """Return int64 indices of the values in ``categories``, -1 where missing or absent."""
    index = pd.Index(list(categories), dtype=object)
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return index.get_indexer(series.astype(object)).astype(np.int64)
    # Map the column's own categories once, then its codes (fast for long columns).
    lookup = np.append(index.get_indexer(series.cat.categories.astype(object)), -1)
    return lookup[series.cat.codes.to_numpy(dtype=np.int64)]


_Codec = _NumericCodec | _CategoricalCodec
_CODECS: dict[str, type[_NumericCodec] | type[_CategoricalCodec]] = {
    "numeric": _NumericCodec,
    "categorical": _CategoricalCodec,
}


def _codec_from_dict(data: Mapping[str, Any]) -> _Codec:
    """Rebuild a codec from its ``to_dict`` state (JSON lists become tuples again)."""
    cls = _CODECS[data["codec"]]
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields
    }
    return cls(**kwargs)
