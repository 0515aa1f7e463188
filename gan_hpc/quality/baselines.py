"""Honest reference points for a leaderboard: a real-data ceiling and a trivial floor per data kind.

Each baseline is scored by the same metrics, sample sizes and seed as the generators, so a
reader sees at once whether a generator learned anything (rows ``baseline:<name>``):

- tables: ``real_data``, half of the held-out split standing in for the synthetic table and
  scored against the other half (what a perfect generator, a fresh sample of the real
  distribution, would score with these sample sizes); ``independent_marginals``, every column
  sampled on its own from the training table: right marginals, no dependencies. Both are
  scored against the same half ``B`` of ``real_test`` (:func:`split_holdout`); generators are
  scored against ``B`` as well, to compare like with like.
- signals: ``real_data``, each held-out curve paired with another real curve at the same
  condition (a replicate in the held-out split, else in the training split; without one, the
  curve itself: 0 dB, the ceiling of noise-free data such as the simulator's);
  ``mean_curve``, the mean training curve (in dB) at every condition: a generator above it has
  learned nothing about the condition.
- images: ``real_data``, the validation split's real images (never seen by the feature
  classifier) in place of generated ones, against the held-out test split the generators are
  scored on; ``independent_pixels``, every pixel drawn on its own from its values across the
  training images: right pixel marginals, no strokes. For class-conditional data each image is
  asked for a class drawn in the training proportions, so ``conditional_accuracy`` is the
  classifier's accuracy on real images (ceiling) and about chance (floor).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Hashable

import numpy as np
import pandas as pd

from gan_hpc.config import QualityConfig
from gan_hpc.errors import DataError
from gan_hpc.quality.images import image_quality
from gan_hpc.quality.signals import signal_quality, to_decibels
from gan_hpc.quality.tabular import tabular_quality
from gan_hpc.quality.types import (
    ImageInputs,
    QualityReport,
    SignalInputs,
    SignalRepresentation,
    TabularInputs,
)
from gan_hpc.quality_names import (
    BASELINE_MARGINALS,
    BASELINE_MEAN_CURVE,
    BASELINE_PIXELS,
    BASELINE_REAL,
)

logger = logging.getLogger(__name__)


def split_holdout(real_test: pd.DataFrame, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the held-out table into two disjoint, seeded halves ``(A, B)``.

    ``A`` plays the synthetic table of the real-data baseline; ``B`` is the held-out set every
    baseline (and, for a fair comparison, every generator) is scored against.

    Raises:
        DataError: fewer than 4 rows to split.

    """
    if len(real_test) < 4:
        raise DataError(
            f"quality: real_test has {len(real_test)} rows, too few to split into baseline "
            "halves; hold out more rows (data.test_fraction or data.test_path)"
        )
    order = np.random.default_rng(seed).permutation(len(real_test))
    half = len(order) // 2
    first = real_test.iloc[np.sort(order[:half])].reset_index(drop=True)
    second = real_test.iloc[np.sort(order[half:])].reset_index(drop=True)
    return first, second


