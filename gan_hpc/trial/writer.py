"""Rank 0's side effects of a trial, in one object: every file, TensorBoard event and report.

:func:`gan_hpc.trial.train.train_trial` calls a :class:`TrialWriter` on every rank at the named
points of a trial (start, data, resume, evaluation, message, finish); only the main rank's
writer acts, the others return at once. So the training loop has no rank branches, and each
file of the trial directory has one writer (see DESIGN.md, "One writer per file").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from torch import nn

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import TrialConfig
from gan_hpc.data.datasets import PreparedData
from gan_hpc.files import atomic_write_json
from gan_hpc.locks import TrialLock
from gan_hpc.trial.checkpoint import (
    BEST_NAME,
    TrainState,
    prune_step_checkpoints,
    save_checkpoint,
    step_checkpoint_name,
)
from gan_hpc.trial.hparams import write_trial_hparams
from gan_hpc.trial.latents import sample_latent
from gan_hpc.trial.visuals import log_sample_pictures
from gan_hpc.trial_dir import TRAIN_LOCK_FILE, TrialDir, TrialResult

logger = get_logger(__name__)

Report = Callable[[Mapping[str, float], Path | None], None]


def no_report(metrics: Mapping[str, float], checkpoint: Path | None) -> None:
    """The default ``report``: the trial directory already has everything."""


class TrialWriter:
    """Writes a trial's directory, TensorBoard events and reports; a no-op off the main rank.

    Use it as a context manager: on the main rank it holds the trial's lock (one trainer per
    trial: a run left over from a killed driver must exit before this one writes) and closes
    TensorBoard on the way out.

    Example:
        >>> with TrialWriter(trial, config, is_main=env.is_main, report=report) as writer:
        ...     writer.start()
        ...     writer.record_evaluation(state, metrics, is_best=True, generator=g, ...)

    """

    def __init__(
        self, trial: TrialDir, config: TrialConfig, *, is_main: bool, report: Report = no_report
    ) -> None:
        self.trial = trial
        self.config = config
        self.is_main = is_main
        self.report = report
        self._data: PreparedData | None = None
        self._tensorboard: Any = None
        self._exit_stack = ExitStack()

    def __enter__(self) -> TrialWriter:
        if self.is_main:
            self._exit_stack.enter_context(TrialLock(self.trial.path / TRAIN_LOCK_FILE))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        self._exit_stack.close()

    def start(self) -> None:
        """Write ``config.json`` and mark the trial running."""
        if not self.is_main:
            return
        self.trial.write_config(self.config)
        self.trial.update_status(state="running", message="")
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, rank 0 only

        self._tensorboard = SummaryWriter(log_dir=str(self.trial.tensorboard))

    def record_data(self, data: PreparedData) -> None:
        """Write ``data.json``: the fitted transform, the schema and the split sizes."""
        self._data = data
        if not self.is_main:
            return
        atomic_write_json(
            self.trial.data_path,
            {
                "transform": data.transform.to_dict(),
                "schema": data.schema.to_dict(),
                "source_hash": data.source_hash,
                "num_rows": {
                    "train": len(data.train),
                    "val": len(data.val),
                    "test": len(data.test),
                },
            },
        )

    def record_resume(self, step: int) -> None:
        """Count the resume in status.json, with the steps that will be trained a second time."""
        if not self.is_main:
            return
        recorded = [int(r.get(names.STEP, 0)) for r in self.trial.read_metrics()]
        repeated = max(max(recorded, default=0) - step, 0)
        self.trial.update_status(
            resumed_from_step=step, add={"resumes": 1, "steps_repeated": repeated}
        )

    def record_evaluation(
        self,
        state: TrainState,
        metrics: Mapping[str, float],
        *,
        is_best: bool,
        wall_time_s: float,
        generator: nn.Module,
        device: torch.device,
    ) -> None:
        """Checkpoint (and ``best.pt``), ``metrics.jsonl``, status, TensorBoard, then report."""
        if not self.is_main:
            return
        checkpoint = self.trial.checkpoints / step_checkpoint_name(state.step)
        save_checkpoint(checkpoint, state)
        if is_best:
            save_checkpoint(self.trial.checkpoints / BEST_NAME, state)
        prune_step_checkpoints(self.trial.checkpoints, self.config.train.keep_last_checkpoints)
        self.trial.append_metrics(
            step=state.step, epoch=state.epoch, wall_time_s=wall_time_s, metrics=metrics
        )
        self.trial.update_status(state="running", step=state.step)
        self._log_tensorboard(state.step, metrics, generator, device)
        self.report({names.STEP: float(state.step), **metrics}, checkpoint)

    def set_message(self, message: str) -> None:
        """Show what the trial is doing in status.json (e.g. scoring)."""
        if self.is_main:
            self.trial.update_status(message=message)

    def finish(
        self, *, state: str, step: int, flags: list[dict[str, Any]], result: TrialResult
    ) -> None:
        """Final status; for a trial that ended, ``result.json`` and the HParams summary."""
        if not self.is_main:
            return
        message = "; ".join(f"{f['guard']} at step {f['step']}" for f in flags)
        self.trial.update_status(
            state={"paused": "preempted"}.get(state, state), step=step, message=message
        )
        if state in ("finished", "diverged", "halted"):
            self.trial.write_result(result)
            write_trial_hparams(self.trial.path)  # TensorBoard's HParams view of the sweep

    def _log_tensorboard(
        self, step: int, metrics: Mapping[str, float], generator: nn.Module, device: torch.device
    ) -> None:
        """Scalars under the metric constants' names, plus pictures of samples next to real data."""
        if self._tensorboard is None or self._data is None:
            return
        for key, value in metrics.items():
            self._tensorboard.add_scalar(key, value, step)
        model = self.config.model
        rng = torch.Generator(device=device)
        rng.manual_seed((self.config.train.seed * 1_000_003) % 2**63)  # the same latents each time

        @torch.no_grad()
        def sample(cond: torch.Tensor | None, count: int) -> torch.Tensor:
            z = sample_latent(count, model.latent_dim, model.latent_distribution, rng, device)
            return generator(z, cond.to(device) if cond is not None else None).float().cpu()

        was_training = generator.training
        generator.eval()
        try:
            count = self.config.train.num_tensorboard_samples
            log_sample_pictures(self._tensorboard, step, self._data, sample, count)
        finally:
            generator.train(was_training)
        self._tensorboard.flush()
