"""The tabular transform: tables <-> (N, F) float32 features, column by column.

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
  with the column and the values);
- recodings (``data.derive_recodings``, on by default): a column that is a one-to-one
  recoding of a categorical column on every training row (Adult's education-num is education
  as a number) is not a model feature. It is decoded from that column's class, so generated
  rows keep the pairing exactly (a generator that drew both broke it in 30 % of its rows, and
  a real-vs-synthetic classifier found them by that alone).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data.column_codecs import (
    _CategoricalCodec,
    _class_frequencies,
    _Codec,
    _codec_from_dict,
    _NumericCodec,
)
from gan_hpc.data.types import ConditionSchema, DataSchema, Encoded, RawData, Table
from gan_hpc.errors import DataError

logger = logging.getLogger(__name__)

MAX_STRING_CATEGORIES = 50
# a one-to-one pairing counts as a recoding only with this many training rows per class, so
# an identifier-like column with a row or two per value never drives another column
MIN_ROWS_PER_RECODED_CLASS = 10


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


@dataclass(frozen=True)
class _Recoding:
    """A column decoded from a categorical ``parent``: ``values[code]`` for each parent class.

    A value is what the column's codec prepares: a number (epoch seconds for dates), or a
    class code of a categorical column.
    """

    column: str
    parent: str
    values: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state."""
        return {"column": self.column, "parent": self.parent, "values": list(self.values)}


class TabularTransform:
    """Tables <-> (N, F) float32 features, with optional class conditioning on one column.

    The feature vector is the kept columns in table order, each a block (see the module
    docstring). With ``data.conditional`` and ``data.condition_column``, that column leaves
    the features; its class codes become ``Encoded.cond`` and ``inverse_transform`` puts it
    back in its original position from ``cond``. Recoded columns leave the features too and
    come back from their parent's classes.
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
        recodings: Sequence[_Recoding] = (),
    ) -> None:
        self.codecs = tuple(codecs)
        self.condition_column = condition_column
        self.condition_frequencies = tuple(float(f) for f in condition_frequencies)
        self.missing = missing
        self.value_range = value_range
        self.recodings = tuple(recodings)
        recoded = {r.column for r in self.recodings}
        self.features = tuple(
            c for c in self.codecs if c.name != condition_column and c.name not in recoded
        )

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
        recodings = (
            _fit_recodings(codecs, frame, table.source, condition_column)
            if config.derive_recodings
            else []
        )
        for recoding in recodings:
            logger.info(
                "%s: column '%s' is a one-to-one recoding of '%s'; it is decoded from it, "
                "not generated (data.derive_recodings)",
                table.source,
                recoding.column,
                recoding.parent,
            )
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
            recodings=recodings,
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
        class_codes: dict[str, np.ndarray] = {}  # of the categorical columns
        offset = 0
        for codec in self.features:
            block = x[:, offset : offset + codec.width]
            offset += codec.width
            if isinstance(codec, _CategoricalCodec):
                class_codes[codec.name] = codec.block_codes(block)
                columns[codec.name] = codec.decode_codes(class_codes[codec.name])
            else:
                columns[codec.name] = codec.decode(block)
        condition = self.condition_codec
        if condition is not None:
            if cond is None:
                raise ValueError(f"conditional on '{condition.name}': pass cond (N,) codes")
            codes = np.asarray(cond).reshape(-1).astype(np.int64)
            if codes.shape[0] != x.shape[0]:
                raise ValueError(f"cond has {codes.shape[0]} rows, samples {x.shape[0]}")
            class_codes[condition.name] = codes
            columns[condition.name] = condition.decode_codes(codes)
        by_name = {c.name: c for c in self.codecs}
        for recoding in self.recodings:
            values = np.asarray(recoding.values)[class_codes[recoding.parent]]
            columns[recoding.column] = by_name[recoding.column].decode_values(values)
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
            "recodings": [r.to_dict() for r in self.recodings],
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
            # transforms saved before recodings existed have none
            recodings=[
                _Recoding(r["column"], r["parent"], tuple(r["values"]))
                for r in data.get("recodings", ())
            ],
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


def _fit_recodings(
    codecs: Sequence[_Codec], frame: pd.DataFrame, source: str, condition_column: str | None
) -> list[_Recoding]:
    """The columns that are one-to-one recodings of a categorical column, in table order.

    Columns are tried from the last, against parents in table order, so of two recodings of
    each other the earlier column stays a feature; a parent is never itself recoded. The
    condition column can be a parent but is never recoded.
    """
    parents = [c for c in codecs if isinstance(c, _CategoricalCodec)]
    parent_codes = {p.name: p.class_codes(p.prepare(frame[p.name], source)) for p in parents}
    # every column as numbers to pair up: class codes, or values without a missing one
    values = {name: codes.astype(np.float64) for name, codes in parent_codes.items()}
    for codec in codecs:
        if isinstance(codec, _NumericCodec):
            prepared = codec.prepare(frame[codec.name], source)
            if not codec.is_missing(prepared).any():
                values[codec.name] = prepared
    # a one-to-one pairing needs as many distinct values as classes: only those pairs are tried
    distinct = {name: len(np.unique(v)) for name, v in values.items()}
    recodings: list[_Recoding] = []
    for child in reversed(codecs):
        child_values = values.get(child.name)
        if child.name == condition_column or child_values is None:
            continue
        if any(r.parent == child.name for r in recodings):
            continue
        recoded = {r.column for r in recodings}
        for parent in parents:
            if (
                parent.name == child.name
                or parent.name in recoded
                or distinct[parent.name] != distinct[child.name]
            ):
                continue
            mapping = _one_to_one(parent_codes[parent.name], child_values, parent.num_classes)
            if mapping is not None:
                recodings.append(_Recoding(child.name, parent.name, mapping))
                break
    return recodings[::-1]


def _one_to_one(
    codes: np.ndarray, values: np.ndarray, num_classes: int
) -> tuple[float, ...] | None:
    """Each class's value when ``codes`` and ``values`` pair one-to-one, else None.

    At least two classes, each of at least :data:`MIN_ROWS_PER_RECODED_CLASS` rows. A class
    without training rows gets the most frequent value.
    """
    pairs = pd.DataFrame({"code": codes, "value": values}).drop_duplicates()
    num_pairs = len(pairs)
    if (
        num_pairs < 2
        or pairs["code"].nunique() != num_pairs
        or pairs["value"].nunique() != num_pairs
        or np.bincount(codes, minlength=num_classes)[pairs["code"]].min()
        < MIN_ROWS_PER_RECODED_CLASS
    ):
        return None
    most_frequent = float(pd.Series(values).mode().iloc[0])
    mapping = np.full(num_classes, most_frequent)
    mapping[pairs["code"].to_numpy()] = pairs["value"].to_numpy()
    return tuple(float(v) for v in mapping)
