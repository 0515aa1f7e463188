"""Names and directions of the held-out quality metrics (no scoring code, cheap to import).

Every quality metric is a ``quality/...`` constant here, so result.json, leaderboards, sweep
specs and exports use the same strings, with the direction that is better in
:data:`METRIC_MODES`. The spec validator and the leaderboard import this module without
loading the scorers (scikit-learn, scipy) that :mod:`gan_hpc.quality` needs.
"""

from __future__ import annotations

import difflib

from gan_hpc.config import Mode
from gan_hpc.errors import SpecError

# the reference rows every sweep's data gets (baselines.json), by name
BASELINE_REAL = "real_data"  # the ceiling of every data kind
BASELINE_MARGINALS = "independent_marginals"  # the tabular floor
BASELINE_MEAN_CURVE = "mean_curve"  # the signal floor
BASELINE_PIXELS = "independent_pixels"  # the image floor
FLOOR_BASELINES = (BASELINE_MARGINALS, BASELINE_MEAN_CURVE, BASELINE_PIXELS)

DETECTION_AUC = "quality/detection_auc"  # cross-validated ROC-AUC, real vs generated; 0.5 best
DETECTION_SCORE = "quality/detection_score"  # 1 - 2 |AUC - 0.5|, in [0, 1]; 1 best

# tables
TAB_COLUMN_SIMILARITY = "quality/column_similarity"
TAB_COLUMN_PREFIX = "quality/column/"  # + column name: that column's similarity
TAB_TREND_SIMILARITY = "quality/trend_similarity"
TAB_DETECTION_AUC = DETECTION_AUC
TAB_DETECTION_SCORE = DETECTION_SCORE
TAB_TSTR = "quality/ml_efficacy_tstr"  # macro F1 (classification) or R^2 (regression)
TAB_TRTR = "quality/ml_efficacy_trtr"
TAB_TSTR_ACCURACY = "quality/ml_efficacy_tstr_accuracy"
TAB_TRTR_ACCURACY = "quality/ml_efficacy_trtr_accuracy"
TAB_TSTR_AUC = "quality/ml_efficacy_tstr_auc"
TAB_TRTR_AUC = "quality/ml_efficacy_trtr_auc"
TAB_ML_EFFICACY_RATIO = "quality/ml_efficacy_ratio"  # TSTR / TRTR
TAB_EXACT_COPY_RATE = "quality/exact_copy_rate"
TAB_EXACT_COPY_RATE_HOLDOUT = "quality/exact_copy_rate_holdout"  # the same for real holdout rows
TAB_DCR_MEDIAN = "quality/dcr_median"  # synthetic -> closest training row
TAB_DCR_HOLDOUT_MEDIAN = "quality/dcr_holdout_median"  # holdout -> closest training row
TAB_DCR_RATIO = "quality/dcr_ratio"
TAB_PRIVACY_OK = "quality/privacy_ok"  # 1.0 / 0.0
TAB_TABULAR_SCORE = "quality/tabular_score"  # the headline (module docstring)

TABULAR_MODES: dict[str, Mode] = {
    TAB_COLUMN_SIMILARITY: "max",
    TAB_TREND_SIMILARITY: "max",
    TAB_DETECTION_AUC: "min",
    TAB_DETECTION_SCORE: "max",
    TAB_TSTR: "max",
    TAB_TRTR: "max",
    TAB_TSTR_ACCURACY: "max",
    TAB_TRTR_ACCURACY: "max",
    TAB_TSTR_AUC: "max",
    TAB_TRTR_AUC: "max",
    TAB_ML_EFFICACY_RATIO: "max",
    TAB_EXACT_COPY_RATE: "min",
    TAB_EXACT_COPY_RATE_HOLDOUT: "min",
    TAB_DCR_MEDIAN: "max",
    TAB_DCR_HOLDOUT_MEDIAN: "max",
    TAB_DCR_RATIO: "max",
    TAB_PRIVACY_OK: "max",
    TAB_TABULAR_SCORE: "max",
}

# images
IMG_FD = "quality/frechet_distance"
IMG_PRECISION = "quality/precision"
IMG_RECALL = "quality/recall"
IMG_CLASS_COVERAGE = "quality/class_coverage"
IMG_CLASS_TV = "quality/class_tv"
IMG_CONDITIONAL_ACCURACY = "quality/conditional_accuracy"
IMG_CLASSIFIER_ACCURACY = "quality/feature_classifier_accuracy"

IMAGE_MODES: dict[str, Mode] = {
    IMG_FD: "min",
    IMG_PRECISION: "max",
    IMG_RECALL: "max",
    IMG_CLASS_COVERAGE: "max",
    IMG_CLASS_TV: "min",
    IMG_CONDITIONAL_ACCURACY: "max",
    IMG_CLASSIFIER_ACCURACY: "max",
}

# signals
SIG_SPECTRAL_ERROR = "quality/log_spectral_error"  # dB
SIG_SPECTRAL_ERROR_UNCONDITIONAL = "quality/log_spectral_error_unconditional"  # dB, reference
SIG_RESONANCE_ERROR = "quality/resonance_error"  # mean relative frequency error, [0, 1]
SIG_DETECTION_AUC = DETECTION_AUC
SIG_DETECTION_SCORE = DETECTION_SCORE

SIGNAL_MODES: dict[str, Mode] = {
    SIG_SPECTRAL_ERROR: "min",
    SIG_SPECTRAL_ERROR_UNCONDITIONAL: "min",
    SIG_RESONANCE_ERROR: "min",
    SIG_DETECTION_AUC: "min",
    SIG_DETECTION_SCORE: "max",
}

# the tabular seed's cosine-distance analysis
COSINE_FOOLED = "quality/cosine_fooled"  # mean cosine distance, fooling samples -> real
COSINE_NOT_FOOLED = "quality/cosine_not_fooled"  # the same for samples D caught
COSINE_REAL = "quality/cosine_real"  # the same for real rows outside the reference set
COSINE_NUM_FOOLED = "quality/cosine_num_fooled"
COSINE_NUM_NOT_FOOLED = "quality/cosine_num_not_fooled"

COSINE_MODES: dict[str, Mode] = {
    COSINE_FOOLED: "min",
    COSINE_NOT_FOOLED: "min",
    COSINE_REAL: "min",
    COSINE_NUM_FOOLED: "max",
    COSINE_NUM_NOT_FOOLED: "min",
}

# The metric each kind ranks by when the sweep names none.
HEADLINE_METRICS: dict[str, str] = {
    "tabular": TAB_TABULAR_SCORE,
    "image": IMG_FD,
    "signal": SIG_SPECTRAL_ERROR,
}

METRIC_MODES: dict[str, Mode] = {
    **TABULAR_MODES,
    **IMAGE_MODES,
    **SIGNAL_MODES,
    **COSINE_MODES,
}


def metric_mode(name: str) -> Mode:
    """Which way is better for a quality metric (per-column similarities are ``max``).

    Raises:
        SpecError: not a quality metric; the message lists the valid names.

    """
    if name in METRIC_MODES:
        return METRIC_MODES[name]
    if name.startswith(TAB_COLUMN_PREFIX):
        return "max"
    close = difflib.get_close_matches(name, list(METRIC_MODES), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(METRIC_MODES)})"
    raise SpecError(f"quality: unknown metric '{name}'{hint}")
