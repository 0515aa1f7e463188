"""The quality layer's contract: its config, the inputs per data kind and the report.

Inputs are in DATA units (after the transform's ``inverse_transform``), so a score does not
depend on how a trial transformed its data, and trials with different transforms compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

SignalRepresentation = Literal["log_magnitude", "magnitude", "real_imag"]


@dataclass(frozen=True, kw_only=True)
class TabularInputs:
    """Tables with the original columns and dtypes (categoricals as pandas ``Categorical``).

    ``real_test`` is the held-out split; ``synthetic`` was sampled from the generator.
    ``condition_column`` (the column a conditional model is conditioned on) is the default
    target of the machine-learning efficacy test.
    """

    real_train: pd.DataFrame
    real_test: pd.DataFrame
    synthetic: pd.DataFrame
    condition_column: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImageInputs:
    """Images (N, C, H, W) with values in ``value_range`` (pixel units or [-1, 1]).

    The feature classifier is trained on ``real_train`` (with ``train_labels`` when given,
    else self-supervised); ``generated`` is compared with ``real_test``. ``test_labels`` measure
    the classifier's own held-out accuracy; ``generated_labels`` are the classes a conditional
    generator was asked for (reported as the classifier's accuracy on them).
    """

    real_train: np.ndarray
    real_test: np.ndarray
    generated: np.ndarray
    value_range: tuple[float, float] = (-1.0, 1.0)
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    generated_labels: np.ndarray | None = None
    num_classes: int | None = None  # None: max label + 1


@dataclass(frozen=True, kw_only=True)
class SignalInputs:
    """Real curves (N, C, L) at ``conditions`` (N, K) and generated curves at the SAME rows.

    ``generated[i]`` must be ``G(z_i, conditions[i])``: the spectral and resonance errors pair
    them with ``real[i]``. ``frequencies`` is the (L,) axis; ``representation`` says what the
    channels hold: ``log_magnitude`` (log10 |H|, one channel), ``magnitude`` (|H|) or
    ``real_imag`` (Re H, Im H).
    """

    real: np.ndarray
    generated: np.ndarray
    frequencies: np.ndarray
    conditions: np.ndarray | None = None
    representation: SignalRepresentation = "log_magnitude"


QualityInputs = TabularInputs | ImageInputs | SignalInputs


@dataclass(frozen=True)
class QualityReport:
    """Scores of one generator, the sample sizes they were computed on, and caveats."""

    metrics: dict[str, float]
    sample_sizes: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (:func:`gan_hpc.files.atomic_write_json` writes NaN as null)."""
        return {
            "metrics": dict(self.metrics),
            "sample_sizes": dict(self.sample_sizes),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        """Inverse of :meth:`to_dict` (a null metric, as written to a file, reads as NaN)."""
        return cls(
            metrics={k: (math.nan if v is None else float(v)) for k, v in data["metrics"].items()},
            sample_sizes={k: int(v) for k, v in data.get("sample_sizes", {}).items()},
            notes=tuple(data.get("notes", ())),
        )


def subsample_indices(num: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded subsample of at most ``cap`` of ``num`` rows (all if fewer)."""
    if num <= cap:
        return np.arange(num)
    return np.sort(rng.choice(num, size=cap, replace=False))
