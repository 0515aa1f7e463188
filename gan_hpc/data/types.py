"""The data layer's contract: what readers return, and the schema models are built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

ColumnKind = Literal["numeric", "categorical", "string", "date"]
DataKind = Literal["tabular", "image", "signal"]
BlockKind = Literal["numeric", "categorical", "mixed"]
ConditionKind = Literal["class", "continuous"]


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column of a table as the file declares it."""

    name: str
    kind: ColumnKind
    categories: tuple[str, ...] = ()  # declared order (ARFF nominal values), categorical only


@dataclass(frozen=True)
class Table:
    """What a tabular reader returns.

    ``frame`` holds numeric columns as float64 (NaN = missing), categorical columns as pandas
    ``Categorical`` with the declared categories (missing = NaN), string columns as object and
    date columns as ``datetime64``. ``columns`` follows the frame's column order.
    """

    frame: pd.DataFrame
    columns: tuple[ColumnInfo, ...]
    source: str  # the file, for messages


@dataclass(frozen=True)
class Arrays:
    """What an image, array or signal reader returns (raw units, one sample per row)."""

    kind: Literal["image", "signal"]
    samples: np.ndarray  # image (N, C, H, W); signal (N, C, L); float32 or the file's dtype
    source: str
    labels: np.ndarray | None = None  # (N,) int64 class indices
    label_names: tuple[str, ...] = ()  # class names in index order
    conditions: np.ndarray | None = None  # (N, K) float64 continuous conditions
    condition_names: tuple[str, ...] = ()
    axis: np.ndarray | None = None  # (L,) sample axis of a signal, e.g. frequency
    axis_name: str = ""  # e.g. "frequency_hz"
    channel_names: tuple[str, ...] = ()  # e.g. ("log_magnitude",) or ("real", "imag")
    metadata: dict[str, Any] = field(
        default_factory=dict
    )  # e.g. original flat length of padded rows


RawData = Table | Arrays


@dataclass(frozen=True, slots=True)
class ColumnBlock:
    """A slice of a tabular sample vector: one column's features.

    ``numeric``: one scaled value (width 1). ``categorical``: a one-hot block. ``mixed``: a
    numeric column with a spike (width 3): the one-hot [at the spike, elsewhere], then the
    value scaled without the spike, 0 at the spike.
    """

    name: str
    kind: BlockKind
    width: int


@dataclass(frozen=True, slots=True)
class ConditionSchema:
    """What a conditional model is conditioned on.

    ``class``: an integer label in ``range(dim)``; ``names`` are the class names in order and
    ``frequencies`` their training proportions (for sampling labels in real proportions).
    ``continuous``: a float vector of length ``dim`` scaled to [-1, 1]; ``names`` are the
    coordinates and ``ranges`` their original (low, high).
    """

    kind: ConditionKind
    dim: int
    names: tuple[str, ...]
    frequencies: tuple[float, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()
    column: str | None = None  # tabular: the column the class comes from


@dataclass(frozen=True, slots=True)
class DataSchema:
    """Everything a model needs to know about the transformed data.

    ``sample_shape`` is one sample's tensor shape: ``(F,)`` tabular, ``(C, H, W)`` image,
    ``(C, L)`` signal. ``blocks`` (tabular only) partition the F features in order.
    ``value_range`` bounds every feature (or the numeric features of a table) after the
    transform, or is None when they are unbounded (quantile-normal numerics).
    """

    kind: DataKind
    sample_shape: tuple[int, ...]
    value_range: tuple[float, float] | None = (-1.0, 1.0)
    blocks: tuple[ColumnBlock, ...] = ()
    condition: ConditionSchema | None = None

    @property
    def num_features(self) -> int:
        """Number of scalars in one sample."""
        return int(np.prod(self.sample_shape))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        condition = None
        if self.condition is not None:
            condition = {
                "kind": self.condition.kind,
                "dim": self.condition.dim,
                "names": list(self.condition.names),
                "frequencies": list(self.condition.frequencies),
                "ranges": [list(r) for r in self.condition.ranges],
                "column": self.condition.column,
            }
        return {
            "kind": self.kind,
            "sample_shape": list(self.sample_shape),
            "value_range": list(self.value_range) if self.value_range is not None else None,
            "blocks": [{"name": b.name, "kind": b.kind, "width": b.width} for b in self.blocks],
            "condition": condition,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSchema:
        """Inverse of :meth:`to_dict`."""
        condition = data.get("condition")
        return cls(
            kind=data["kind"],
            sample_shape=tuple(int(s) for s in data["sample_shape"]),
            value_range=tuple(data["value_range"]) if data.get("value_range") else None,
            blocks=tuple(
                ColumnBlock(b["name"], b["kind"], int(b["width"])) for b in data["blocks"]
            ),
            condition=None
            if condition is None
            else ConditionSchema(
                kind=condition["kind"],
                dim=int(condition["dim"]),
                names=tuple(condition["names"]),
                frequencies=tuple(float(f) for f in condition.get("frequencies", ())),
                ranges=tuple((float(a), float(b)) for a, b in condition.get("ranges", ())),
                column=condition.get("column"),
            ),
        )


@dataclass(frozen=True)
class Encoded:
    """Transformed samples: model-ready features, the optional condition and class labels."""

    x: np.ndarray  # float32, (N, *sample_shape)
    cond: np.ndarray | None = None  # int64 (N,) class labels or float32 (N, K) continuous
    # int64 (N,) class labels the data gives, conditioned on or not (quality's feature space)
    labels: np.ndarray | None = None
