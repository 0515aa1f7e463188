"""Adversarial losses as plain functions of raw discriminator scores, and the WGAN penalties.

Every :class:`LossPair` takes raw scores (logits) from the discriminator. The discriminator
loss is always the SUM of a real term and a fake term (the seeds' ``errD_real + errD_fake``),
and ``equilibrium_d_loss`` is its value when the generator matches the data and the
discriminator is at its optimum, so ``|d_loss - equilibrium|`` measures distance from
equilibrium:

- ``bce``: ``BCE(sigmoid(real), 1) + BCE(sigmoid(fake), 0)`` (nn.BCELoss on probabilities
  clamped to [1e-7, 1 - 1e-7]); G: ``BCE(sigmoid(fake), 1)``; equilibrium 2 ln 2 (D = 1/2).
- ``bce_logits``: the same with BCEWithLogits; equilibrium 2 ln 2.
- ``hinge``: ``mean relu(1 - real) + mean relu(1 + fake)``; G: ``-mean fake``; equilibrium 2
  (scores at 0).
- ``lsgan``: ``mean (real - 1)^2 + mean fake^2``; G: ``mean (fake - 1)^2``; equilibrium 0.5:
  the optimal least-squares D is ``p_data / (p_data + p_g)`` = 1/2, hence 1/4 + 1/4.
- ``wasserstein``: critic ``mean fake - mean real``; G: ``-mean fake``; equilibrium 0; the
  trainer clips D's weights (:func:`clip_weights`).
- ``wgan_gp``: as ``wasserstein``; the trainer adds ``gp_lambda *`` :func:`gradient_penalty`
  instead of clipping.

Generator losses are non-saturating (``-log D(G(z))`` for the BCE pair).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_hpc.errors import SpecError

PROBABILITY_EPS = 1e-7  # bce clamps sigmoid outputs to [eps, 1 - eps]

__all__ = [
    "LOSSES",
    "LossPair",
    "clip_weights",
    "get_loss",
    "gradient_penalty",
]


@dataclass(frozen=True)
class LossPair:
    """A discriminator loss and its generator loss, both on raw discriminator scores.

    Attributes:
        d_loss: ``d_loss(real_scores, fake_scores)``, a scalar.
        g_loss: ``g_loss(fake_scores)``, a scalar.
        equilibrium_d_loss: ``d_loss`` at the game's equilibrium (see the module docstring).
        uses_weight_clipping: the trainer clips D's weights after each step (WGAN).
        uses_gradient_penalty: the trainer adds ``gp_lambda * gradient_penalty`` (WGAN-GP).
        decision_threshold: the score above which D calls a sample real (0 for logits and hinge
            scores, 0.5 for least squares); None for a Wasserstein critic, whose scores have no
            fixed meaning: the midpoint of its mean real and mean fake scores is used instead.

    """

    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    equilibrium_d_loss: float | None
    uses_weight_clipping: bool = False
    uses_gradient_penalty: bool = False
    decision_threshold: float | None = 0.0


def _bce(scores: Tensor, target: float) -> Tensor:
    """Return ``nn.BCELoss`` of ``sigmoid(scores)`` clamped to [eps, 1 - eps] against ``target``.

    Computed in float32 with autocast off: BCELoss on probabilities is banned under CUDA
    autocast (it is unsafe in half precision), and the seeds' loss is kept as it was.
    """
    with torch.autocast(device_type=scores.device.type, enabled=False):
        probability = torch.sigmoid(scores.float()).clamp(PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
        return F.binary_cross_entropy(probability, torch.full_like(probability, target))


def bce_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Return ``BCE(D(x), 1) + BCE(D(G(z)), 0)`` with ``D = sigmoid(scores)`` (nn.BCELoss)."""
    return _bce(real, 1.0) + _bce(fake, 0.0)


def bce_g_loss(fake: Tensor) -> Tensor:
    """Return the non-saturating ``BCE(D(G(z)), 1) = -mean log D(G(z))``."""
    return _bce(fake, 1.0)


def bce_logits_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Return ``BCEWithLogits(real, 1) + BCEWithLogits(fake, 0)``."""
    return F.binary_cross_entropy_with_logits(
        real, torch.ones_like(real)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))


def bce_logits_g_loss(fake: Tensor) -> Tensor:
    """Return the non-saturating ``BCEWithLogits(fake, 1)``."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Return ``mean relu(1 - real) + mean relu(1 + fake)``."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g_loss(fake: Tensor) -> Tensor:
    """Return ``-mean fake`` (the hinge generator loss, as in SNGAN/BigGAN)."""
    return -fake.mean()


def lsgan_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Return ``mean (real - 1)^2 + mean fake^2`` (least squares, targets 1 and 0)."""
    return (real - 1.0).pow(2).mean() + fake.pow(2).mean()


def lsgan_g_loss(fake: Tensor) -> Tensor:
    """Return ``mean (fake - 1)^2``."""
    return (fake - 1.0).pow(2).mean()


def wasserstein_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """Return the critic loss ``mean fake - mean real``."""
    return fake.mean() - real.mean()


def wasserstein_g_loss(fake: Tensor) -> Tensor:
    """Return ``-mean fake``."""
    return -fake.mean()


LOSSES: dict[str, LossPair] = {
    "bce": LossPair(bce_d_loss, bce_g_loss, 2.0 * math.log(2.0)),
    "bce_logits": LossPair(bce_logits_d_loss, bce_logits_g_loss, 2.0 * math.log(2.0)),
    "hinge": LossPair(hinge_d_loss, hinge_g_loss, 2.0),
    "lsgan": LossPair(lsgan_d_loss, lsgan_g_loss, 0.5, decision_threshold=0.5),
    "wasserstein": LossPair(
        wasserstein_d_loss,
        wasserstein_g_loss,
        0.0,
        uses_weight_clipping=True,
        decision_threshold=None,
    ),
    "wgan_gp": LossPair(
        wasserstein_d_loss,
        wasserstein_g_loss,
        0.0,
        uses_gradient_penalty=True,
        decision_threshold=None,
    ),
}


def get_loss(name: str) -> LossPair:
    """Return the loss pair called ``name``.

    Raises:
        SpecError: ``name`` is not a loss; the message lists the valid ones.

    """
    if name not in LOSSES:
        raise SpecError(f"loss.name: unknown loss {name!r} (valid: {', '.join(sorted(LOSSES))})")
    return LOSSES[name]


def gradient_penalty(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    cond: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Return the WGAN-GP penalty ``mean (||grad_x D(x_hat)||_2 - 1)^2`` (Gulrajani et al. 2017).

    ``x_hat`` mixes each real sample with its fake by a per-sample ``alpha ~ U[0, 1)``; both
    share ``cond`` (generate the fakes with the real samples' conditions). The graph is kept
    (``create_graph=True``) so the penalty trains D; a DDP-wrapped ``discriminator`` works
    since only the final backward touches the parameters' gradients.

    Args:
        discriminator: maps ``(x, cond)`` to raw scores ``[B]``.
        real: real samples ``[B, *sample_shape]``.
        fake: generated samples of the same shape (detached here).
        cond: the conditions of both, or None.
        generator: RNG for ``alpha`` (None: the global one).

    Returns:
        A scalar tensor.

    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, device=real.device).to(real.dtype)
    mixed = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    scores = discriminator(mixed, cond)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Clamp every parameter of ``module`` to ``[-clip_value, clip_value]`` (WGAN)."""
    for parameter in module.parameters():
        parameter.clamp_(-clip_value, clip_value)
