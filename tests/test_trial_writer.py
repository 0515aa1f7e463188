"""The rank-0 writer: the main rank writes the trial directory, every other rank writes nothing."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gan_hpc import convergence as names
from gan_hpc.config import TrialConfig
from gan_hpc.trial.checkpoint import TrainState, load_checkpoint
from gan_hpc.trial.writer import TrialWriter
from gan_hpc.trial_dir import TrialDir, TrialResult


def _state(step: int) -> TrainState:
    generator = nn.Linear(2, 2)
    return TrainState(
        step=step,
        epoch=0,
        batch_in_epoch=step,
        generator=generator.state_dict(),
        discriminator=nn.Linear(2, 1).state_dict(),
        optimizer_generator=torch.optim.Adam(generator.parameters()).state_dict(),
        optimizer_discriminator=torch.optim.Adam(generator.parameters()).state_dict(),
        rng=[{"torch": torch.get_rng_state()}],
        config={},
        schema={},
    )


def _run_writer(trial: TrialDir, config: TrialConfig, *, is_main: bool) -> list[tuple]:
    reports: list[tuple] = []
    writer = TrialWriter(
        trial, config, is_main=is_main, report=lambda m, c: reports.append((dict(m), c))
    )
    with writer:
        writer.start()
        for step in (5, 10):
            writer.record_evaluation(
                _state(step),
                {names.D_LOSS: 0.7},
                is_best=step == 5,
                wall_time_s=1.0,
                generator=nn.Linear(2, 2),
                device=torch.device("cpu"),
            )
        result = TrialResult(state="finished", step=10, wall_time_s=2.0)
        writer.finish(state="finished", step=10, flags=[], result=result)
    return reports


def test_other_ranks_write_nothing(tmp_path: Path, trial_config: TrialConfig) -> None:
    trial = TrialDir(tmp_path / "trial")
    assert _run_writer(trial, trial_config, is_main=False) == []
    assert not trial.path.exists()


def test_the_main_rank_writes_the_trial_directory(
    tmp_path: Path, trial_config: TrialConfig
) -> None:
    trial = TrialDir(tmp_path / "trial")
    reports = _run_writer(trial, trial_config, is_main=True)

    assert [(m[names.STEP], c.name) for m, c in reports] == [
        (5.0, "step-00000005.pt"),
        (10.0, "step-00000010.pt"),
    ]
    assert trial.read_config() == trial_config
    assert [r[names.STEP] for r in trial.read_metrics()] == [5, 10]
    assert trial.read_status().state == "finished" and trial.read_status().step == 10
    assert trial.result_path.exists()
    assert load_checkpoint(trial.checkpoints / "best.pt")["step"] == 5
    assert sorted(p.name for p in trial.checkpoints.glob("step-*.pt")) == [
        "step-00000005.pt",
        "step-00000010.pt",
    ]
    assert list(trial.tensorboard.glob("events.out.tfevents.*"))
