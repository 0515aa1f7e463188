"""Held-out quality of synthetic tables: fidelity, detection, usefulness and privacy.

All scores compare the synthetic table with the held-out ``real_test`` split (the generator
never saw it), except the privacy checks, which look for training rows in the synthetic table.

- Column similarity: ``1 - KS`` statistic (numeric, present values) or ``1 - TV`` (total
  variation distance of the category shares, missing counted as a category), per column under
  ``quality/column/<name>`` and their mean.
- Trend similarity, per column pair: numeric pairs ``1 - |rho_real - rho_synthetic| / 2`` with
  Spearman's rho (rank correlation: robust to heavy tails); pairs with a categorical column
  ``1 - TV`` of the two contingency tables, numerics cut into quantile bins of the real column.
  Wide tables score a seeded subset of ``max_trend_pairs`` pairs.
- Detection: cross-validated ROC-AUC of a tree classifier telling real from synthetic rows
  (see :mod:`gan_hpc.quality.detection`).
- Machine-learning efficacy: a classifier (or regressor for a numeric target) trained on the
  synthetic table (TSTR) and on as many real training rows (TRTR, the ceiling), both tested on
  ``real_test``: macro F1 (or R^2), accuracy and one-vs-rest ROC-AUC.
- Privacy: the exact-copy rate (synthetic rows equal to a training row, against the holdout's
  own rate) and the distance to the closest training record (DCR: Euclidean on min-max
  numerics and one-hot categoricals scaled so a category mismatch counts 1), as the ratio of
  median DCRs of synthetic and holdout rows; below ``dcr_ratio_min`` flags memorisation.

The headline ``quality/tabular_score`` (higher is better) is the mean of column similarity,
trend similarity, detection score and ``clip(TSTR / TRTR, 0, 1)`` (those that are defined),
multiplied by ``1 - excess_copy_rate`` and by ``min(1, dcr_ratio / dcr_ratio_min)``, where
``excess_copy_rate = max(0, copy_rate - holdout_copy_rate)``: a generator that replays its
training set scores near 0 however faithful the copy is.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, f1_score, r2_score, roc_auc_score

from gan_hpc.config import QualityConfig
from gan_hpc.errors import DataError
from gan_hpc.quality.detection import (
    detection_auc,
    detection_score,
)
from gan_hpc.quality.encoding import (
    TableEncoder,
    category_labels,
    fit_table_encoder,
    is_numeric_column,
    numeric_values,
)
from gan_hpc.quality.types import (
    QualityInputs,
    QualityReport,
    TabularInputs,
    subsample_indices,
)
from gan_hpc.quality_names import (
    TAB_COLUMN_PREFIX,
    TAB_COLUMN_SIMILARITY,
    TAB_DCR_HOLDOUT_MEDIAN,
    TAB_DCR_MEDIAN,
    TAB_DCR_RATIO,
    TAB_DETECTION_AUC,
    TAB_DETECTION_SCORE,
    TAB_EXACT_COPY_RATE,
    TAB_EXACT_COPY_RATE_HOLDOUT,
    TAB_ML_EFFICACY_RATIO,
    TAB_PRIVACY_OK,
    TAB_TABULAR_SCORE,
    TAB_TREND_SIMILARITY,
    TAB_TRTR,
    TAB_TSTR,
)

logger = logging.getLogger(__name__)


_COPY_RESOLUTION = 1e-6  # numerics equal to this share of the column's range count as equal


def tabular_quality(inputs: QualityInputs, config: QualityConfig) -> QualityReport:
    """Score a synthetic table against the held-out split (see the module docstring).

    Raises:
        DataError: ``inputs`` are not :class:`TabularInputs`, or the tables do not match.

    """
    if not isinstance(inputs, TabularInputs):
        raise DataError(f"quality: tabular metrics need TabularInputs, got {type(inputs).__name__}")
    train, test, synthetic = _checked_tables(inputs)
    rng = np.random.default_rng(config.seed)
    test = test.iloc[subsample_indices(len(test), config.num_rows, rng)].reset_index(drop=True)
    synthetic = synthetic.iloc[subsample_indices(len(synthetic), config.num_rows, rng)]
    synthetic = synthetic.reset_index(drop=True)
    numeric = {name: is_numeric_column(train[name]) for name in train.columns}
    metrics: dict[str, float] = {}
    notes: list[str] = []
    sizes = {
        "real_train_rows": len(train),
        "real_test_rows": len(test),
        "synthetic_rows": len(synthetic),
    }

    per_column = {
        name: column_similarity(test[name], synthetic[name], is_numeric=numeric[name])
        for name in train.columns
    }
    metrics.update({TAB_COLUMN_PREFIX + name: value for name, value in per_column.items()})
    metrics[TAB_COLUMN_SIMILARITY] = _nanmean(per_column.values())

    pairs = _column_pairs(list(train.columns), config.max_trend_pairs, rng)
    sizes["trend_pairs"] = len(pairs)
    sizes["trend_pairs_total"] = math.comb(len(train.columns), 2)
    if sizes["trend_pairs"] < sizes["trend_pairs_total"]:
        notes.append(f"trend similarity on a seeded subset of {len(pairs)} column pairs")
    metrics[TAB_TREND_SIMILARITY] = trend_similarity(
        test, synthetic, pairs, numeric=numeric, num_bins=config.num_bins
    )

    encoder = fit_table_encoder(train)
    num_detect = min(len(test), len(synthetic))  # balanced classes
    auc = detection_auc(
        encoder.encode(test.iloc[subsample_indices(len(test), num_detect, rng)]),
        encoder.encode(synthetic.iloc[subsample_indices(len(synthetic), num_detect, rng)]),
        num_folds=config.num_folds,
        seed=config.seed,
    )
    sizes["detection_rows_per_side"] = num_detect
    metrics[TAB_DETECTION_AUC] = auc
    metrics[TAB_DETECTION_SCORE] = detection_score(auc)

    target = _target_column(train, inputs.condition_column, config.target_column)
    if target is None:
        notes.append("no categorical column and no target_column: ML efficacy not measured")
    else:
        real_rows = train.iloc[subsample_indices(len(train), len(synthetic), rng)]
        metrics.update(_ml_efficacy(real_rows, synthetic, test, target, numeric[target], config))
        sizes["ml_train_rows"] = len(synthetic)
        sizes["ml_real_train_rows"] = len(real_rows)
        sizes["ml_test_rows"] = len(test)
        notes.append(f"ML efficacy target: {target}")

    metrics.update(_privacy(train, test, synthetic, encoder, config, rng, sizes, notes))
    metrics[TAB_TABULAR_SCORE] = headline_score(metrics, config)
    return QualityReport(metrics=metrics, sample_sizes=sizes, notes=tuple(notes))


def _checked_tables(inputs: TabularInputs) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three tables with the training columns in training order, or a DataError."""
    train = inputs.real_train
    tables = {"real_train": train, "real_test": inputs.real_test, "synthetic": inputs.synthetic}
    for label, frame in tables.items():
        if not isinstance(frame, pd.DataFrame) or len(frame) == 0:
            raise DataError(f"quality: {label} is empty or not a DataFrame; pass rows to score")
        missing = [c for c in train.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in train.columns]
        if missing or extra:
            raise DataError(
                f"quality: {label} columns differ from real_train (missing {missing}, extra "
                f"{extra}); inverse-transform the samples to the original columns"
            )
    columns = list(train.columns)
    return train, inputs.real_test[columns], inputs.synthetic[columns]


