"""Guards: training diagnostics that stop or flag a trial that has gone wrong.

Checked at every evaluation after ``GuardConfig.warmup_steps`` on the all-reduced metrics; a
symptom must last ``GuardConfig.patience_evals`` evaluations in a row before its guard fires:

- ``d_loss_collapse``: the discriminator's training loss is ~0: it wins outright and the
  generator gets no useful gradient (only for losses with an equilibrium value; a Wasserstein
  critic's loss has no floor).
- ``exploding_gradients``: either network's gradient norm is above the limit.
- ``mode_collapse``: fresh fakes spread far less than held-out real data
  (:data:`gan_hpc.convergence.DIVERSITY_RATIO`).

A non-finite loss is not a guard: the trainer always ends such a trial as ``diverged``.
Guard state lives in the checkpoint, so a resumed trial continues its streaks exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gan_hpc import convergence as names
from gan_hpc.config import GuardConfig

D_LOSS_COLLAPSE = "d_loss_collapse"
EXPLODING_GRADIENTS = "exploding_gradients"
MODE_COLLAPSE = "mode_collapse"

Symptom = Callable[[Mapping[str, float], GuardConfig, bool], str | None]


def _d_loss_collapse(
    metrics: Mapping[str, float], config: GuardConfig, has_floor: bool
) -> str | None:
    """D's training loss below the collapse level (losses with an equilibrium only)."""
    d_loss = metrics.get(names.D_LOSS, math.nan)
    if has_floor and d_loss < config.d_loss_collapse_below:
        return f"d_loss {d_loss:.3g} < {config.d_loss_collapse_below:g}"
    return None


def _exploding_gradients(
    metrics: Mapping[str, float], config: GuardConfig, has_floor: bool
) -> str | None:
    """Either network's gradient norm above the limit."""
    for key in (names.D_GRAD_NORM, names.G_GRAD_NORM):
        norm = metrics.get(key, 0.0)
        if norm > config.max_grad_norm:
            return f"{key} {norm:.3g} > {config.max_grad_norm:g}"
    return None


def _mode_collapse(
    metrics: Mapping[str, float], config: GuardConfig, has_floor: bool
) -> str | None:
    """Fakes' pairwise spread a small fraction of the real data's."""
    ratio = metrics.get(names.DIVERSITY_RATIO, math.nan)
    if ratio < config.min_diversity_ratio:
        return f"{names.DIVERSITY_RATIO} {ratio:.3g} < {config.min_diversity_ratio:g}"
    return None


SYMPTOMS: dict[str, Symptom] = {
    D_LOSS_COLLAPSE: _d_loss_collapse,
    EXPLODING_GRADIENTS: _exploding_gradients,
    MODE_COLLAPSE: _mode_collapse,
}


@dataclass
class GuardState:
    """Streaks of consecutive evaluations with each symptom, and the guards that fired.

    ``fired`` holds one ``{"guard", "step", "detail"}`` entry per guard, the first time it
    fired; it goes into ``result.json`` as the trial's ``flags``.
    """

    streaks: dict[str, int] = field(default_factory=dict)
    fired: list[dict[str, Any]] = field(default_factory=list)

    def update(
        self, metrics: Mapping[str, float], step: int, config: GuardConfig, *, has_floor: bool
    ) -> list[dict[str, Any]]:
        """Check one evaluation's metrics; return the guards that fire at this step.

        Args:
            metrics: the evaluation's all-reduced metrics.
            step: the evaluation's step.
            config: thresholds and patience.
            has_floor: the loss has an equilibrium value (D-loss collapse applies).

        """
        if step <= config.warmup_steps:
            return []
        already = {entry["guard"] for entry in self.fired}
        newly = []
        for guard, symptom in SYMPTOMS.items():
            detail = symptom(metrics, config, has_floor)
            self.streaks[guard] = self.streaks.get(guard, 0) + 1 if detail else 0
            if detail and self.streaks[guard] >= config.patience_evals and guard not in already:
                entry = {
                    "guard": guard,
                    "step": step,
                    "detail": f"{detail} for {self.streaks[guard]} evaluations",
                }
                self.fired.append(entry)
                newly.append(entry)
        return newly

    def to_dict(self) -> dict[str, Any]:
        """Plain containers, for the checkpoint."""
        return {"streaks": dict(self.streaks), "fired": [dict(e) for e in self.fired]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GuardState:
        """Inverse of :meth:`to_dict`; None (an older checkpoint) starts afresh."""
        if not data:
            return cls()
        return cls(
            streaks={str(k): int(v) for k, v in data.get("streaks", {}).items()},
            fired=[dict(e) for e in data.get("fired", [])],
        )
