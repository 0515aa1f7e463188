"""Reversible transforms from raw tables, images and signals to model-ready arrays.

A transform is fitted on the training split only (:func:`fit_transform`), applied to every
split (``transform``) and undoes itself on generator output (``inverse_transform``). Its state
is plain JSON (``to_dict`` / :func:`transform_from_dict`), never a pickle, so it travels in
checkpoints and export bundles.

Tabular rules (:class:`TabularTransform`):

- numeric columns: min-max to ``data.minmax_range`` or, with ``numeric_transform="quantile"``,
  through their empirical quantiles to a standard normal; on the way back values are clipped
  to the training range, and integer-valued columns (e.g. age) come back as integers;
- date columns: epoch seconds, treated as numeric; they come back as datetimes, rounded to the
  coarsest of day / hour / minute / second that every training value was a multiple of;
- categorical columns: one-hot blocks (``categorical_encoding="onehot"``) or integer codes
  scaled to ``minmax_range`` (``"codes"``: a numeric block of width 1);
- string columns with at most :data:`MAX_STRING_CATEGORIES` distinct training values become
  categorical (and come back as strings); longer-tailed string columns are dropped with a
  logged warning;
- missing values with ``missing="category"``: a missing categorical value is its own extra
  one-hot slot (extra code) when the training split has any, and comes back as NaN, so it
  round-trips exactly; a missing numeric is imputed with the training median, which does
  *not* round-trip. A missing categorical value in a column whose training split had none
  is imputed with the training mode (logged). With ``missing="drop_rows"`` rows with any
  missing value are dropped (logged with the count); :func:`drop_missing_rows` does this to
  a whole table before splitting. Categories unseen in training count as missing (logged
  with the column and the values).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data.types import (
    Arrays,
    ColumnBlock,
    ConditionSchema,
    DataKind,
    DataSchema,
    Encoded,
    RawData,
    Table,
)
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)

MAX_STRING_CATEGORIES = 50
MISSING_CLASS_NAME = "<missing>"  # class name of the missing slot of a tabular condition
MAX_QUANTILES = 1000
_DATE_RESOLUTIONS_S = (86400.0, 3600.0, 60.0, 1.0)  # day, hour, minute, second
_EPOCH = pd.Timestamp(0)


class DataTransform(Protocol):
    """A fitted, reversible mapping between raw data and model-ready arrays."""

    @property
    def kind(self) -> DataKind:
        """``"tabular"``, ``"image"`` or ``"signal"``."""
        ...

    @property
    def schema(self) -> DataSchema:
        """What models are built from: sample shape, blocks, value range, condition."""
        ...

    def transform(self, raw: RawData) -> Encoded:
        """Encode raw data (any split) with the fitted state."""
        ...

    def inverse_transform(
        self, x: np.ndarray, cond: np.ndarray | None = None
    ) -> pd.DataFrame | np.ndarray:
        """Decode model-space samples (generator output) back to raw units."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state (lists, floats, strings) that :func:`transform_from_dict` rebuilds."""
        ...


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
    """One numeric (or date) column: min-max or quantile-normal, width 1."""

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

    @property
    def width(self) -> int:
        """Number of model features."""
        return 1

    @property
    def block(self) -> ColumnBlock:
        """The schema block."""
        return ColumnBlock(self.name, "numeric", 1)

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
        quantiles: tuple[float, ...] = ()
        references: tuple[float, ...] = ()
        if config.numeric_transform == "quantile":
            from sklearn.preprocessing import QuantileTransformer

            # subsample=None: every training value, so the fit is exact and deterministic.
            qt = QuantileTransformer(
                output_distribution="normal",
                n_quantiles=min(MAX_QUANTILES, observed.size),
                subsample=None,
            ).fit(observed.reshape(-1, 1))
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
            is_integer=origin == "numeric" and bool(np.all(observed == np.round(observed))),
            quantiles=quantiles,
            references=references,
            date_dtype=str(series.dtype) if origin == "date" else "",
            date_resolution_s=resolution,
        )

    def prepare(self, series: pd.Series, source: str) -> np.ndarray:
        """Raw column -> float64 values, NaN where missing."""
        return _numeric_values(series, self.origin, source)

    @staticmethod
    def is_missing(prepared: np.ndarray) -> np.ndarray:
        """Mask of missing rows."""
        return np.isnan(prepared)

    def encode(self, prepared: np.ndarray) -> np.ndarray:
        """Map prepared values to (N, 1) features; NaN is imputed with the training median."""
        values = np.where(np.isnan(prepared), self.median, prepared)
        if self.scaling == "quantile":
            qt = _quantile_transformer(self.quantiles, self.references)
            return np.asarray(qt.transform(values.reshape(-1, 1)), dtype=np.float64)
        return _minmax(values, self.low, self.high, self.target).reshape(-1, 1)

    def decode(self, block: np.ndarray) -> pd.Series:
        """(N, 1) model features -> a column in the trained dtype, clipped to the trained range."""
        scaled = np.asarray(block, dtype=np.float64).reshape(-1)
        if self.scaling == "quantile":
            qt = _quantile_transformer(self.quantiles, self.references)
            values = np.asarray(qt.inverse_transform(scaled.reshape(-1, 1)))[:, 0]
        else:
            values = _unminmax(scaled, self.low, self.high, self.target)
        values = np.clip(values, self.low, self.high)
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
        block = np.asarray(block, dtype=np.float64)
        if self.encoding == "onehot":
            codes = block.argmax(axis=1)
        else:
            scaled = _unminmax(block[:, 0], 0, self.num_classes - 1, self.target)
            codes = np.clip(np.round(np.nan_to_num(scaled)), 0, self.num_classes - 1)
        return self.decode_codes(codes.astype(np.int64))

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


