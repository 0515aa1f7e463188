"""The convergence metrics of one evaluation, computed on held-out data and fresh fakes (torch).

The names and the gate live in :mod:`gan_hpc.convergence`, which imports no torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gan_hpc.config import ModelConfig
from gan_hpc.convergence import (
    CONDITIONAL_RMSE,
    D_ACC_BALANCED,
    D_ACC_HELDOUT,
    D_FAKE_MEAN,
    D_LOSS_GAP,
    D_LOSS_HELDOUT,
    D_REAL_MEAN,
    DIVERSITY_RATIO,
    FOOLING_RATE,
    SLICED_WASSERSTEIN,
)
from gan_hpc.data.types import DataSchema
from gan_hpc.trial.latents import sample_condition, sample_latent
from gan_hpc.trial.losses import LossPair

DIVERSITY_SAMPLES = 256  # samples of each side whose pairwise distances are compared
NUM_PROJECTIONS = 64


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