def _nanmean(values: Iterable[float]) -> float:
    """Mean of the finite values, NaN when there are none."""
    array = np.asarray(list(values), dtype=np.float64)
    finite = array[np.isfinite(array)]
    return float(finite.mean()) if len(finite) else math.nan


def total_variation(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Total variation distance between the empirical distributions of two label arrays."""
    levels, codes = np.unique(np.concatenate([real, synthetic]), return_inverse=True)
    p = np.bincount(codes[: len(real)], minlength=len(levels)) / len(real)
    q = np.bincount(codes[len(real) :], minlength=len(levels)) / len(synthetic)
    return 0.5 * float(np.abs(p - q).sum())


def column_similarity(real: pd.Series, synthetic: pd.Series, *, is_numeric: bool) -> float:
    """``1 - KS`` (numeric, present values) or ``1 - TV``.

    A numeric column the generator leaves all missing while real data has values scores 0
    (the worst), not NaN, so it cannot drop out of the mean; without real values it is NaN.
    """
    if not is_numeric:
        return 1.0 - total_variation(category_labels(real), category_labels(synthetic))
    a, b = numeric_values(real), numeric_values(synthetic)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0:
        return math.nan
    if len(b) == 0:
        return 0.0
    # The statistic does not depend on the method; "asymp" only skips a slow exact p-value.
    return 1.0 - float(ks_2samp(a, b, method="asymp").statistic)


def _column_pairs(
    columns: list[str], max_pairs: int, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """All column pairs, or a seeded subset of ``max_pairs`` of them."""
    pairs = [(a, b) for i, a in enumerate(columns) for b in columns[i + 1 :]]
    if len(pairs) <= max_pairs:
        return pairs
    chosen = np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))
    return [pairs[i] for i in chosen]


def _level_codes(
    real: pd.Series, synthetic: pd.Series, *, is_numeric: bool, num_bins: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Both columns as integer levels of one shared coding, and the number of levels.

    Categories are their own levels (missing included); numerics are cut at the real column's
    quantiles, missing values getting the extra level ``num_bins``.
    """
    if not is_numeric:
        levels, codes = np.unique(
            np.concatenate([category_labels(real), category_labels(synthetic)]),
            return_inverse=True,
        )
        return codes[: len(real)], codes[len(real) :], len(levels)
    a, b = numeric_values(real), numeric_values(synthetic)
    present = a[~np.isnan(a)]
    quantiles = np.linspace(0, 1, num_bins + 1)[1:-1]
    edges = np.unique(np.quantile(present, quantiles)) if len(present) else np.zeros(0)
    coded = [
        np.where(np.isnan(v), num_bins, np.searchsorted(edges, v, side="right")) for v in (a, b)
    ]
    return coded[0], coded[1], num_bins + 1


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho on rows where both are present; 0 when a column is constant."""
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 3:
        return 0.0
    rx = pd.Series(x[keep]).rank().to_numpy()
    ry = pd.Series(y[keep]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return 0.0  # a constant column carries no trend
    return float(np.corrcoef(rx, ry)[0, 1])


def trend_similarity(
    real: pd.DataFrame,
    synthetic: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    numeric: dict[str, bool],
    num_bins: int,
) -> float:
    """Mean pairwise trend similarity over ``pairs`` (module docstring); NaN without pairs."""
    levels: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}

    def levels_of(name: str) -> tuple[np.ndarray, np.ndarray, int]:
        if name not in levels:
            levels[name] = _level_codes(
                real[name], synthetic[name], is_numeric=numeric[name], num_bins=num_bins
            )
        return levels[name]

    scores = []
    for a, b in pairs:
        if numeric[a] and numeric[b]:
            rho_real = _spearman(numeric_values(real[a]), numeric_values(real[b]))
            rho_synthetic = _spearman(numeric_values(synthetic[a]), numeric_values(synthetic[b]))
            scores.append(1.0 - abs(rho_real - rho_synthetic) / 2.0)
            continue
        (real_a, synthetic_a, _), (real_b, synthetic_b, width) = levels_of(a), levels_of(b)
        real_cells = real_a * width + real_b  # one integer per contingency-table cell
        synthetic_cells = synthetic_a * width + synthetic_b
        scores.append(1.0 - total_variation(real_cells, synthetic_cells))
    return _nanmean(scores)


def _target_column(
    train: pd.DataFrame, condition_column: str | None, target_column: str | None
) -> str | None:
    """The configured target, else the condition column, else the last categorical column."""
    for name in (target_column, condition_column):
        if name is not None:
            if name not in train.columns:
                raise DataError(
                    f"quality: target column '{name}' is not in the table; set "
                    f"quality.target_column to one of {list(train.columns)}"
                )
            return name
    categorical = [c for c in train.columns if not is_numeric_column(train[c])]
    return categorical[-1] if categorical else None


def _ml_efficacy(
    real_train: pd.DataFrame,
    synthetic: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    is_regression: bool,
    config: QualityConfig,
) -> dict[str, float]:
    """TSTR and TRTR side by side (module docstring), plus their ratio."""
    features = [c for c in real_train.columns if c != target]
    encoder = fit_table_encoder(real_train, features)
    x_test = encoder.encode(test)

    def scores_of(train: pd.DataFrame) -> dict[str, float]:
        x_train = encoder.encode(train)
        if is_regression:
            return _regression_scores(x_train, train[target], x_test, test[target], config)
        return _classification_scores(
            x_train, category_labels(train[target]), x_test, category_labels(test[target]), config
        )

    # TRTR is the same at every evaluation of a trial: real rows only, scored once
    trtr = _real_side(
        _fingerprint("trtr", real_train, test, target, is_regression, config.seed),
        lambda: scores_of(real_train),
    )
    out: dict[str, float] = {}
    for prefix, scores in (("tstr", scores_of(synthetic)), ("trtr", trtr)):
        out.update({f"quality/ml_efficacy_{prefix}{suffix}": v for suffix, v in scores.items()})
    trtr_score = out[TAB_TRTR]
    out[TAB_ML_EFFICACY_RATIO] = out[TAB_TSTR] / trtr_score if trtr_score > 0 else math.nan
    return out


def _classification_scores(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    config: QualityConfig,
) -> dict[str, float]:
    """Macro F1 (the main score), accuracy and mean one-vs-rest ROC-AUC on the test rows."""
    classes = np.unique(np.concatenate([y_train, y_test]))
    seen = np.unique(y_train)
    proba = np.zeros((len(y_test), len(classes)))
    columns = np.searchsorted(classes, seen)
    if len(seen) < 2:  # a collapsed generator: one class only, predict it everywhere
        proba[:, columns[0]] = 1.0
    else:
        model = HistGradientBoostingClassifier(max_iter=100, random_state=config.seed)
        model.fit(x_train, y_train)
        proba[:, np.searchsorted(classes, model.classes_)] = model.predict_proba(x_test)
    predicted = classes[proba.argmax(axis=1)]
    aucs = [
        roc_auc_score(y_test == c, proba[:, i])
        for i, c in enumerate(classes)
        if 0 < (y_test == c).sum() < len(y_test)
    ]
    return {
        "": float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        "_accuracy": float(accuracy_score(y_test, predicted)),
        "_auc": float(np.mean(aucs)) if aucs else math.nan,
    }


def _regression_scores(
    x_train: np.ndarray,
    y_train: pd.Series,
    x_test: np.ndarray,
    y_test: pd.Series,
    config: QualityConfig,
) -> dict[str, float]:
    """R^2 on the test rows (accuracy and AUC are undefined for a numeric target)."""
    a, b = numeric_values(y_train), numeric_values(y_test)
    keep_a, keep_b = ~np.isnan(a), ~np.isnan(b)
    if keep_a.sum() < 2 or keep_b.sum() < 2:
        return {"": math.nan, "_accuracy": math.nan, "_auc": math.nan}
    model = HistGradientBoostingRegressor(max_iter=100, random_state=config.seed)
    model.fit(x_train[keep_a], a[keep_a])
    r2 = float(r2_score(b[keep_b], model.predict(x_test[keep_b])))
    return {"": r2, "_accuracy": math.nan, "_auc": math.nan}


_Value = TypeVar("_Value")
_REAL_SIDE: OrderedDict[str, object] = OrderedDict()  # fingerprint -> a result from real rows
_REAL_SIDE_SIZE = 4  # a trial scores two splits (validation, test); a few more for benches


def _fingerprint(*parts: object) -> str:
    """A digest of frames, arrays and plain values: equal content gives an equal key."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, pd.DataFrame):
            digest.update(repr(list(part.columns)).encode())
            digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        elif isinstance(part, np.ndarray):
            digest.update(repr((part.shape, part.dtype.str)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(repr(part).encode())
    return digest.hexdigest()


def _real_side(key: str, compute: Callable[[], _Value]) -> _Value:
    """``compute()``'s result for the real rows behind ``key``, computed once per process.

    A trial scores the same real rows at every evaluation; only the synthetic side changes.
    """
    if key in _REAL_SIDE:
        _REAL_SIDE.move_to_end(key)
    else:
        _REAL_SIDE[key] = compute()
        while len(_REAL_SIDE) > _REAL_SIDE_SIZE:
            _REAL_SIDE.popitem(last=False)
    return _REAL_SIDE[key]  # type: ignore[return-value]


@dataclass(frozen=True)
class _RealPrivacy:
    """The privacy metrics' real side: training-row keys, DCR reference, holdout's figures."""

    train_keys: np.ndarray
    reference: np.ndarray
    holdout_copy_rate: float
    holdout_dcr_median: float


def _row_keys(frame: pd.DataFrame, encoder: TableEncoder) -> np.ndarray:
    """One uint64 hash per row; numerics quantised to a millionth of the training range."""
    keys = {}
    for name, low, high, _ in encoder.numeric:
        step = (high - low) * _COPY_RESOLUTION or 1.0
        values = np.round((numeric_values(frame[name]) - low) / step)
        keys[name] = pd.Series(values).fillna(np.inf)
    for name, _ in encoder.categorical:
        keys[name] = pd.Series(category_labels(frame[name]))
    return pd.util.hash_pandas_object(pd.DataFrame(keys), index=False).to_numpy()


def _closest_distances(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance of each row to its closest reference row (chunked, float64)."""
    reference = reference.astype(np.float64)
    reference_sq = (reference**2).sum(axis=1)
    out = np.empty(len(rows))
    for start in range(0, len(rows), 256):
        chunk = rows[start : start + 256].astype(np.float64)
        d2 = (chunk**2).sum(axis=1)[:, None] + reference_sq[None, :] - 2.0 * chunk @ reference.T
        out[start : start + 256] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def _privacy(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    encoder: TableEncoder,
    config: QualityConfig,
    rng: np.random.Generator,
    sizes: dict[str, int],
    notes: list[str],
) -> dict[str, float]:
    """Exact-copy rates, closest-record distances and the privacy flag."""
    scale = 1.0 / math.sqrt(2.0)  # a category mismatch then adds exactly 1 to the squared DCR
    reference_index = subsample_indices(len(train), config.num_reference_rows, rng)
    synthetic_index = subsample_indices(len(synthetic), config.num_dcr_rows, rng)
    holdout_index = subsample_indices(len(holdout), config.num_dcr_rows, rng)

    def real_privacy() -> _RealPrivacy:
        train_keys = _row_keys(train, encoder)
        reference = encoder.encode(train.iloc[reference_index], onehot_scale=scale)
        holdout_rows = encoder.encode(holdout.iloc[holdout_index], onehot_scale=scale)
        return _RealPrivacy(
            train_keys=train_keys,
            reference=reference,
            holdout_copy_rate=float(np.isin(_row_keys(holdout, encoder), train_keys).mean()),
            holdout_dcr_median=float(np.median(_closest_distances(holdout_rows, reference))),
        )

    # the real side is the same at every evaluation of a trial: computed once
    real = _real_side(
        _fingerprint("privacy", train, holdout, reference_index, holdout_index), real_privacy
    )
    copy_rate = float(np.isin(_row_keys(synthetic, encoder), real.train_keys).mean())
    holdout_rate = real.holdout_copy_rate
    dcr = _closest_distances(
        encoder.encode(synthetic.iloc[synthetic_index], onehot_scale=scale), real.reference
    )
    sizes["dcr_rows"] = len(synthetic_index)
    sizes["dcr_holdout_rows"] = len(holdout_index)
    sizes["dcr_reference_rows"] = len(reference_index)
    if len(reference_index) < len(train):
        notes.append(f"closest records searched among {len(reference_index)} training rows")
    median, median_holdout = float(np.median(dcr)), real.holdout_dcr_median
    ratio = median / median_holdout if median_holdout > 0 else math.nan
    if math.isnan(ratio):
        notes.append("holdout rows repeat training rows (median DCR 0): DCR ratio undefined")
    excess = max(0.0, copy_rate - holdout_rate)
    is_private = excess <= config.copy_rate_tolerance and not ratio < config.dcr_ratio_min
    if not is_private:
        logger.info("memorisation flagged: copy rate %.3f, DCR ratio %.3f", copy_rate, ratio)
    return {
        TAB_EXACT_COPY_RATE: copy_rate,
        TAB_EXACT_COPY_RATE_HOLDOUT: holdout_rate,
        TAB_DCR_MEDIAN: median,
        TAB_DCR_HOLDOUT_MEDIAN: median_holdout,
        TAB_DCR_RATIO: ratio,
        TAB_PRIVACY_OK: 1.0 if is_private else 0.0,
    }


def headline_score(metrics: dict[str, float], config: QualityConfig) -> float:
    """``quality/tabular_score`` from the other metrics (formula in the module docstring)."""
    ratio = metrics.get(TAB_ML_EFFICACY_RATIO, math.nan)
    fidelity = _nanmean(
        [
            metrics[TAB_COLUMN_SIMILARITY],
            metrics[TAB_TREND_SIMILARITY],
            metrics[TAB_DETECTION_SCORE],
            min(1.0, max(0.0, ratio)) if math.isfinite(ratio) else math.nan,
        ]
    )
    excess = max(0.0, metrics[TAB_EXACT_COPY_RATE] - metrics[TAB_EXACT_COPY_RATE_HOLDOUT])
    dcr_ratio = metrics[TAB_DCR_RATIO]
    dcr_factor = min(1.0, dcr_ratio / config.dcr_ratio_min) if math.isfinite(dcr_ratio) else 1.0
    return fidelity * (1.0 - excess) * dcr_factor
