"""`sweep extend` on a real local sweep: the study continues, a killed extend resumes exactly."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.helpers import small_frf_base

SPEC = {
    "name": "grow",
    "seed": 0,
    "base": small_frf_base(num_steps=20, eval_every_steps=10),
    "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
    "tune": {
        "metric": "conditional_rmse",
        "num_samples": 2,
        "max_concurrent_trials": 2,
        "scheduler": "fifo",
    },
    "ranking": {"score": "conditional_rmse", "num_eval_samples": 32},
}


def _gan_hpc(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gan_hpc", *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


def _board(sweep_dir: Path) -> pd.DataFrame:
    status = _gan_hpc("sweep", "status", str(sweep_dir), "--format", "csv")
    assert status.returncode == 0, status.stderr
    board = pd.read_csv(io.StringIO(status.stdout))
    return board[board["state"] != "baseline"]


def _study_trials(sweep_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal")))
    return optuna.load_study(study_name="grow", storage=storage).trials


@pytest.mark.ray
@pytest.mark.slow
def test_extend_continues_the_study_and_survives_a_killed_driver(tmp_path: Path) -> None:
    spec_file = tmp_path / "grow.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    sweep_dir = tmp_path / "grow"
    run = _gan_hpc("sweep", "run", str(spec_file), "--out", str(sweep_dir))
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(_board(sweep_dir)) == 2

    # the first extend's driver is killed as soon as its first new trial exists
    command = [sys.executable, "-m", "gan_hpc", "sweep", "extend", str(tmp_path)]
    with (tmp_path / "extend.log").open("wb") as log:
        driver = subprocess.Popen(
            [*command, "--num-samples", "2"], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 300
        while not (sweep_dir / "trials" / "trial_0002").exists():
            assert driver.poll() is None, (tmp_path / "extend.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no new trial within 300 s"
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    stored = yaml.safe_load((sweep_dir / "spec.yaml").read_text())
    assert stored["tune"]["num_samples"] == 4  # written before anything launched

    resume = _gan_hpc("sweep", "resume", str(sweep_dir))
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert sorted(_board(sweep_dir)["trial_id"]) == [f"trial_{i:04d}" for i in range(4)]

    again = _gan_hpc("sweep", "extend", str(sweep_dir), "--num-samples", "1")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "extended to 5 trials" in again.stderr
    board = _board(sweep_dir)
    assert sorted(board["trial_id"]) == [f"trial_{i:04d}" for i in range(5)]

    trials = _study_trials(sweep_dir)  # plain Optuna sees every trial, with its value
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5
    assert all(t.value is not None and "optim.generator.lr" in t.params for t in complete)
    # the killed driver's Optuna trial that never got a directory is failed, not counted
    assert len(trials) - len(complete) == sum(t.state == TrialState.FAIL for t in trials)