# ----------------------------------------------------------------------------------- tabular


def drop_missing_rows(table: Table, config: DataConfig) -> Table:
    """Drop rows with any missing value when ``config.missing == "drop_rows"`` (logged).

    With the ``"category"`` policy the table is returned unchanged.
    """
    if config.missing != "drop_rows":
        return table
    missing = table.frame.isna().any(axis=1).to_numpy()
    if not missing.any():
        return table
    logger.info(
        "%s: dropped %d of %d rows with missing values (data.missing='drop_rows')",
        table.source,
        int(missing.sum()),
        len(missing),
    )
    frame = table.frame.loc[~missing].reset_index(drop=True)
    return Table(frame=frame, columns=table.columns, source=table.source)


class TabularTransform:
    """Tables <-> (N, F) float32 features, with optional class conditioning on one column.

    The feature vector is the kept columns in table order, each a block (see the module
    docstring). With ``data.conditional`` and ``data.condition_column``, that column leaves
    the features; its class codes become ``Encoded.cond`` and ``inverse_transform`` puts it
    back in its original position from ``cond``.
    """

    kind: Literal["tabular"] = "tabular"

    def __init__(
        self,
        *,
        codecs: Sequence[_Codec],
        condition_column: str | None,
        condition_frequencies: Sequence[float],
        missing: Literal["category", "drop_rows"],
        value_range: tuple[float, float] | None,
    ) -> None:
        self.codecs = tuple(codecs)
        self.condition_column = condition_column
        self.condition_frequencies = tuple(float(f) for f in condition_frequencies)
        self.missing = missing
        self.value_range = value_range
        self.features = tuple(c for c in self.codecs if c.name != condition_column)

    @classmethod
    def fit(cls, table: Table, config: DataConfig) -> TabularTransform:
        """Fit on the training table."""
        table = drop_missing_rows(table, config)
        frame = table.frame
        codecs: list[_Codec] = []
        for info in table.columns:
            series = frame[info.name]
            if info.kind in ("numeric", "date"):
                numeric = _NumericCodec.fit(series, info.kind, config, table.source)
                if numeric is None:
                    logger.warning(
                        "%s: column '%s' has no values in the training split; dropped",
                        table.source,
                        info.name,
                    )
                    continue
                codecs.append(numeric)
                continue
            if info.kind == "string":
                distinct = series.nunique(dropna=True)
                if distinct > MAX_STRING_CATEGORIES:
                    logger.warning(
                        "%s: string column '%s' has %d distinct values (> %d); dropped",
                        table.source,
                        info.name,
                        distinct,
                        MAX_STRING_CATEGORIES,
                    )
                    continue
            origin: Literal["categorical", "string"] = (
                "string" if info.kind == "string" else "categorical"
            )
            codecs.append(_CategoricalCodec.fit(series, origin, config))
        condition_column, frequencies = _fit_condition(codecs, frame, table.source, config)
        return cls(
            codecs=codecs,
            condition_column=condition_column,
            condition_frequencies=frequencies,
            missing=config.missing,
            value_range=(
                (float(config.minmax_range[0]), float(config.minmax_range[1]))
                if config.numeric_transform == "minmax"
                else None
            ),
        )

    @property
    def condition_codec(self) -> _CategoricalCodec | None:
        """The codec of the condition column, if conditional."""
        for codec in self.codecs:
            if codec.name == self.condition_column and isinstance(codec, _CategoricalCodec):
                return codec
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        """Names of the output columns, in table order."""
        return tuple(c.name for c in self.codecs)

    @property
    def schema(self) -> DataSchema:
        """Blocks in column order (the condition column excluded) and the condition."""
        blocks = tuple(c.block for c in self.features)
        condition = None
        codec = self.condition_codec
        if codec is not None:
            condition = ConditionSchema(
                kind="class",
                dim=codec.num_classes,
                names=codec.class_names,
                frequencies=self.condition_frequencies,
                column=codec.name,
            )
        return DataSchema(
            kind="tabular",
            sample_shape=(sum(b.width for b in blocks),),
            value_range=self.value_range,
            blocks=blocks,
            condition=condition,
        )

    def transform(self, raw: RawData) -> Encoded:
        """Encode a table; rows with missing values are dropped under ``drop_rows``."""
        if not isinstance(raw, Table):
            raise DataError(f"{raw.source}: a tabular transform needs a table, got {raw.kind}")
        absent = [name for name in self.columns if name not in raw.frame.columns]
        if absent:
            raise DataError(
                f"{raw.source}: column(s) {', '.join(absent)} missing; the transform was "
                "fitted on a table with them (fix the file or data.drop_columns)"
            )
        prepared = {c.name: c.prepare(raw.frame[c.name], raw.source) for c in self.codecs}
        if self.missing == "drop_rows" and prepared:
            missing = np.zeros(len(raw.frame), dtype=bool)
            for codec in self.codecs:
                missing |= codec.is_missing(prepared[codec.name])
            if missing.any():
                logger.info(
                    "%s: dropped %d of %d rows with missing values (data.missing='drop_rows')",
                    raw.source,
                    int(missing.sum()),
                    len(missing),
                )
                prepared = {name: values[~missing] for name, values in prepared.items()}
        num_rows = len(next(iter(prepared.values()))) if prepared else len(raw.frame)
        parts = [c.encode(prepared[c.name]) for c in self.features]
        x = np.concatenate(parts, axis=1) if parts else np.zeros((num_rows, 0))
        cond = None
        condition = self.condition_codec
        if condition is not None:
            cond = condition.class_codes(prepared[condition.name]).astype(np.int64)
        return Encoded(x=x.astype(np.float32), cond=cond)

    def inverse_transform(
        self, x: np.ndarray, cond: np.ndarray | None = None
    ) -> pd.DataFrame | np.ndarray:
        """Decode generator output (N, F) (+ class codes when conditional) to a DataFrame.

        One-hot blocks take the argmax (softmax or logits both work), codes are rounded and
        clipped, numerics are clipped to the training range.
        """
        x = np.asarray(x, dtype=np.float64)
        width = sum(c.width for c in self.features)
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"expected samples of shape (N, {width}), got {x.shape}")
        columns: dict[str, pd.Series] = {}
        offset = 0
        for codec in self.features:
            columns[codec.name] = codec.decode(x[:, offset : offset + codec.width])
            offset += codec.width
        condition = self.condition_codec
        if condition is not None:
            if cond is None:
                raise ValueError(f"conditional on '{condition.name}': pass cond (N,) codes")
            codes = np.asarray(cond).reshape(-1).astype(np.int64)
            if codes.shape[0] != x.shape[0]:
                raise ValueError(f"cond has {codes.shape[0]} rows, samples {x.shape[0]}")
            columns[condition.name] = condition.decode_codes(codes)
        return pd.DataFrame({name: columns[name].reset_index(drop=True) for name in self.columns})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "kind": self.kind,
            "codecs": [c.to_dict() for c in self.codecs],
            "condition_column": self.condition_column,
            "condition_frequencies": list(self.condition_frequencies),
            "missing": self.missing,
            "value_range": list(self.value_range) if self.value_range is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TabularTransform:
        """Inverse of :meth:`to_dict`."""
        value_range = data["value_range"]
        return cls(
            codecs=[_codec_from_dict(c) for c in data["codecs"]],
            condition_column=data["condition_column"],
            condition_frequencies=data["condition_frequencies"],
            missing=data["missing"],
            value_range=None if value_range is None else (value_range[0], value_range[1]),
        )


