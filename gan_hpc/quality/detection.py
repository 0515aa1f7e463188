"""The detection test shared by every data kind: can a fresh classifier tell real from fake.

A gradient-boosted tree classifier (scikit-learn's ``HistGradientBoostingClassifier``) is
trained to separate real rows from generated rows; its cross-validated ROC-AUC is 0.5 when the
two are indistinguishable and 1.0 when every generated row is recognised. Trees see
interactions between features, so a generator that reproduces each marginal but breaks the
dependencies between them is still detected (a linear model would miss it).
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

logger = logging.getLogger(__name__)


_MAX_ITER = 100  # boosting rounds: enough to find a broken dependency, a second or two per fit


def detection_auc(
    real: np.ndarray, fake: np.ndarray, *, num_folds: int, seed: int, is_paired: bool = False
) -> float:
    """Cross-validated ROC-AUC of a classifier telling ``fake`` rows from ``real`` rows.

    The AUC is computed on the pooled out-of-fold predictions of a stratified
    ``num_folds``-fold split (seeded), so every row is scored by a model that never saw it.
    Paired rows (``real[i]`` and ``fake[i]`` generated at the same condition) stay in one
    fold: a model that saw one twin labelled real would call the other real too, and push the
    AUC below 0.5.

    Args:
        real: (N, F) features of real samples (NaN allowed: the trees route it).
        fake: (M, F) features of generated samples.
        num_folds: cross-validation folds (at least 2).
        seed: seeds the fold split and the classifier.
        is_paired: keep ``real[i]`` and ``fake[i]`` in the same fold (needs N == M).

    Returns:
        The ROC-AUC in [0, 1], or NaN when either side has fewer rows than folds.

    """
    if min(len(real), len(fake)) < num_folds:
        return float("nan")
    x = np.concatenate([real, fake]).astype(np.float32, copy=False)
    y = np.concatenate([np.zeros(len(real), np.int64), np.ones(len(fake), np.int64)])
    scores = np.empty(len(y), dtype=np.float64)
    groups = np.concatenate([np.arange(len(real)), np.arange(len(fake))]) if is_paired else None
    splitter = StratifiedGroupKFold if is_paired else StratifiedKFold
    folds = splitter(n_splits=num_folds, shuffle=True, random_state=seed)
    for train_index, test_index in folds.split(x, y, groups):
        model = HistGradientBoostingClassifier(
            max_iter=_MAX_ITER, early_stopping=False, random_state=seed
        )
        model.fit(x[train_index], y[train_index])
        scores[test_index] = model.predict_proba(x[test_index])[:, 1]
    auc = float(roc_auc_score(y, scores))
    logger.debug("detection AUC %.4f on %d real + %d fake rows", auc, len(real), len(fake))
    return auc


def detection_score(auc: float) -> float:
    """Map a detection AUC to [0, 1], 1 meaning indistinguishable: ``1 - 2 |auc - 0.5|``."""
    return 1.0 - 2.0 * abs(auc - 0.5)
