"""Reversible transforms from raw tables, images and signals to model-ready arrays.

A transform is fitted on the training split only (:func:`fit_transform`), applied to every
split (``transform``) and undoes itself on generator output (``inverse_transform``). Its state
is plain JSON (``to_dict`` / :func:`transform_from_dict`), never a pickle, so it travels in
checkpoints and export bundles.

Tables are encoded by :class:`~gan_hpc.data.tabular.TabularTransform` (its module docstring
gives the rules), images by :class:`ImageTransform` and signals by :class:`SignalTransform`;
:func:`fit_transform` and :func:`transform_from_dict` pick the one for the data's kind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from gan_hpc.config import DataConfig
from gan_hpc.data.column_codecs import (
    MISSING_CLASS_NAME,
    _class_frequencies,
    _json_safe,
    _minmax,
    _unminmax,
)
from gan_hpc.data.tabular import TabularTransform, drop_missing_rows
from gan_hpc.data.types import (
    Arrays,
    ConditionSchema,
    DataKind,
    DataSchema,
    Encoded,
    RawData,
    Table,
)
from gan_hpc.errors import DataError

# MISSING_CLASS_NAME, TabularTransform and drop_missing_rows are re-exported: callers import
# every transform name from here.
__all__ = [
    "MISSING_CLASS_NAME",
    "DataTransform",
    "ImageTransform",
    "SignalTransform",
    "TabularTransform",
    "data_kind",
    "drop_missing_rows",
    "fit_transform",
    "transform_from_dict",
]

logger = logging.getLogger(__name__)


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
        """Scale images to [-1, 1]; labels are kept, and are the condition when conditional."""
        if not isinstance(raw, Arrays) or raw.kind != "image":
            raise DataError(f"{raw.source}: an image transform needs images")
        if raw.samples.shape[1:] != self.sample_shape:
            raise DataError(
                f"{raw.source}: images of shape {raw.samples.shape[1:]}, but the transform was "
                f"fitted on {self.sample_shape}; use files of the same image size"
            )
        x = _minmax(raw.samples.astype(np.float64), self.low, self.high, (-1.0, 1.0))
        labels = None if raw.labels is None else np.asarray(raw.labels, dtype=np.int64)
        if self.is_conditional and labels is None:
            raise DataError(f"{raw.source}: the images have no labels to condition on")
        cond = labels if self.is_conditional else None
        return Encoded(x=x.astype(np.float32), cond=cond, labels=labels)

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
