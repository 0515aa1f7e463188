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

from gan_hpc.config_validation import ConfigValueError

SignalRepresentation = Literal["log_magnitude", "magnitude", "real_imag"]


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityConfig:
    """Sample sizes, seeds and thresholds of the held-out quality metrics (all defaults here).

    Every subsample is drawn from ``numpy.random.default_rng(seed)``, so a report is
    reproducible; the sizes actually used are recorded in :attr:`QualityReport.sample_sizes`.
    """

    seed: int = 0
    num_threads: int | None = None  # None: the libraries' defaults (every core)
    # tabular
    target_column: str | None = None  # None: the condition column, else the last categorical
    num_rows: int = 5000  # rows of real_test and of the synthetic table that are scored
    num_reference_rows: int = 100_000  # training rows searched for closest records
    max_trend_pairs: int = 200  # seeded subset of column pairs on wide tables
    num_bins: int = 10  # quantile bins of a numeric column paired with a categorical one
    num_folds: int = 3  # cross-validation folds of the detection classifiers
    num_dcr_rows: int = 1000  # synthetic and holdout rows whose closest records are found
    dcr_ratio_min: float = 0.8  # median DCR(synthetic) / median DCR(holdout) below: memorised
    copy_rate_tolerance: float = 0.01  # exact-copy rate allowed above the holdout's own rate
    # images
    num_image_samples: int = 10_000  # generated and held-out real images compared
    nearest_k: int = 3  # k of the k-NN manifolds (precision/recall)
    num_classifier_steps: int = 600  # training steps of the feature classifier
    classifier_batch_size: int = 64
    num_classifier_images: int = 10_000  # training images the feature classifier sees
    num_pseudo_classes: int = 10  # k-means clusters standing in for classes without labels
    use_cache: bool = True
    cache_dir: str | None = None  # None: $GAN_HPC_CACHE_DIR or ~/.cache/gan_hpc
    # signals
    num_signal_samples: int = 2000  # curve pairs (real, generated at its condition) scored
    num_peaks: int = 3  # most prominent resonances compared per curve
    peak_prominence_db: float = 3.0  # a resonance must stand this far above its surroundings

    def __post_init__(self) -> None:
        at_least_one = (
            "num_rows",
            "num_reference_rows",
            "max_trend_pairs",
            "num_dcr_rows",
            "num_image_samples",
            "nearest_k",
            "num_classifier_steps",
            "classifier_batch_size",
            "num_classifier_images",
            "num_signal_samples",
            "num_peaks",
        )
        for name in at_least_one:
            _require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("num_bins", "num_folds", "num_pseudo_classes"):
            _require(getattr(self, name) >= 2, name, f"must be >= 2, got {getattr(self, name)}")
        _require(self.num_threads is None or self.num_threads >= 1, "num_threads", "must be >= 1")
        _require(0 < self.dcr_ratio_min <= 1, "dcr_ratio_min", "must be in (0, 1]")
        _require(0 <= self.copy_rate_tolerance < 1, "copy_rate_tolerance", "must be in [0, 1)")
        _require(self.peak_prominence_db > 0, "peak_prominence_db", "must be > 0")


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
        """Plain dict for JSON (NaN becomes None)."""
        return {
            "metrics": {k: (None if math.isnan(v) else v) for k, v in self.metrics.items()},
            "sample_sizes": dict(self.sample_sizes),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QualityReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            metrics={k: (math.nan if v is None else float(v)) for k, v in data["metrics"].items()},
            sample_sizes={k: int(v) for k, v in data.get("sample_sizes", {}).items()},
            notes=tuple(data.get("notes", ())),
        )


def _require(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigValueError` (which the config loader prefixes) unless it holds."""
    if not condition:
        raise ConfigValueError(key, message)


def subsample_indices(num: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded subsample of at most ``cap`` of ``num`` rows (all if fewer)."""
    if num <= cap:
        return np.arange(num)
    return np.sort(rng.choice(num, size=cap, replace=False))
