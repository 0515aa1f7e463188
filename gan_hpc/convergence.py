"""The seeds' convergence criteria, generalised: metric names, the gate, the selection rule.

Metric names are constants here so that metrics.jsonl, TensorBoard, Ray results, leaderboards and
exports use the same strings, with the direction that is better in :data:`CONVERGENCE_MODES`
(held-out quality metrics: :mod:`gan_hpc.quality_names`; both: :func:`better_mode`). This module
imports no torch: the watchers, the spec validator and ``gan-hpc sweep status`` read these names,
and :mod:`gan_hpc.trial.evaluation` computes the metrics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gan_hpc.config import ConvergenceConfig, Mode, is_quality_metric
from gan_hpc.quality_names import metric_mode

STEP = "step"  # generator updates so far: the progress measure everywhere (ASHA included)
EPOCH = "epoch"
WALL_TIME_S = "wall_time_s"
SAMPLES_PER_S = "samples_per_s"

D_LOSS = "d_loss"  # training losses, averaged over the evaluation window and ranks
G_LOSS = "g_loss"
D_GRAD_NORM = "d_grad_norm"
G_GRAD_NORM = "g_grad_norm"

D_REAL_MEAN = "d_real_mean"  # mean D(x) (probability) on held-out real samples
D_FAKE_MEAN = "d_fake_mean"  # mean D(G(z)) on fresh fakes
# D accuracy on held-out real samples, as the tabular seed measured it ("the discriminator
# performance on the validation set"). A balanced accuracy over real and the same number of
# fakes cannot exceed 0.80 while the fooling rate is above 0.40, so the seed's gate
# (D acc > 0.80 and fooling > 0.40) is only satisfiable with the real-only accuracy; the
# balanced figure is reported beside it.
D_ACC_HELDOUT = "d_acc_heldout"
D_ACC_BALANCED = "d_acc_balanced"  # (real classified real + fakes classified fake) / 2
FOOLING_RATE = "fooling_rate"  # share of generated samples D classifies as real
D_LOSS_HELDOUT = "d_loss_heldout"  # D loss on held-out real + fakes
D_LOSS_GAP = "d_loss_gap"  # |D loss - its equilibrium value| (2 ln 2 for BCE)
CONVERGED = "converged"  # 1.0 when the gate holds at this evaluation
# Continuous conditions (FRF coordinates): RMSE, in transformed units, between G(z, c) and the
# held-out real sample at the same condition c. A cheap quality signal for ranking.
CONDITIONAL_RMSE = "conditional_rmse"
# Mean pairwise distance between fresh fakes over that between held-out real samples (both in
# model space): near 1 when G spreads like the data, near 0 when it collapses onto few modes.
DIVERSITY_RATIO = "diversity_ratio"
# Mean 1-D Wasserstein distance between fresh fakes and held-out real samples (model space)
# over random unit projections: a cheap distance between the two distributions, computed at
# every evaluation, so it can pick the best checkpoint and steer the search (lower is better).
SLICED_WASSERSTEIN = "sliced_wasserstein"

ALL_TRAINING = (D_LOSS, G_LOSS, D_GRAD_NORM, G_GRAD_NORM)
ALL_CONVERGENCE = (
    D_REAL_MEAN,
    D_FAKE_MEAN,
    D_ACC_HELDOUT,
    D_ACC_BALANCED,
    FOOLING_RATE,
    D_LOSS_HELDOUT,
    D_LOSS_GAP,
    CONVERGED,
    CONDITIONAL_RMSE,
    DIVERSITY_RATIO,
    SLICED_WASSERSTEIN,
)

# The better direction of the metrics that have one. The others have none to check: the losses,
# D(x), D's accuracies (the gate wants D accurate *and* fooled) and the diversity ratio (1 best).
CONVERGENCE_MODES: dict[str, Mode] = {
    D_LOSS_GAP: "min",
    FOOLING_RATE: "max",
    D_FAKE_MEAN: "max",
    CONVERGED: "max",
    CONDITIONAL_RMSE: "min",
    SLICED_WASSERSTEIN: "min",
    SAMPLES_PER_S: "max",
}


def better_mode(name: str) -> Mode | None:
    """Which way is better for any metric; None for a convergence metric without a direction.

    Raises:
        SpecError: an unknown quality metric (the message lists the valid names).

    """
    if is_quality_metric(name):
        return metric_mode(name)
    return CONVERGENCE_MODES.get(name)


def gate_holds(metrics: Mapping[str, float], config: ConvergenceConfig) -> bool:
    """The seed's gate: D is accurate on held-out real data and G fools it often enough."""
    d_acc = metrics.get(D_ACC_HELDOUT)
    fooling = metrics.get(FOOLING_RATE)
    if d_acc is None or fooling is None or math.isnan(d_acc) or math.isnan(fooling):
        return False
    return d_acc > config.d_acc_min and fooling > config.fooling_rate_min


def selection_key(metrics: Mapping[str, float], config: ConvergenceConfig) -> tuple[float, float]:
    """Sort key of an evaluation (larger is better) for picking the best checkpoint.

    The gate first (unless ``use_gate_first`` is off), then the selection metric
    (``checkpoint_score``, else ``score``) in its direction; NaN is worst.
    """
    name, mode = config.selection_metric
    score = metrics.get(name, math.nan)
    if score is None or math.isnan(float(score)):
        oriented = -math.inf
    else:
        oriented = float(score) if mode == "max" else -float(score)
    gate_first = config.use_gate_first and gate_holds(metrics, config)
    return (1.0 if gate_first else 0.0, oriented)
