"""One GAN update: the networks with their optimisers, the two steps, the loss window.

Pure training mechanics shared by :func:`gan_hpc.trial.train.train_trial`; no I/O, no side effects
beyond the :class:`Gan` passed in.
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
from gan_hpc.config import LossConfig, ModelConfig, OptimConfig, OptimizerConfig, TrainConfig
from gan_hpc.data.types import DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.trial.checkpoint import TrainState
from gan_hpc.trial.ema import ExponentialMovingAverage
from gan_hpc.trial.latents import sample_condition, sample_latent
from gan_hpc.trial.losses import LossPair, clip_weights, get_loss, gradient_penalty
from gan_hpc.trial.models import build_models, unwrap_model


@dataclass
class Gan:
    """What the GAN updates change: both networks, each with its optimiser, and the EMA copy.

    Also the loss pair and the autocast context they train with, fixed for a trial. Under
    DDP, :meth:`wrap_ddp` replaces the networks with their wrappers; the state dicts are
    always the unwrapped networks'.
    """

    generator: nn.Module
    discriminator: nn.Module
    optimizer_generator: torch.optim.Optimizer
    optimizer_discriminator: torch.optim.Optimizer
    loss_pair: LossPair
    autocast: Any
    ema: ExponentialMovingAverage | None = None

    @property
    def evaluated_generator(self) -> nn.Module:
        """The generator that evaluations and exports use: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else unwrap_model(self.generator)

    def wrap_ddp(self, device: torch.device) -> None:
        """Put each network in its own DistributedDataParallel wrapper."""
        device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
        self.generator = DistributedDataParallel(self.generator, device_ids=device_ids)
        self.discriminator = DistributedDataParallel(self.discriminator, device_ids=device_ids)

    def state_dicts(self) -> dict[str, Any]:
        """The networks', EMA's and optimisers' state, keyed as :class:`TrainState` names them."""
        return {
            "generator": unwrap_model(self.generator).state_dict(),
            "discriminator": unwrap_model(self.discriminator).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer_generator": self.optimizer_generator.state_dict(),
            "optimizer_discriminator": self.optimizer_discriminator.state_dict(),
        }

    def load_state_dicts(self, state: TrainState) -> None:
        """Inverse of :meth:`state_dicts` (an older checkpoint without an EMA keeps the copy)."""
        unwrap_model(self.generator).load_state_dict(state.generator)
        unwrap_model(self.discriminator).load_state_dict(state.discriminator)
        self.optimizer_generator.load_state_dict(state.optimizer_generator)
        self.optimizer_discriminator.load_state_dict(state.optimizer_discriminator)
        if self.ema is not None and state.ema is not None:
            self.ema.load_state_dict(state.ema)

    def grad_norms(self) -> dict[str, float]:
        """L2 norms of both networks' gradients from their last update."""
        return {
            names.D_GRAD_NORM: grad_norm(self.discriminator),
            names.G_GRAD_NORM: grad_norm(self.generator),
        }


