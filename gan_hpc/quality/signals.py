"""Held-out quality of generated frequency-response functions (FRFs), condition by condition.

The caller generates ``generated[i] = G(z_i, conditions[i])`` at the conditions of held-out
real curves ``real[i]``; the curves are compared as log-magnitudes in dB, ``20 log10 |H|``:

- ``quality/log_spectral_error``: RMSE in dB between each generated curve and the real curve at
  its condition, over all curves, channels and frequencies. For reference,
  ``quality/log_spectral_error_unconditional`` is the RMSE of the mean real curve against each
  real curve: a conditional generator above it has not learned the condition.
- ``quality/resonance_error``: the ``num_peaks`` most prominent resonances of each real curve
  (``scipy.signal.find_peaks``, prominence >= ``peak_prominence_db``, frequency refined by a
  parabola through the peak) each matched to the nearest of the generated curve's as many most
  prominent resonances; the mean relative frequency error ``|f_gen - f_real| / f_real``, capped
  at 1 (also for a generated curve without any resonance).
- ``quality/detection_auc``: a classifier telling real from generated curves, with the
  conditions as extra features so a curve that is realistic but belongs to another condition
  can be caught (see :mod:`gan_hpc.quality.detection`).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.signal import find_peaks

from gan_hpc.config import QualityConfig
from gan_hpc.errors import DataError
from gan_hpc.quality.detection import (
    detection_auc,
    detection_score,
)
from gan_hpc.quality.types import (
    QualityInputs,
    QualityReport,
    SignalInputs,
    SignalRepresentation,
    subsample_indices,
)
from gan_hpc.quality_names import (
    SIG_DETECTION_AUC,
    SIG_DETECTION_SCORE,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    SIG_SPECTRAL_ERROR_UNCONDITIONAL,
)

logger = logging.getLogger(__name__)


_CLIP_DB = 40.0  # generated dB values are clipped this far beyond the real range


def to_decibels(curves: np.ndarray, representation: SignalRepresentation) -> np.ndarray:
    """(N, C, L) curves -> (N, C', L) ``20 log10 |H|`` (C' = 1 for ``real_imag``).

    Raises:
        DataError: ``real_imag`` curves without exactly 2 channels.

    """
    curves = np.asarray(curves, dtype=np.float64)
    if representation == "log_magnitude":
        return 20.0 * curves
    if representation == "magnitude":
        magnitude = np.abs(curves)
    else:
        if curves.shape[1] != 2:
            raise DataError(
                f"quality: real_imag curves need 2 channels (Re, Im), got {curves.shape[1]}; "
                "set the representation the data was read with"
            )
        magnitude = np.hypot(curves[:, 0], curves[:, 1])[:, None]
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(magnitude)


def _peak_frequencies(
    curve_db: np.ndarray, frequencies: np.ndarray, config: QualityConfig
) -> np.ndarray:
    """Frequencies of the ``num_peaks`` most prominent resonances, refined by a parabola."""
    peaks, properties = find_peaks(curve_db, prominence=config.peak_prominence_db)
    if len(peaks) == 0:
        return np.zeros(0)
    peaks = peaks[np.argsort(properties["prominences"])[::-1][: config.num_peaks]]
    left, middle, right = curve_db[peaks - 1], curve_db[peaks], curve_db[peaks + 1]
    curvature = left - 2.0 * middle + right  # < 0 at a strict maximum
    offset = np.where(
        curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0
    )
    spacing = (frequencies[peaks + 1] - frequencies[peaks - 1]) / 2.0
    return frequencies[peaks] + np.clip(offset, -0.5, 0.5) * spacing


def resonance_error(
    real_db: np.ndarray, generated_db: np.ndarray, frequencies: np.ndarray, config: QualityConfig
) -> tuple[float, int]:
    """Mean capped relative error of matched resonance frequencies, and the real peaks matched.

    Args:
        real_db: (N, C, L) real curves in dB.
        generated_db: (N, C, L) generated curves in dB, row ``i`` at the condition of ``real[i]``.
        frequencies: (L,) axis.
        config: ``num_peaks`` and ``peak_prominence_db``.

    Returns:
        (error in [0, 1] or NaN when the real curves have no resonance, number of real peaks).

    """
    errors: list[float] = []
    for real_curves, generated_curves in zip(real_db, generated_db, strict=True):
        for real_curve, generated_curve in zip(real_curves, generated_curves, strict=True):
            real_peaks = _peak_frequencies(real_curve, frequencies, config)
            generated_peaks = _peak_frequencies(generated_curve, frequencies, config)
            for f in real_peaks:
                if len(generated_peaks) == 0:
                    errors.append(1.0)
                else:
                    errors.append(min(1.0, float(np.abs(generated_peaks - f).min() / abs(f))))
    return (float(np.mean(errors)) if errors else math.nan), len(errors)


def _checked(inputs: QualityInputs) -> SignalInputs:
    """The inputs, if they are paired curves on one axis; else a DataError."""
    if not isinstance(inputs, SignalInputs):
        raise DataError(f"quality: signal metrics need SignalInputs, got {type(inputs).__name__}")
    real, generated = np.shape(inputs.real), np.shape(inputs.generated)
    if len(real) != 3 or real[0] == 0 or real != generated:
        raise DataError(
            f"quality: real {real} and generated {generated} curves must be non-empty (N, C, L) "
            "arrays of one shape; generate one curve per real curve, at its condition"
        )
    if np.shape(inputs.frequencies) != (real[2],):
        raise DataError(
            f"quality: frequencies {np.shape(inputs.frequencies)} do not match curve length "
            f"{real[2]}; pass the (L,) axis of the curves"
        )
    if inputs.conditions is not None and len(inputs.conditions) != real[0]:
        raise DataError(
            f"quality: {len(inputs.conditions)} conditions for {real[0]} curves; pass the "
            "(N, K) conditions of the real curves"
        )
    return inputs


def signal_quality(inputs: QualityInputs, config: QualityConfig) -> QualityReport:
    """Score generated curves against the real curves at the same conditions (module docstring).

    Raises:
        DataError: ``inputs`` are not :class:`SignalInputs` or the arrays do not fit.

    """
    inputs = _checked(inputs)
    rng = np.random.default_rng(config.seed)
    index = subsample_indices(len(inputs.real), config.num_signal_samples, rng)
    frequencies = np.asarray(inputs.frequencies, dtype=np.float64)
    real_db = to_decibels(inputs.real[index], inputs.representation)
    generated_db = to_decibels(inputs.generated[index], inputs.representation)
    notes: list[str] = []
    if not np.all(np.isfinite(real_db)):
        raise DataError("quality: real curves hold zero magnitudes or NaN; their dB is undefined")
    low, high = real_db.min() - _CLIP_DB, real_db.max() + _CLIP_DB
    if not np.all((generated_db >= low) & (generated_db <= high)):
        notes.append(f"generated dB values clipped to [{low:.1f}, {high:.1f}] (real range +-40 dB)")
    generated_db = np.clip(np.nan_to_num(generated_db, nan=low), low, high)

    mean_curve = real_db.mean(axis=0, keepdims=True)
    resonance, num_peaks = resonance_error(real_db, generated_db, frequencies, config)
    if num_peaks == 0:
        notes.append(f"no real resonance with prominence >= {config.peak_prominence_db} dB")
    features = [real_db.reshape(len(index), -1), generated_db.reshape(len(index), -1)]
    if inputs.conditions is not None:
        conditions = np.asarray(inputs.conditions, dtype=np.float64)[index]
        features = [np.concatenate([f, conditions], axis=1) for f in features]
    auc = detection_auc(
        features[0], features[1], num_folds=config.num_folds, seed=config.seed, is_paired=True
    )
    metrics = {
        SIG_SPECTRAL_ERROR: float(np.sqrt(np.mean((generated_db - real_db) ** 2))),
        SIG_SPECTRAL_ERROR_UNCONDITIONAL: float(np.sqrt(np.mean((mean_curve - real_db) ** 2))),
        SIG_RESONANCE_ERROR: resonance,
        SIG_DETECTION_AUC: auc,
        SIG_DETECTION_SCORE: detection_score(auc),
    }
    sizes = {"signal_pairs": len(index), "real_resonances": num_peaks}
    return QualityReport(metrics=metrics, sample_sizes=sizes, notes=tuple(notes))