def independent_marginals(
    real_train: pd.DataFrame, num_rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """``num_rows`` rows whose columns are drawn independently (with replacement) from training.

    Dtypes, categoricals included, are kept.
    """
    columns = {
        name: real_train[name].sample(n=num_rows, replace=True, random_state=rng).to_numpy()
        for name in real_train.columns
    }
    frame = pd.DataFrame(columns)
    return frame.astype(real_train.dtypes.to_dict())


def tabular_baselines(
    real_train: pd.DataFrame,
    real_test: pd.DataFrame,
    config: QualityConfig,
    *,
    condition_column: str | None = None,
) -> dict[str, QualityReport]:
    """Score the ``real_data`` ceiling and the ``independent_marginals`` floor.

    Args:
        real_train: the training table (data units, original dtypes).
        real_test: the held-out table; split into halves by :func:`split_holdout`.
        config: the same quality config the generators are scored with.
        condition_column: the default ML-efficacy target, as for a generator.

    Returns:
        ``{BASELINE_REAL: report, BASELINE_MARGINALS: report}``.

    """
    stand_in, holdout = split_holdout(real_test, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    marginals = independent_marginals(real_train, len(stand_in), rng)
    reports = {}
    for name, synthetic in ((BASELINE_REAL, stand_in), (BASELINE_MARGINALS, marginals)):
        inputs = TabularInputs(
            real_train=real_train,
            real_test=holdout,
            synthetic=synthetic,
            condition_column=condition_column,
        )
        reports[name] = tabular_quality(inputs, config)
        logger.debug("baseline %s: %s", name, reports[name].metrics)
    return reports


def _with_sizes(report: QualityReport, sizes: dict[str, int], notes: list[str]) -> QualityReport:
    """``report`` with more sample sizes and notes."""
    return QualityReport(
        metrics=report.metrics,
        sample_sizes={**report.sample_sizes, **sizes},
        notes=(*report.notes, *notes),
    )


def _condition_keys(conditions: np.ndarray | None, num: int) -> list[Hashable]:
    """One hashable key per row: its condition (one shared key for unconditional data)."""
    if conditions is None:
        return [()] * num
    return [tuple(row) for row in np.asarray(conditions).reshape(num, -1).tolist()]


def replicate_curves(
    real_train: np.ndarray,
    real_test: np.ndarray,
    *,
    train_conditions: np.ndarray | None = None,
    test_conditions: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """For each held-out curve, another real curve at the same condition.

    The next curve with that condition in the held-out split (so the held-out replicates of one
    condition are paired in a cycle), else the first in the training split, else the curve
    itself. Unconditional curves all share one condition: they are paired with each other.

    Args:
        real_train: (M, C, L) training curves.
        real_test: (N, C, L) held-out curves.
        train_conditions: (M, K) their conditions, or None for unconditional data.
        test_conditions: (N, K) the held-out conditions, or None.

    Returns:
        (N, C, L) stand-in curves, and how many of them are another curve than the original.

    """
    by_test: dict[Hashable, list[int]] = defaultdict(list)
    for index, key in enumerate(_condition_keys(test_conditions, len(real_test))):
        by_test[key].append(index)
    first_train: dict[Hashable, int] = {}
    for index, key in enumerate(_condition_keys(train_conditions, len(real_train))):
        first_train.setdefault(key, index)
    stand_in = np.array(real_test, copy=True)
    num_replicates = 0
    for key, rows in by_test.items():
        for position, row in enumerate(rows):
            if len(rows) > 1:
                stand_in[row] = real_test[rows[(position + 1) % len(rows)]]
            elif key in first_train:
                stand_in[row] = real_train[first_train[key]]
            else:
                continue
            num_replicates += 1
    return stand_in, num_replicates


def mean_curve(real_train: np.ndarray, representation: SignalRepresentation) -> np.ndarray:
    """The mean training curve in dB, as one (1, C, L) curve in ``representation``.

    Averaging in dB keeps the resonances of a log-magnitude plot; a ``real_imag`` mean is
    returned as a real curve (its magnitude on the real channel, 0 on the imaginary one).
    """
    mean_db = to_decibels(real_train, representation).mean(axis=0, keepdims=True)
    if representation == "log_magnitude":
        return mean_db / 20.0
    magnitude = 10.0 ** (mean_db / 20.0)
    if representation == "magnitude":
        return magnitude
    return np.concatenate([magnitude, np.zeros_like(magnitude)], axis=1)


def signal_baselines(
    real_train: np.ndarray,
    real_test: np.ndarray,
    config: QualityConfig,
    *,
    frequencies: np.ndarray,
    train_conditions: np.ndarray | None = None,
    test_conditions: np.ndarray | None = None,
    representation: SignalRepresentation = "log_magnitude",
) -> dict[str, QualityReport]:
    """Score the ``real_data`` ceiling and the ``mean_curve`` floor of curve data.

    Args:
        real_train: (M, C, L) training curves in data units.
        real_test: (N, C, L) held-out curves, the ones generators are scored against.
        config: the same quality config the generators are scored with.
        frequencies: (L,) axis.
        train_conditions: (M, K) conditions of the training curves (data units), or None.
        test_conditions: (N, K) conditions of the held-out curves, or None.
        representation: what the channels hold (see :class:`SignalInputs`).

    Returns:
        ``{BASELINE_REAL: report, BASELINE_MEAN_CURVE: report}``; ``sample_sizes`` adds
        ``replicate_curves`` (held-out curves paired with another real curve) and
        ``mean_curve_train_curves``.

    """
    stand_in, num_replicates = replicate_curves(
        real_train,
        real_test,
        train_conditions=train_conditions,
        test_conditions=test_conditions,
    )
    notes = []
    if num_replicates < len(real_test):
        notes.append(
            f"{len(real_test) - num_replicates} of {len(real_test)} held-out curves have no "
            "replicate at their condition and stand in for themselves (0 dB: the ceiling of "
            "noise-free data; with measurement noise it flatters what a generator can reach)"
        )
    floor = np.broadcast_to(mean_curve(real_train, representation), np.shape(real_test))
    reports = {}
    for name, generated, sizes, extra in (
        (BASELINE_REAL, stand_in, {"replicate_curves": num_replicates}, notes),
        (BASELINE_MEAN_CURVE, floor, {"mean_curve_train_curves": len(real_train)}, []),
    ):
        inputs = SignalInputs(
            real=real_test,
            generated=np.asarray(generated),
            frequencies=frequencies,
            conditions=test_conditions,
            representation=representation,
        )
        reports[name] = _with_sizes(signal_quality(inputs, config), sizes, extra)
        logger.debug("baseline %s: %s", name, reports[name].metrics)
    return reports


def independent_pixels(
    real_train: np.ndarray, num_images: int, rng: np.random.Generator
) -> np.ndarray:
    """``num_images`` images whose every pixel (and channel) is drawn on its own from training."""
    flat = np.asarray(real_train).reshape(len(real_train), -1)
    rows = rng.integers(0, len(flat), size=(num_images, flat.shape[1]))
    pixels = np.take_along_axis(flat, rows, axis=0)
    return pixels.reshape(num_images, *np.shape(real_train)[1:])


def image_baselines(
    real_train: np.ndarray,
    real_test: np.ndarray,
    real_other: np.ndarray,
    config: QualityConfig,
    *,
    value_range: tuple[float, float],
    train_labels: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    other_labels: np.ndarray | None = None,
    num_classes: int | None = None,
    is_conditional: bool = False,
) -> dict[str, QualityReport]:
    """Score the ``real_data`` ceiling and the ``independent_pixels`` floor of image data.

    Args:
        real_train: (M, C, H, W) training images (the feature classifier's).
        real_test: (N, C, H, W) held-out images, the ones generators are scored against.
        real_other: real images the classifier never saw and disjoint from ``real_test`` (the
            validation split): the ceiling's stand-in for generated images.
        config: the same quality config the generators are scored with.
        value_range: the images' value range.
        train_labels: class labels of ``real_train``, or None.
        test_labels: class labels of ``real_test``, or None.
        other_labels: class labels of ``real_other``, or None.
        num_classes: number of classes (None: from the labels).
        is_conditional: the generators are class-conditional: each baseline image is asked for
            a class (its own label; a draw in the training proportions for the floor), so
            ``conditional_accuracy`` is reported.

    Returns:
        ``{BASELINE_REAL: report, BASELINE_PIXELS: report}``; ``sample_sizes`` adds
        ``baseline_images`` (images each baseline offered). Without ``real_other`` (no
        validation split) the ceiling is left out, with a warning.

    """
    rng = np.random.default_rng(config.seed)
    num_images = min(config.num_image_samples, len(real_test))
    pixels = independent_pixels(real_train, num_images, rng)
    labels = None
    if is_conditional and train_labels is not None:
        labels = rng.choice(np.asarray(train_labels), size=num_images, replace=True)
    candidates = [
        (BASELINE_REAL, real_other, other_labels if is_conditional else None),
        (BASELINE_PIXELS, pixels, labels),
    ]
    if len(real_other) == 0:
        logger.warning(
            "no real images beside the training and test splits: the %s baseline is left out "
            "(set data.val_fraction > 0)",
            BASELINE_REAL,
        )
        candidates = candidates[1:]
    reports = {}
    for name, generated, generated_labels in candidates:
        inputs = ImageInputs(
            real_train=real_train,
            real_test=real_test,
            generated=np.asarray(generated),
            value_range=value_range,
            train_labels=train_labels,
            test_labels=test_labels,
            generated_labels=generated_labels,
            num_classes=num_classes,
        )
        report = image_quality(inputs, config)
        reports[name] = _with_sizes(report, {"baseline_images": len(generated)}, [])
        logger.debug("baseline %s: %s", name, reports[name].metrics)
    return reports
