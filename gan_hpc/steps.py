"""One GAN update: the discriminator and generator steps, their optimisers, the loss window.

Pure training mechanics shared by :func:`gan_hpc.train.train_trial`; no I/O, no side effects
beyond the models and optimisers passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_hpc import convergence as names
from gan_hpc.config import LossConfig, ModelConfig, OptimizerConfig, TrainConfig
from gan_hpc.data.types import DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.latents import sample_condition, sample_latent
from gan_hpc.losses import LossPair, clip_weights, gradient_penalty
from gan_hpc.models import unwrap_model


@dataclass
class LossWindow:
    """Training losses summed since the last evaluation (kept on device: no sync per step)."""

    d_loss: torch.Tensor | None = None
    g_loss: torch.Tensor | None = None
    num_steps: int = 0
    started_at: float = field(default_factory=time.perf_counter)

    def add(self, d_loss: torch.Tensor, g_loss: torch.Tensor) -> None:
        """Accumulate one step's losses."""
        self.d_loss = d_loss.float() if self.d_loss is None else self.d_loss + d_loss.float()
        self.g_loss = g_loss.float() if self.g_loss is None else self.g_loss + g_loss.float()
        self.num_steps += 1

    def means(self) -> dict[str, float]:
        """Mean losses over the window."""
        count = max(self.num_steps, 1)
        return {
            names.D_LOSS: float(self.d_loss if self.d_loss is not None else 0.0) / count,
            names.G_LOSS: float(self.g_loss if self.g_loss is not None else 0.0) / count,
        }


def discriminator_step(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_pair: LossPair,
    loss: LossConfig,
    model: ModelConfig,
    train: TrainConfig,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    autocast: Any,
) -> torch.Tensor:
    """One discriminator update on a real batch and as many fresh fakes; returns the loss."""
    batch = len(real_x)
    # fakes carry the real batch's condition, so D compares like with like
    with torch.no_grad(), autocast:
        z = sample_latent(batch, model.latent_dim, model.latent_distribution, None, real_x.device)
        fake_x = generator(z, real_cond)
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        real_scores = discriminator(real_x, real_cond).float()
        fake_scores = discriminator(fake_x.detach(), real_cond).float()
    d_loss = loss_pair.d_loss(real_scores, fake_scores)
    if loss_pair.uses_gradient_penalty:
        d_loss = d_loss + loss.gp_lambda * gradient_penalty(
            unwrap_model(discriminator), real_x, fake_x.detach().to(real_x.dtype), real_cond
        )
    d_loss.backward()
    if train.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(discriminator.parameters(), train.max_grad_norm)
    optimizer.step()
    if loss_pair.uses_weight_clipping:
        clip_weights(discriminator, loss.clip_value)
    return d_loss.detach()


def generator_step(
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_pair: LossPair,
    loss: LossConfig,
    model: ModelConfig,
    train: TrainConfig,
    schema: DataSchema,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    autocast: Any,
) -> torch.Tensor:
    """One generator update against the current discriminator; returns the loss.

    Fakes are drawn at fresh conditions from ``schema``, as many as ``real_x`` has rows. With
    ``loss.reconstruction_weight`` the generator draws at the real batch's conditions
    (``real_cond``) instead and also pays the weighted L1 distance to ``real_x`` (paired data).
    """
    batch, device = len(real_x), real_x.device
    optimizer.zero_grad(set_to_none=True)
    z = sample_latent(batch, model.latent_dim, model.latent_distribution, None, device)
    is_paired = loss.reconstruction_weight > 0
    cond = real_cond if is_paired else sample_condition(schema, batch, None, device)
    # D is frozen for this backward (its gradients would be thrown away) and, under DDP, kept out
    # of the all-reduce; its gradients from the D step stay intact for the grad-norm metric.
    no_sync = (
        discriminator.no_sync()
        if isinstance(discriminator, DistributedDataParallel)
        else nullcontext()
    )
    discriminator.requires_grad_(False)
    try:
        with no_sync:
            with autocast:
                fake_x = generator(z, cond)
                g_loss = loss_pair.g_loss(discriminator(fake_x, cond).float())
                if is_paired:
                    distance = (fake_x.float() - real_x.float()).abs().mean()
                    g_loss = g_loss + loss.reconstruction_weight * distance
            g_loss.backward()
    finally:
        discriminator.requires_grad_(True)
    if train.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(generator.parameters(), train.max_grad_norm)
    optimizer.step()
    return g_loss.detach()


def check_reconstruction(loss: LossConfig, schema: DataSchema) -> None:
    """Raise SpecError when ``loss.reconstruction_weight`` is set for data that is not paired.

    Only a continuous condition (one real sample per condition, e.g. FRF coordinates) pairs a
    generated sample with the real one it should match; against a class or no condition the
    L1 term would pull every sample toward the average of its class.
    """
    condition = schema.condition
    if loss.reconstruction_weight > 0 and (condition is None or condition.kind != "continuous"):
        raise SpecError(
            f"loss.reconstruction_weight: {loss.reconstruction_weight} needs paired data "
            "(a continuous condition such as FRF coordinates); set it to 0 for this data"
        )


def build_optimizer(
    params: Iterator[nn.Parameter], config: OptimizerConfig
) -> torch.optim.Optimizer:
    """The optimiser a config names."""
    factories: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "adam": lambda: torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        ),
        "sgd": lambda: torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        ),
        "rmsprop": lambda: torch.optim.RMSprop(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        ),
    }
    return factories[config.name]()


def autocast_for(train: TrainConfig, device: torch.device) -> Any:
    """bf16 autocast on GPU when asked for; a no-op context otherwise."""
    if train.use_bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()


def grad_norm(module: nn.Module) -> float:
    """L2 norm of the module's current gradients (those of the last update)."""
    norms = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
