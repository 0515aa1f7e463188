"""Held-out quality metrics per data kind: what the generated data is worth.

One scorer per data kind in :data:`QUALITY_METRICS`; :func:`evaluate_quality` looks it up.
Every metric name is a ``quality/...`` constant (never clashing with the convergence names)
with a direction in :data:`METRIC_MODES`; :func:`metric_mode` also knows the per-column names
``quality/column/<name>``. Example::

    report = evaluate_quality(
        "tabular",
        TabularInputs(real_train=train, real_test=test, synthetic=sample),
        config=QualityConfig(),
    )
    report.metrics[TAB_TABULAR_SCORE], report.sample_sizes, report.notes
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable

import torch
from threadpoolctl import threadpool_limits

from gan_hpc.config import QualityConfig
from gan_hpc.errors import SpecError
from gan_hpc.quality.baselines import independent_marginals, split_holdout, tabular_baselines
from gan_hpc.quality.cosine import (
    COSINE_FOOLED,
    COSINE_NOT_FOOLED,
    COSINE_REAL,
    cosine_distance_report,
    cosine_report_from_frames,
    encode_for_cosine,
)
from gan_hpc.quality.encoding import TableEncoder, fit_table_encoder
from gan_hpc.quality.images import (
    IMG_CLASS_COVERAGE,
    IMG_CLASS_TV,
    IMG_CLASSIFIER_ACCURACY,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    IMG_PRECISION,
    IMG_RECALL,
    image_quality,
)
from gan_hpc.quality.signals import (
    SIG_DETECTION_AUC,
    SIG_DETECTION_SCORE,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    SIG_SPECTRAL_ERROR_UNCONDITIONAL,
    signal_quality,
)
from gan_hpc.quality.tabular import (
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
    tabular_quality,
)
from gan_hpc.quality.types import (
    ImageInputs,
    QualityInputs,
    QualityReport,
    SignalInputs,
    TabularInputs,
)
from gan_hpc.quality_names import (
    BASELINE_MARGINALS,
    BASELINE_REAL,
    HEADLINE_METRICS,
    METRIC_MODES,
    metric_mode,
)

logger = logging.getLogger(__name__)

QualityScorer = Callable[[QualityInputs, QualityConfig], QualityReport]

QUALITY_METRICS: dict[str, QualityScorer] = {
    "tabular": tabular_quality,
    "image": image_quality,
    "signal": signal_quality,
}


def evaluate_quality(kind: str, inputs: QualityInputs, *, config: QualityConfig) -> QualityReport:
    """Score generated data of one data kind against held-out real data.

    Args:
        kind: ``tabular``, ``image`` or ``signal`` (a key of :data:`QUALITY_METRICS`).
        inputs: the matching :class:`TabularInputs`, :class:`ImageInputs` or
            :class:`SignalInputs`, in data units.
        config: sample sizes, seed and thresholds.

    Returns:
        The metrics with the sample sizes they were computed on and any caveats.

    Raises:
        SpecError: unknown ``kind``.
        DataError: inputs of another kind, or arrays/tables that do not fit together.

    """
    scorer = QUALITY_METRICS.get(kind)
    if scorer is None:
        close = difflib.get_close_matches(kind, list(QUALITY_METRICS), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(QUALITY_METRICS)}"
        raise SpecError(f"quality: unknown data kind '{kind}' ({hint})")
    if config.num_threads is None:
        report = scorer(inputs, config)
    else:
        # OpenMP threads spinning beside a trial's torch threads can slow scoring tenfold.
        threads = torch.get_num_threads()
        torch.set_num_threads(config.num_threads)
        try:
            with threadpool_limits(limits=config.num_threads):
                report = scorer(inputs, config)
        finally:
            torch.set_num_threads(threads)
    logger.info("%s quality on %s: %s", kind, report.sample_sizes, report.metrics)
    return report


__all__ = [
    "BASELINE_MARGINALS",
    "BASELINE_REAL",
    "COSINE_FOOLED",
    "COSINE_NOT_FOOLED",
    "COSINE_REAL",
    "HEADLINE_METRICS",
    "IMG_CLASSIFIER_ACCURACY",
    "IMG_CLASS_COVERAGE",
    "IMG_CLASS_TV",
    "IMG_CONDITIONAL_ACCURACY",
    "IMG_FD",
    "IMG_PRECISION",
    "IMG_RECALL",
    "METRIC_MODES",
    "QUALITY_METRICS",
    "SIG_DETECTION_AUC",
    "SIG_DETECTION_SCORE",
    "SIG_RESONANCE_ERROR",
    "SIG_SPECTRAL_ERROR",
    "SIG_SPECTRAL_ERROR_UNCONDITIONAL",
    "TAB_COLUMN_PREFIX",
    "TAB_COLUMN_SIMILARITY",
    "TAB_DCR_HOLDOUT_MEDIAN",
    "TAB_DCR_MEDIAN",
    "TAB_DCR_RATIO",
    "TAB_DETECTION_AUC",
    "TAB_DETECTION_SCORE",
    "TAB_EXACT_COPY_RATE",
    "TAB_EXACT_COPY_RATE_HOLDOUT",
    "TAB_ML_EFFICACY_RATIO",
    "TAB_PRIVACY_OK",
    "TAB_TABULAR_SCORE",
    "TAB_TREND_SIMILARITY",
    "TAB_TRTR",
    "TAB_TSTR",
    "ImageInputs",
    "QualityConfig",
    "QualityInputs",
    "QualityReport",
    "QualityScorer",
    "SignalInputs",
    "TableEncoder",
    "TabularInputs",
    "cosine_distance_report",
    "cosine_report_from_frames",
    "encode_for_cosine",
    "evaluate_quality",
    "fit_table_encoder",
    "independent_marginals",
    "metric_mode",
    "split_holdout",
    "tabular_baselines",
]