def _fit_condition(
    codecs: Sequence[_Codec], frame: pd.DataFrame, source: str, config: DataConfig
) -> tuple[str | None, tuple[float, ...]]:
    """Check the condition column and measure its training class frequencies."""
    if not config.conditional:
        return None, ()
    categorical = [c.name for c in codecs if isinstance(c, _CategoricalCodec)]
    listed = ", ".join(categorical) or "none"
    name = config.condition_column
    if name is None:
        raise DataError(
            f"{source}: data.conditional is true but data.condition_column is not set; "
            f"set it to one of the categorical columns: {listed}"
        )
    codec = next((c for c in codecs if c.name == name), None)
    if not isinstance(codec, _CategoricalCodec):
        problem = "is not categorical" if codec is not None else "is not in the table"
        raise DataError(
            f"{source}: data.condition_column '{name}' {problem}; categorical columns: {listed}"
        )
    codes = codec.class_codes(codec.prepare(frame[name], source))
    return name, _class_frequencies(codes, codec.num_classes)


# ------------------------------------------------------------------------------------- image


class ImageTransform:
    """Images (N, C, H, W) <-> float32 in [-1, 1], optionally conditioned on class labels.

    The pixel range is 0..255 for uint8 data and the training min/max otherwise. Integer
    data comes back rounded in its original dtype, so uint8 round-trips exactly.
    """

    kind: Literal["image"] = "image"

    def __init__(
        self,
        *,
        low: float,
        high: float,
        dtype: str,
        sample_shape: Sequence[int],
        label_names: Sequence[str] = (),
        frequencies: Sequence[float] = (),
        is_conditional: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.low = float(low)
        self.high = float(high)
        self.dtype = dtype
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.label_names = tuple(label_names)
        self.frequencies = tuple(float(f) for f in frequencies)
        self.is_conditional = is_conditional
        self.metadata = dict(metadata or {})

    @classmethod
    def fit(cls, arrays: Arrays, config: DataConfig) -> ImageTransform:
        """Fit the pixel range (and class frequencies) on the training images."""
        samples = arrays.samples
        if samples.dtype == np.uint8:
            low, high = 0.0, 255.0
        else:
            low, high = float(np.min(samples)), float(np.max(samples))
        label_names: tuple[str, ...] = ()
        frequencies: tuple[float, ...] = ()
        if config.conditional:
            if arrays.labels is None:
                raise DataError(
                    f"{arrays.source}: data.conditional is true but the images have no "
                    "labels; give the labels (data.images) or set data.conditional: false"
                )
            labels = np.asarray(arrays.labels, dtype=np.int64)
            num_classes = max(len(arrays.label_names), int(labels.max()) + 1)
            label_names = tuple(arrays.label_names) or tuple(str(i) for i in range(num_classes))
            label_names += tuple(str(i) for i in range(len(label_names), num_classes))
            frequencies = _class_frequencies(labels, num_classes)
        return cls(
            low=low,
            high=high,
            dtype=str(samples.dtype),
            sample_shape=samples.shape[1:],
            label_names=label_names,
            frequencies=frequencies,
            is_conditional=config.conditional,
            metadata=_json_safe(arrays.metadata),
        )

    @property
    def schema(self) -> DataSchema:
        """(C, H, W) samples in [-1, 1], with the class condition when conditional."""
        condition = None
        if self.is_conditional:
            condition = ConditionSchema(
                kind="class",
                dim=len(self.label_names),
                names=self.label_names,
                frequencies=self.frequencies,
            )
        return DataSchema(
            kind="image",
            sample_shape=self.sample_shape,
            value_range=(-1.0, 1.0),
            condition=condition,
        )

    def transform(self, raw: RawData) -> Encoded:
        """Scale images to [-1, 1]; labels become the condition when conditional."""
        if not isinstance(raw, Arrays) or raw.kind != "image":
            raise DataError(f"{raw.source}: an image transform needs images")
        if raw.samples.shape[1:] != self.sample_shape:
            raise DataError(
                f"{raw.source}: images of shape {raw.samples.shape[1:]}, but the transform was "
                f"fitted on {self.sample_shape}; use files of the same image size"
            )
        x = _minmax(raw.samples.astype(np.float64), self.low, self.high, (-1.0, 1.0))
        cond = None
        if self.is_conditional:
            if raw.labels is None:
                raise DataError(f"{raw.source}: the images have no labels to condition on")
            cond = np.asarray(raw.labels, dtype=np.int64)
        return Encoded(x=x.astype(np.float32), cond=cond)

    def inverse_transform(
        self, x: np.ndarray, cond: np.ndarray | None = None
    ) -> pd.DataFrame | np.ndarray:
        """[-1, 1] images -> raw units and dtype (integers rounded); ``cond`` is not needed."""
        values = _unminmax(np.asarray(x, dtype=np.float64), self.low, self.high, (-1.0, 1.0))
        dtype = np.dtype(self.dtype)
        if np.issubdtype(dtype, np.integer):
            return np.round(values).astype(dtype)
        return values.astype(dtype)

    def unpad_flat(self, images: np.ndarray) -> np.ndarray:
        """Raw-unit images (N, C, H, W) -> flat rows without the padding added by the reader."""
        flat = np.asarray(images).reshape(len(images), -1)
        length = self.metadata.get("flat_length")
        return flat[:, : int(length)] if length is not None else flat

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "dtype": self.dtype,
            "sample_shape": list(self.sample_shape),
            "label_names": list(self.label_names),
            "frequencies": list(self.frequencies),
            "is_conditional": self.is_conditional,
            "metadata": _json_safe(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImageTransform:
        """Inverse of :meth:`to_dict`."""
        return cls(
            low=data["low"],
            high=data["high"],
            dtype=data["dtype"],
            sample_shape=data["sample_shape"],
            label_names=data["label_names"],
            frequencies=data["frequencies"],
            is_conditional=data["is_conditional"],
            metadata=data["metadata"],
        )


# ------------------------------------------------------------------------------------ signal


class SignalTransform:
    """Signals (N, C, L) <-> float32 in [-1, 1], optionally with continuous conditions.

    ``data.signal_scaling="global"`` uses one min/max over all training values;
    ``"per_frequency"`` one per channel and axis position. Conditions (e.g. FRF excitation
    coordinates) are min-max scaled to [-1, 1] per coordinate; :meth:`transform_condition`
    and :meth:`inverse_condition` convert user-given coordinates for sampling.
    """

    kind: Literal["signal"] = "signal"

    def __init__(
        self,
        *,
        scaling: Literal["global", "per_frequency"],
        low: Any,
        high: Any,
        dtype: str,
        sample_shape: Sequence[int],
        axis: Sequence[float] | None = None,
        axis_name: str = "",
        channel_names: Sequence[str] = (),
        condition_names: Sequence[str] = (),
        condition_ranges: Sequence[Sequence[float]] = (),
    ) -> None:
        self.scaling = scaling
        self.low = np.asarray(low, dtype=np.float64)
        self.high = np.asarray(high, dtype=np.float64)
        self.dtype = dtype
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.axis = None if axis is None else np.asarray(axis, dtype=np.float64)
        self.axis_name = axis_name
        self.channel_names = tuple(channel_names)
        self.condition_names = tuple(condition_names)
        self.condition_ranges = tuple((float(a), float(b)) for a, b in condition_ranges)

    @classmethod
    def fit(cls, arrays: Arrays, config: DataConfig) -> SignalTransform:
        """Fit the scaling (and the condition ranges) on the training signals."""
        samples = np.asarray(arrays.samples, dtype=np.float64)
        if config.signal_scaling == "per_frequency":
            low, high = samples.min(axis=0), samples.max(axis=0)
        else:
            low, high = samples.min(), samples.max()
        names: tuple[str, ...] = ()
        ranges: tuple[tuple[float, float], ...] = ()
        if config.conditional:
            if arrays.conditions is None:
                raise DataError(
                    f"{arrays.source}: data.conditional is true but the signals have no "
                    "conditions (coordinates); set data.conditional: false"
                )
            conditions = np.asarray(arrays.conditions, dtype=np.float64)
            names = tuple(arrays.condition_names) or tuple(
                f"c{i}" for i in range(conditions.shape[1])
            )
            ranges = tuple(
                (float(a), float(b))
                for a, b in zip(conditions.min(axis=0), conditions.max(axis=0), strict=True)
            )
        return cls(
            scaling=config.signal_scaling,
            low=low,
            high=high,
            dtype=str(arrays.samples.dtype),
            sample_shape=arrays.samples.shape[1:],
            axis=None if arrays.axis is None else np.asarray(arrays.axis).tolist(),
            axis_name=arrays.axis_name,
            channel_names=arrays.channel_names,
            condition_names=names,
            condition_ranges=ranges,
        )

    @property
    def is_conditional(self) -> bool:
        """Whether samples come with continuous conditions."""
        return bool(self.condition_names)

    @property
    def schema(self) -> DataSchema:
        """(C, L) samples in [-1, 1], with the continuous condition when conditional."""
        condition = None
        if self.is_conditional:
            condition = ConditionSchema(
                kind="continuous",
                dim=len(self.condition_names),
                names=self.condition_names,
                ranges=self.condition_ranges,
            )
        return DataSchema(
            kind="signal",
            sample_shape=self.sample_shape,
            value_range=(-1.0, 1.0),
            condition=condition,
        )

    def transform(self, raw: RawData) -> Encoded:
        """Scale signals (and conditions) to [-1, 1]."""
        if not isinstance(raw, Arrays) or raw.kind != "signal":
            raise DataError(f"{raw.source}: a signal transform needs signals")
        if raw.samples.shape[1:] != self.sample_shape:
            raise DataError(
                f"{raw.source}: signals of shape {raw.samples.shape[1:]}, but the transform "
                f"was fitted on {self.sample_shape}; use data with the same channels and axis"
            )
        x = _minmax(np.asarray(raw.samples, dtype=np.float64), self.low, self.high, (-1.0, 1.0))
        cond = None
        if self.is_conditional:
            if raw.conditions is None:
                raise DataError(f"{raw.source}: the signals have no conditions")
            cond = self.transform_condition(raw.conditions)
        return Encoded(x=x.astype(np.float32), cond=cond)

    def transform_condition(self, values: np.ndarray) -> np.ndarray:
        """Conditions in original units (N, K) or (K,) -> float32 in [-1, 1] (not clipped)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != len(self.condition_names):
            raise ValueError(
                f"expected {len(self.condition_names)} condition values "
                f"({', '.join(self.condition_names)}), got shape {values.shape}"
            )
        low, high = np.asarray(self.condition_ranges, dtype=np.float64).T
        if np.any((values < low) | (values > high)):
            logger.warning("conditions outside the training ranges %s", self.condition_ranges)
        return _minmax(values, low, high, (-1.0, 1.0)).astype(np.float32)

    def inverse_condition(self, cond: np.ndarray) -> np.ndarray:
        """Scaled conditions -> original units (float64)."""
        low, high = np.asarray(self.condition_ranges, dtype=np.float64).T
        scaled = np.asarray(cond, dtype=np.float64)
        return low + (scaled + 1.0) / 2.0 * (high - low)

    def inverse_transform(
        self, x: np.ndarray, cond: np.ndarray | None = None
    ) -> pd.DataFrame | np.ndarray:
        """[-1, 1] signals -> original units and dtype; ``cond`` is not needed."""
        values = _unminmax(np.asarray(x, dtype=np.float64), self.low, self.high, (-1.0, 1.0))
        return values.astype(np.dtype(self.dtype))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {
            "kind": self.kind,
            "scaling": self.scaling,
            "low": _json_safe(self.low),
            "high": _json_safe(self.high),
            "dtype": self.dtype,
            "sample_shape": list(self.sample_shape),
            "axis": None if self.axis is None else _json_safe(self.axis),
            "axis_name": self.axis_name,
            "channel_names": list(self.channel_names),
            "condition_names": list(self.condition_names),
            "condition_ranges": [list(r) for r in self.condition_ranges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalTransform:
        """Inverse of :meth:`to_dict`."""
        return cls(
            scaling=data["scaling"],
            low=data["low"],
            high=data["high"],
            dtype=data["dtype"],
            sample_shape=data["sample_shape"],
            axis=data["axis"],
            axis_name=data["axis_name"],
            channel_names=data["channel_names"],
            condition_names=data["condition_names"],
            condition_ranges=data["condition_ranges"],
        )


# ---------------------------------------------------------------------------------- registry

_FITTERS: dict[str, Callable[[Any, DataConfig], DataTransform]] = {
    "tabular": TabularTransform.fit,
    "image": ImageTransform.fit,
    "signal": SignalTransform.fit,
}
_LOADERS: dict[str, Callable[[Mapping[str, Any]], DataTransform]] = {
    "tabular": TabularTransform.from_dict,
    "image": ImageTransform.from_dict,
    "signal": SignalTransform.from_dict,
}


def data_kind(raw: RawData) -> DataKind:
    """``"tabular"`` for a table, else the arrays' kind."""
    return "tabular" if isinstance(raw, Table) else raw.kind


def fit_transform(raw_train: RawData, config: DataConfig) -> DataTransform:
    """Fit the transform for ``raw_train``'s kind on the training split."""
    return _FITTERS[data_kind(raw_train)](raw_train, config)


def transform_from_dict(data: Mapping[str, Any]) -> DataTransform:
    """Rebuild a fitted transform from :meth:`DataTransform.to_dict` output."""
    kind = data.get("kind")
    if kind not in _LOADERS:
        raise DataError(
            f"transform state: unknown kind {kind!r} (valid: {', '.join(_LOADERS)}); "
            "the file is corrupt or from another version"
        )
    return _LOADERS[kind](data)
