"""The tabular seed's analysis: do the samples that fool D lie closer to real data than the rest.

The seed generated 100 samples, split them by the discriminator's decision (fooled it or not)
and reported the mean cosine distance of each group to randomly chosen real samples (Adult:
0.63 for the samples that fooled D, 0.82 for the rest). Here each sample is compared with
every row of a seeded random reference set of real rows (``num_reference`` of them) rather
than with one random row each: the same expected value, with less variance. The mean
distance between other real rows and that reference set is reported beside it, as the level
a perfect generator would reach.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gan_hpc.errors import DataError
from gan_hpc.quality.encoding import fit_table_encoder
from gan_hpc.quality_names import (
    COSINE_FOOLED,
    COSINE_NOT_FOOLED,
    COSINE_NUM_FOOLED,
    COSINE_NUM_NOT_FOOLED,
    COSINE_REAL,
)


def _unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero: distance 1 to everything)."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def _mean_cosine_distance(rows: np.ndarray, reference: np.ndarray) -> float:
    """Mean of ``1 - cos`` over all (row, reference row) pairs; NaN without rows."""
    if len(rows) == 0 or len(reference) == 0:
        return math.nan
    return float(1.0 - (_unit_rows(rows) @ _unit_rows(reference).T).mean())


def cosine_distance_report(
    fooled: np.ndarray,
    not_fooled: np.ndarray,
    real: np.ndarray,
    *,
    rng: np.random.Generator,
    num_reference: int = 256,
) -> dict[str, float]:
    """Mean cosine distance to random real rows of the samples that fooled D and of the rest.

    Args:
        fooled: (A, F) numeric-encoded generated samples D classified as real.
        not_fooled: (B, F) generated samples D classified as fake.
        real: (N, F) real samples, encoded the same way.
        rng: draws the reference rows.
        num_reference: real rows in the reference set (all of them when fewer).

    Returns:
        The ``COSINE_*`` metrics; a distance is NaN when its group is empty.

    Raises:
        DataError: the three arrays do not have the same number of features.

    """
    widths = {np.shape(a)[1] if np.ndim(a) == 2 else None for a in (fooled, not_fooled, real)}
    if len(widths) != 1 or None in widths:
        raise DataError(
            "quality: fooled, not_fooled and real must be 2-D arrays with the same number of "
            "features; encode them with one encoder (encode_for_cosine)"
        )
    order = rng.permutation(len(real))
    reference = real[order[:num_reference]]
    others = real[order[num_reference:]]
    return {
        COSINE_FOOLED: _mean_cosine_distance(fooled, reference),
        COSINE_NOT_FOOLED: _mean_cosine_distance(not_fooled, reference),
        COSINE_REAL: _mean_cosine_distance(others, reference),
        COSINE_NUM_FOOLED: float(len(fooled)),
        COSINE_NUM_NOT_FOOLED: float(len(not_fooled)),
    }


def encode_for_cosine(synthetic: pd.DataFrame, real: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Both tables as one-hot categoricals plus min-max numerics fitted on ``real``."""
    encoder = fit_table_encoder(real)
    return encoder.encode(synthetic), encoder.encode(real)


def cosine_report_from_frames(
    synthetic: pd.DataFrame,
    is_fooled: np.ndarray,
    real: pd.DataFrame,
    *,
    rng: np.random.Generator,
    num_reference: int = 256,
) -> dict[str, float]:
    """:func:`cosine_distance_report` for tables; ``is_fooled[i]``: D called row ``i`` real."""
    is_fooled = np.asarray(is_fooled, dtype=bool)
    if is_fooled.shape != (len(synthetic),):
        raise DataError(
            f"quality: is_fooled has shape {is_fooled.shape}, expected ({len(synthetic)},): "
            "one decision of the discriminator per synthetic row"
        )
    encoded, encoded_real = encode_for_cosine(synthetic, real)
    return cosine_distance_report(
        encoded[is_fooled],
        encoded[~is_fooled],
        encoded_real,
        rng=rng,
        num_reference=num_reference,
    )
