"""Driver and trainer locks: exclusive, and never kept by a dead holder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gan_hpc.errors import LaunchError, SweepError
from gan_hpc.locks import DriverLock, TrialLock


def test_second_driver_is_refused_with_the_holder(tmp_path: Path) -> None:
    lock_path = tmp_path / "driver.lock"
    with DriverLock(lock_path):
        with pytest.raises(SweepError, match=rf"already driven by pid {os.getpid()} on "):
            DriverLock(lock_path).acquire()
    assert not lock_path.exists()


def test_dead_holder_does_not_keep_the_lock(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock_path = tmp_path / "driver.lock"
    lock_path.write_text(
        json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started_at": 0})
    )
    with DriverLock(lock_path):
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()


def test_silent_remote_holder_goes_stale(tmp_path: Path) -> None:
    lock_path = tmp_path / "driver.lock"
    lock_path.write_text(json.dumps({"host": "another-node", "pid": 1, "started_at": 0}))
    with pytest.raises(SweepError, match="another-node"):
        DriverLock(lock_path).acquire()
    os.utime(lock_path, (0, 0))  # no heartbeat since 1970
    with DriverLock(lock_path):
        assert json.loads(lock_path.read_text())["host"] == socket.gethostname()


def test_trial_lock_waits_then_gives_up(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from gan_hpc.locks import TrialLock\n"
            f"with TrialLock(__import__('pathlib').Path({str(tmp_path / 'train.lock')!r})):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        with pytest.raises(LaunchError, match="another trainer still runs this trial"):
            with TrialLock(tmp_path / "train.lock", wait_s=1.0):
                pass
    finally:
        holder.kill()
        holder.wait()
    with TrialLock(tmp_path / "train.lock", wait_s=5.0):  # released by the kernel on death
        pass


def test_requeued_driver_job_takes_over_its_own_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_path = tmp_path / "driver.lock"
    previous = {"host": "other-node", "pid": 1, "started_at": 0, "slurm_job_id": "42"}
    lock_path.write_text(json.dumps({**previous, "slurm_restart_count": 0}))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with DriverLock(lock_path):
        assert json.loads(lock_path.read_text())["slurm_restart_count"] == 1
