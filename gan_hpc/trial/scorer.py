"""How a trainer scores held-out quality: the interface it is handed, and the default scorer.

:func:`gan_hpc.trial.train.train_trial` takes a :class:`TrialScorer` instead of importing the
scorers itself; :data:`HELD_OUT` is the one :mod:`gan_hpc.bundle.scoring` implements (imported on
first use: scikit-learn and scipy would add a second to every rank's start). Tests pass their
own to see when and with what the trainer scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from gan_hpc.config import TrialConfig
from gan_hpc.data.datasets import PreparedData
from gan_hpc.quality_names import TAB_COLUMN_PREFIX

Records = Mapping[str, Mapping[str, Any] | None]


class TrialScorer(Protocol):
    """Held-out quality a trainer asks for (on the main rank only)."""

    def at_evaluation(
        self, generator: nn.Module, data: PreparedData, config: TrialConfig, device: torch.device
    ) -> dict[str, float]:
        """Headline quality of the evaluated generator on the validation split."""
        ...

    def at_end(
        self,
        trial_path: Path,
        records: Records,
        data: PreparedData,
        config: TrialConfig,
        device: torch.device,
    ) -> dict[str, dict[str, Any] | None]:
        """The ``best`` and ``last`` records with their checkpoints' quality merged in."""
        ...


class HeldOutScorer:
    """The scorers of :mod:`gan_hpc.bundle.scoring` (tabular, image and signal quality metrics)."""

    def at_evaluation(
        self, generator: nn.Module, data: PreparedData, config: TrialConfig, device: torch.device
    ) -> dict[str, float]:
        """Finite headline figures on the validation split, without per-column similarities.

        Never the test split the final scores use, so picking a checkpoint by quality does not
        peek at the test data; per-column similarities are left to the end-of-trial scores.
        """
        from gan_hpc.bundle.scoring import score_generator

        report = score_generator(generator, data, config, device=device, holdout="val")
        return {
            key: value
            for key, value in report.metrics.items()
            if not key.startswith(TAB_COLUMN_PREFIX) and math.isfinite(value)
        }

    def at_end(
        self,
        trial_path: Path,
        records: Records,
        data: PreparedData,
        config: TrialConfig,
        device: torch.device,
    ) -> dict[str, dict[str, Any] | None]:
        """:func:`gan_hpc.bundle.scoring.score_trial_records` on the test split."""
        from gan_hpc.bundle.scoring import score_trial_records

        return score_trial_records(trial_path, records, data, config, device=device)


HELD_OUT: TrialScorer = HeldOutScorer()
