"""The exponential moving average of a generator's weights, which evaluation and export use."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from gan_hpc.trial.models import unwrap_model

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    """An exponential moving average of a model's weights, for evaluation and export.

    ``ema.module`` is a deep copy of the (unwrapped) model kept in eval mode without gradients;
    :meth:`update` moves its parameters toward the live model's by ``1 - decay`` and copies its
    buffers (BatchNorm running statistics, spectral-norm vectors) as they are. The decay warms
    up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early evaluations see the
    trained weights rather than an average dominated by the random initialisation.

    Example:
        >>> ema = ExponentialMovingAverage(model=generator, decay=config.ema_decay)
        >>> ema.update(generator)  # after each generator step (DDP wrappers are unwrapped)
        >>> samples = ema.module(z)

    """

    def __init__(self, *, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(unwrap_model(model))
        self.module.eval().requires_grad_(False)
        for parameter in self.module.parameters():
            parameter.grad = None

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average ``model``'s current parameters in; copy its buffers."""
        live = unwrap_model(model)
        averaged: list[torch.Tensor] = list(self.module.parameters())
        current = [p.detach() for p in live.parameters()]
        if len(averaged) != len(current):
            raise ValueError("EMA: the live model's parameters do not match the averaged copy")
        # one fused kernel per device/dtype group instead of one launch per tensor
        decay = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        torch._foreach_lerp_(averaged, current, 1.0 - decay)
        for buffer, live_buffer in zip(self.module.buffers(), live.buffers(), strict=True):
            buffer.copy_(live_buffer)
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        """Return the averaged weights and the update count."""
        return {"module": self.module.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
