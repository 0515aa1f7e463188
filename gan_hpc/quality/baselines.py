"""Honest reference points for a tabular leaderboard: the real-data ceiling, the marginals floor.

- ``real_data``: half of the held-out split stands in for the synthetic table and is scored
  against the other half: what a perfect generator (a fresh sample of the real distribution)
  would score with these sample sizes.
- ``independent_marginals``: every column sampled on its own from the training table: right
  marginals, no dependencies. A GAN that does not beat it learned nothing beyond the marginals.

Both are scored against the same half ``B`` of ``real_test`` (:func:`split_holdout`); score a
generator against ``B`` as well to compare like with like.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from gan_hpc.config import QualityConfig
from gan_hpc.errors import DataError
from gan_hpc.quality.tabular import tabular_quality
from gan_hpc.quality.types import QualityReport, TabularInputs

logger = logging.getLogger(__name__)

BASELINE_REAL = "real_data"
BASELINE_MARGINALS = "independent_marginals"


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
