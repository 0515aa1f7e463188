"""Launch records and leftover trainers, with a stand-in trainer (no torch, no training)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_hpc.launch import (
    LAUNCH_FILE,
    LaunchSpec,
    get_launcher,
    read_launch,
    stop_leftover_trainers,
    trainer_pids,
    update_launch,
)
from gan_hpc.trial_dir import TrialDir

# `python -m gan_hpc.train TRIAL_DIR` finds this module first (the working directory leads
# sys.path): it notes the launch record it saw at start, then sleeps like a long trial.
STAND_IN = """
import json, sys, time
from pathlib import Path
trial = Path(sys.argv[1])
record = trial / "launch.json"
seen = json.loads(record.read_text()) if record.exists() else None
(trial / "seen.json").write_text(json.dumps(seen))
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 60)
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "stand_in" / "gan_hpc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text(STAND_IN)
    monkeypatch.chdir(package.parent)
    return package.parent


def _trial(tmp_path: Path) -> TrialDir:
    trial = TrialDir(tmp_path / "sweep" / "trials" / "trial_0000")
    trial.path.mkdir(parents=True)
    return trial


def _wait(condition, timeout_s: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_launch_is_recorded_before_its_job_starts(tmp_path: Path, stand_in: Path) -> None:
    trial = _trial(tmp_path)
    job = get_launcher("local").start(trial, LaunchSpec())
    try:
        _wait(lambda: (trial.path / "seen.json").exists())
        seen = json.loads((trial.path / "seen.json").read_text())
        assert seen is not None and seen["launch"] == 1  # recorded before the job started
        record = read_launch(trial)
        assert record.launch == 1 and record.job_id == job.job_id
        assert trial.read_status().job_id == job.job_id
    finally:
        job.cancel()


def test_leftover_trainers_are_found_in_proc_and_stopped(tmp_path: Path, stand_in: Path) -> None:
    trial, other = _trial(tmp_path), TrialDir(tmp_path / "sweep" / "trials" / "trial_0001")
    other.path.mkdir()
    leftover = subprocess.Popen([sys.executable, "-m", "gan_hpc.train", str(trial.path)])
    bystander = subprocess.Popen([sys.executable, "-m", "gan_hpc.train", str(other.path)])
    try:
        _wait(lambda: bool(trainer_pids([trial])))
        assert list(trainer_pids([trial])) == [leftover.pid]  # only that trial's trainer
        assert stop_leftover_trainers([trial], grace_s=5) == 1
        assert leftover.wait(timeout=10) != 0 and bystander.poll() is None
    finally:
        bystander.kill()
        leftover.kill()


def test_a_new_local_launch_stops_a_killed_drivers_trainer_first(
    tmp_path: Path, stand_in: Path
) -> None:
    trial = _trial(tmp_path)
    update_launch(trial, launch=1, job_id="local:1")
    leftover = subprocess.Popen([sys.executable, "-m", "gan_hpc.train", str(trial.path)])
    _wait(lambda: bool(trainer_pids([trial])))
    launcher = get_launcher("local")
    assert launcher.attach(trial, LaunchSpec(), include_ended=True) is None  # stops it
    assert leftover.wait(timeout=30) != 0
    job = launcher.start(trial, LaunchSpec())
    try:
        assert read_launch(trial).launch == 2 and list(trainer_pids([trial])) == [
            int(job.job_id.split(":")[1])
        ]
    finally:
        job.cancel()
    assert json.loads((trial.path / LAUNCH_FILE).read_text())["job_id"] == job.job_id
