"""The seeds' convergence criteria, generalised: metric names and their computation.

Metric names are constants here so that metrics.jsonl, TensorBoard, Ray results, leaderboards and
exports use the same strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from gan_hpc.config import ConvergenceConfig, ModelConfig
from gan_hpc.data.types import DataSchema
from gan_hpc.losses import LossPair
from gan_hpc.models import sample_condition, sample_latent

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
DIVERSITY_SAMPLES = 256  # samples of each side whose pairwise distances are compared
# Mean 1-D Wasserstein distance between fresh fakes and held-out real samples (model space)
# over random unit projections: a cheap distance between the two distributions, computed at
# every evaluation, so it can pick the best checkpoint and steer the search (lower is better).
SLICED_WASSERSTEIN = "sliced_wasserstein"
NUM_PROJECTIONS = 64

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


@torch.no_grad()
def evaluate_convergence(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    loss: LossPair,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    num_fakes: int,
    model_config: ModelConfig,
    schema: DataSchema,
    rng: torch.Generator,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Convergence metrics of one rank's share of the held-out data and fresh fakes.

    The networks are evaluated in eval mode on their own RNG stream, so evaluating does not
    change the training trajectory (a resumed run stays bit-identical).

    Returns:
        D(x), D(G(z)) means, held-out and balanced D accuracy, fooling rate, held-out D loss and
        its distance from the loss's equilibrium value, the fakes' spread relative to the
        real samples' and their sliced Wasserstein distance; with continuous conditions also
        the RMSE of samples generated at the held-out conditions.

    """
    was_training = (generator.training, discriminator.training)
    generator.eval()
    discriminator.eval()
    try:
        real_scores = _scores(discriminator, real_x, real_cond, batch_size, device)
        fake_chunks, fake_samples = [], []
        for start in range(0, num_fakes, batch_size):
            count = min(batch_size, num_fakes - start)
            z = sample_latent(
                count, model_config.latent_dim, model_config.latent_distribution, rng, device
            )
            cond = sample_condition(schema, count, rng, device)
            fake_x = generator(z, cond)
            fake_samples.append(fake_x.float().flatten(1))
            fake_chunks.append(discriminator(fake_x, cond).float().flatten())
        fake_scores = torch.cat(fake_chunks)
        fakes = torch.cat(fake_samples)
        real_flat = real_x.to(device).float().flatten(1)
        spread = {
            **_diversity_ratio(fakes, real_flat),
            **_sliced_wasserstein(fakes, real_flat, rng),
        }
        conditional = _conditional_rmse(
            generator, real_x, real_cond, model_config, schema, rng, batch_size, device
        )
    finally:
        generator.train(was_training[0])
        discriminator.train(was_training[1])
    d_loss = float(loss.d_loss(real_scores, fake_scores))
    equilibrium = loss.equilibrium_d_loss
    threshold = loss.decision_threshold
    if threshold is None:  # a critic: calibrate between its real and fake score levels
        threshold = 0.5 * (real_scores.mean().item() + fake_scores.mean().item())
    real_is_real = (real_scores > threshold).float().mean().item()
    fake_is_real = (fake_scores > threshold).float().mean().item()
    return {
        D_REAL_MEAN: torch.sigmoid(real_scores).mean().item(),
        D_FAKE_MEAN: torch.sigmoid(fake_scores).mean().item(),
        D_ACC_HELDOUT: real_is_real,
        D_ACC_BALANCED: 0.5 * (real_is_real + 1.0 - fake_is_real),
        FOOLING_RATE: fake_is_real,
        D_LOSS_HELDOUT: d_loss,
        D_LOSS_GAP: abs(d_loss - equilibrium) if equilibrium is not None else abs(d_loss),
        **conditional,
        **spread,
    }


def _diversity_ratio(fakes: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Fakes' mean pairwise distance over the held-out real samples' (a mode-collapse alarm)."""
    count = min(DIVERSITY_SAMPLES, len(real), len(fakes))
    if count < 2:
        return {}
    real_spread = torch.pdist(real[:count]).mean().item()
    if real_spread == 0:
        return {}
    return {DIVERSITY_RATIO: torch.pdist(fakes[:count]).mean().item() / real_spread}


def _sliced_wasserstein(
    fakes: torch.Tensor, real: torch.Tensor, rng: torch.Generator
) -> dict[str, float]:
    """Mean over random unit directions of the 1-D Wasserstein distance of the projections.

    Both sides are cut to the same count, so the distance is the mean gap between sorted
    projections (the quantile coupling).
    """
    count = min(len(fakes), len(real))
    if count < 2:
        return {}
    directions = torch.randn(real.shape[1], NUM_PROJECTIONS, generator=rng, device=rng.device).to(
        real.device
    )
    directions = directions / directions.norm(dim=0, keepdim=True).clamp_min(1e-12)
    real_sorted = (real[:count] @ directions).sort(dim=0).values
    fake_sorted = (fakes[:count] @ directions).sort(dim=0).values
    return {SLICED_WASSERSTEIN: (real_sorted - fake_sorted).abs().mean().item()}


def _conditional_rmse(
    generator: nn.Module,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    model_config: ModelConfig,
    schema: DataSchema,
    rng: torch.Generator,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """RMSE between samples generated at held-out continuous conditions and the real ones."""
    if (
        real_cond is None
        or schema.condition is None
        or schema.condition.kind != "continuous"
        or not len(real_x)
    ):
        return {}
    total, count = 0.0, 0
    for start in range(0, len(real_x), batch_size):
        xb = real_x[start : start + batch_size].to(device)
        cb = real_cond[start : start + batch_size].to(device)
        z = sample_latent(
            len(xb), model_config.latent_dim, model_config.latent_distribution, rng, device
        )
        total += float((generator(z, cb).float() - xb.float()).pow(2).sum())
        count += xb.numel()
    return {CONDITIONAL_RMSE: math.sqrt(total / count)}


def _scores(
    discriminator: nn.Module,
    x: torch.Tensor,
    cond: torch.Tensor | None,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Discriminator scores of ``x`` in batches."""
    chunks = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        cb = cond[start : start + batch_size].to(device) if cond is not None else None
        chunks.append(discriminator(xb, cb).float().flatten())
    return torch.cat(chunks) if chunks else torch.zeros(0, device=device)
