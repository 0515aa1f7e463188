"""Latent codes and conditions to feed a generator: what a trainer, evaluator or sampler draws."""

from __future__ import annotations

import torch
from torch import Tensor

from gan_hpc.data.types import DataSchema
from gan_hpc.errors import SpecError

__all__ = ["sample_condition", "sample_latent"]


def sample_latent(
    batch: int,
    latent_dim: int,
    distribution: str,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Latent codes ``[batch, latent_dim]``: standard normal, or uniform in [-1, 1]."""
    if distribution == "normal":
        return torch.randn(batch, latent_dim, generator=generator, device=device)
    if distribution == "uniform":
        return torch.rand(batch, latent_dim, generator=generator, device=device) * 2 - 1
    raise SpecError(f"model.latent_distribution: unknown {distribution!r} (valid: normal, uniform)")


def sample_condition(
    schema: DataSchema,
    batch: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor | None:
    """Conditions for ``batch`` samples, or None for unconditional data.

    Class labels follow ``schema.condition.frequencies`` (uniform when empty); continuous
    conditions are uniform in ``[-1, 1]^dim``.
    """
    condition = schema.condition
    if condition is None:
        return None
    if condition.kind == "continuous":
        return torch.rand(batch, condition.dim, generator=generator, device=device) * 2 - 1
    # weights on ``device`` so a device-side ``generator`` (as torch.rand needs) works here too
    weights = torch.tensor(
        condition.frequencies or [1.0] * condition.dim, dtype=torch.float64, device=device
    )
    return torch.multinomial(weights, batch, replacement=True, generator=generator)
