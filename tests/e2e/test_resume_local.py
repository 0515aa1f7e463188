"""Resume with real processes and signals: kill the driver, kill a trainer, tear a checkpoint."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gan_hpc import convergence as names
from gan_hpc.trial.checkpoint import list_step_checkpoints
from gan_hpc.trial_dir import TrialDir

NUM_STEPS = 300
EVAL_EVERY = 20


def _spec(num_samples: int) -> dict:
    return {
        "name": "resume",
        "seed": 0,
        "base": {
            "data": {
                "format": "synthetic_frf",
                "conditional": True,
                "synthetic": {"num_points": 64, "num_frequencies": 32},
            },
            "model": {
                "latent_dim": 8,
                "generator": {"depth": 2, "width": 64},
                "discriminator": {"depth": 2, "width": 64},
            },
            "train": {"batch_size": 16, "num_steps": NUM_STEPS, "eval_every_steps": EVAL_EVERY},
        },
        "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": num_samples,
            "max_concurrent_trials": 2,
            "scheduler": "fifo",
            "max_retries_per_trial": 1,
        },
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 32},
    }


def _start_driver(tmp_path: Path, num_samples: int) -> tuple[subprocess.Popen[bytes], Path]:
    spec_file = tmp_path / "resume.yaml"
    spec_file.write_text(yaml.safe_dump(_spec(num_samples)))
    log = (tmp_path / "driver.log").open("wb")
    driver = subprocess.Popen(
        [sys.executable, "-m", "gan_hpc", "sweep", "run", str(spec_file)]
        + ["--out", str(tmp_path / "resume")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return driver, tmp_path / "resume"


def _trials(sweep_dir: Path) -> list[TrialDir]:
    root = sweep_dir / "trials"
    return [TrialDir(p) for p in sorted(root.iterdir())] if root.is_dir() else []


def _wait_for(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _steps(trial: TrialDir) -> list[int]:
    return [int(r[names.STEP]) for r in trial.read_metrics()]


@pytest.mark.ray
@pytest.mark.slow
def test_killed_driver_resumes_without_losing_trials(tmp_path: Path) -> None:
    driver, sweep_dir = _start_driver(tmp_path, num_samples=3)

    def two_trials_midway() -> bool:
        midway = [t for t in _trials(sweep_dir) if _steps(t) and 60 <= max(_steps(t)) < NUM_STEPS]
        return len(midway) >= 2

    _wait_for(two_trials_midway, 300, "two trials half-way")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    # its trainers checkpoint and exit; a trial that reached its end meanwhile is finished
    _wait_for(
        lambda: all(_lock_free(t) for t in _trials(sweep_dir)),
        180,
        "the killed driver's trainers to exit",
    )
    interrupted = {
        t.path.name: max(_steps(t)) for t in _trials(sweep_dir) if t.read_result() is None
    }
    assert interrupted

    # the newest checkpoint of one interrupted trial is torn: it must fall back to the previous one
    torn_id = sorted(interrupted)[0]
    torn_trial = TrialDir(sweep_dir / "trials" / torn_id)
    checkpoints = list_step_checkpoints(torn_trial.checkpoints)
    newest_step, newest = checkpoints[-1]
    newest.write_bytes(newest.read_bytes()[:100])

    resumed = subprocess.run(
        [sys.executable, "-m", "gan_hpc", "sweep", "resume", str(sweep_dir)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    trials = _trials(sweep_dir)
    assert len(trials) == 3  # exactly num_samples, no duplicates
    for trial in trials:
        steps = _steps(trial)
        status = trial.read_status()
        assert status.state == "finished" and max(steps) == NUM_STEPS, trial.path
        repeats = [s for s, n in Counter(steps).items() if n > 1]
        if trial.path.name in interrupted:
            assert status.resumes >= 1 and status.resumed_from_step > 0  # never from step 0
        if trial.path.name == torn_id:
            assert status.resumed_from_step < newest_step
            assert status.steps_repeated >= newest_step - status.resumed_from_step
        elif trial.path.name in interrupted:  # its trainer checkpointed as its watcher died
            assert status.steps_repeated == 0 and not repeats
    with (sweep_dir / "leaderboard.csv").open() as board:
        ranked = [row["trial_id"] for row in csv.DictReader(board)]
    assert sorted(r for r in ranked if not r.startswith("baseline:")) == [
        t.path.name for t in trials
    ]  # every trial ranked once (baseline rows aside)


def _lock_free(trial: TrialDir) -> bool:
    """True when no process holds the trial's trainer lock."""
    import fcntl

    with open(trial.path / "train.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


@pytest.mark.ray
@pytest.mark.slow
def test_killed_trainer_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    driver, sweep_dir = _start_driver(tmp_path, num_samples=1)

    def trial_midway() -> bool:
        trials = _trials(sweep_dir)
        return bool(trials) and bool(_steps(trials[0])) and max(_steps(trials[0])) >= 60

    _wait_for(trial_midway, 300, "the trial half-way")
    trial = _trials(sweep_dir)[0]
    job_id = trial.read_status().job_id
    assert job_id is not None and job_id.startswith("local:")
    os.kill(int(job_id.split(":")[1].split(",")[0]), signal.SIGKILL)

    assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    status = trial.read_status()
    assert status.state == "finished" and status.restart_count == 1 and status.resumes == 1
    steps = _steps(trial)
    assert max(steps) == NUM_STEPS and status.resumed_from_step >= 60
    assert status.steps_repeated <= EVAL_EVERY