def build_gan(
    schema: DataSchema,
    *,
    model: ModelConfig,
    optim: OptimConfig,
    loss: LossConfig,
    train: TrainConfig,
    device: torch.device,
) -> Gan:
    """The networks for ``schema`` on ``device`` (weights from torch's current seed)."""
    generator, discriminator = build_models(model, schema)
    generator.to(device)
    discriminator.to(device)
    return Gan(
        generator=generator,
        discriminator=discriminator,
        optimizer_generator=build_optimizer(generator.parameters(), optim.generator),
        optimizer_discriminator=build_optimizer(discriminator.parameters(), optim.discriminator),
        loss_pair=get_loss(loss.name),
        autocast=autocast_for(train, device),
        ema=ExponentialMovingAverage(model=generator, decay=model.ema_decay)
        if model.use_ema
        else None,
    )


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
    gan: Gan,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    *,
    loss: LossConfig,
    model: ModelConfig,
    train: TrainConfig,
) -> torch.Tensor:
    """One discriminator update on a real batch and as many fresh fakes; returns the loss."""
    generator, discriminator, optimizer = (
        gan.generator,
        gan.discriminator,
        gan.optimizer_discriminator,
    )
    loss_pair, autocast = gan.loss_pair, gan.autocast
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
    gan: Gan,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    *,
    loss: LossConfig,
    model: ModelConfig,
    train: TrainConfig,
    schema: DataSchema,
) -> torch.Tensor:
    """One generator update against the current discriminator; returns the loss.

    Fakes are drawn at fresh conditions from ``schema``, as many as ``real_x`` has rows. With
    ``loss.reconstruction_weight`` the generator draws at the real batch's conditions
    (``real_cond``) instead and also pays the weighted L1 distance to ``real_x`` (paired data).
    The EMA copy, if any, then moves toward the updated weights.
    """
    generator, discriminator, optimizer = gan.generator, gan.discriminator, gan.optimizer_generator
    loss_pair, autocast = gan.loss_pair, gan.autocast
    batch, device = len(real_x), real_x.device
    optimizer.zero_grad(set_to_none=True)
    z = sample_latent(batch, model.latent_dim, model.latent_distribution, None, device)
    is_paired = loss.reconstruction_weight > 0
    cond = real_cond if is_paired else sample_condition(schema, batch, None, device)
    classes = schema.condition
    num_classes = classes.dim if classes is not None and classes.kind == "class" else 0
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
                if loss.marginal_weight > 0:
                    gap = marginal_gap(
                        fake_x.float(), cond, real_x.float(), real_cond, num_classes=num_classes
                    )
                    g_loss = g_loss + loss.marginal_weight * gap
            g_loss.backward()
    finally:
        discriminator.requires_grad_(True)
    if train.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(generator.parameters(), train.max_grad_norm)
    optimizer.step()
    if gan.ema is not None:
        gan.ema.update(generator)
    return g_loss.detach()


def marginal_gap(
    fake_x: torch.Tensor,
    fake_cond: torch.Tensor | None,
    real_x: torch.Tensor,
    real_cond: torch.Tensor | None,
    *,
    num_classes: int,
) -> torch.Tensor:
    """Squared distance between the fake and real batches' feature means, mean over classes.

    With class conditions (``num_classes`` of them; 0: none) each class present in both
    batches is compared with itself; without, the whole batches. A one-hot block's mean is its
    column's category shares, so the term pulls each column's (class-conditional) marginal
    toward the data's. The class count comes from the schema: reading it off the batches
    would wait for an accelerator at every step.
    """
    if fake_cond is None or real_cond is None or num_classes == 0:
        return (fake_x.mean(0) - real_x.mean(0)).square().sum()

    def class_means(x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        onehot = nn.functional.one_hot(cond, num_classes).to(x.dtype)
        counts = onehot.sum(0)
        return (onehot.T @ x) / counts.clamp(min=1).unsqueeze(1), counts > 0

    fake_means, fake_seen = class_means(fake_x, fake_cond)
    real_means, real_seen = class_means(real_x, real_cond)
    both = fake_seen & real_seen
    return (fake_means - real_means)[both].square().sum(1).mean()


def check_marginal(loss: LossConfig, schema: DataSchema) -> None:
    """Raise SpecError when ``loss.marginal_weight`` is set for data that is not a table."""
    if loss.marginal_weight > 0 and schema.kind != "tabular":
        raise SpecError(
            f"loss.marginal_weight: {loss.marginal_weight} matches the columns of a table; "
            f"set it to 0 for {schema.kind} data"
        )


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


def lr_factor(train: TrainConfig, step: int) -> float:
    """The learning rates' multiplier for the update after ``step`` (``train.lr_decay_start``)."""
    if train.lr_decay_start is None:
        return 1.0
    start = train.lr_decay_start * train.num_steps
    if step <= start:
        return 1.0
    return max(0.0, (train.num_steps - step) / (train.num_steps - start))


def schedule_learning_rates(gan: Gan, optim: OptimConfig, train: TrainConfig, step: int) -> None:
    """Set both optimisers' learning rates for the update after ``step`` (none: constant)."""
    if train.lr_decay_start is None:
        return
    factor = lr_factor(train, step)
    for optimizer, network in (
        (gan.optimizer_generator, optim.generator),
        (gan.optimizer_discriminator, optim.discriminator),
    ):
        for group in optimizer.param_groups:
            group["lr"] = network.lr * factor


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
