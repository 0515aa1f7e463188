"""The hand-over of a trial to the warm trainer through its directory (the files alone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gan_hpc import warm_handover
from gan_hpc.launchers.local import WARM_DIR_PREFIX, remove_stale_warm_directories, run_warm

REQUEST = {"argv": ["trials/trial_0000"], "env": {}, "log": "rank-0.log", "watcher_pid": 1}


def test_the_warm_trainer_takes_each_request_once(tmp_path: Path) -> None:
    first = warm_handover.submit(tmp_path, REQUEST)
    second = warm_handover.submit(tmp_path, {**REQUEST, "argv": ["trials/trial_0001"]})
    assert first != second
    taken = warm_handover.take_requests(tmp_path)
    assert sorted(taken) == sorted(
        [(first, REQUEST), (second, {**REQUEST, "argv": ["trials/trial_0001"]})]
    )
    assert warm_handover.take_requests(tmp_path) == []  # renamed to .taken: never twice
    assert not warm_handover.withdraw(tmp_path, first)  # too late to take it back


def test_a_withdrawn_request_is_never_taken(tmp_path: Path) -> None:
    token = warm_handover.submit(tmp_path, REQUEST)
    assert warm_handover.withdraw(tmp_path, token)
    assert warm_handover.take_requests(tmp_path) == []


def test_the_fork_and_its_exit_status_are_recorded_per_request(tmp_path: Path) -> None:
    token = warm_handover.submit(tmp_path, REQUEST)
    assert warm_handover.read_pid(tmp_path, token) is None
    warm_handover.record_pid(tmp_path, token, 4242)
    assert warm_handover.read_pid(tmp_path, token) == 4242
    assert warm_handover.read_exit(tmp_path, token) is None  # still running
    warm_handover.record_exit(tmp_path, token, 75)
    assert warm_handover.read_exit(tmp_path, token) == 75
    warm_handover.record_exit(tmp_path / "gone", token, 0)  # a closed directory: no error


def test_a_recycled_pid_is_never_taken_for_the_warm_trainer(tmp_path: Path) -> None:
    # the warm trainer died and its pid now names another process (here: this test's)
    warm_handover.advertise(tmp_path, os.getpid())
    assert run_warm(tmp_path, REQUEST) is None
    assert list(tmp_path.glob("*.request")) == []  # nothing was left for it


def test_without_a_warm_trainer_the_rank_starts_cold(tmp_path: Path) -> None:
    assert run_warm(tmp_path, REQUEST) is None
    assert run_warm(tmp_path / "gone", REQUEST) is None


def test_a_fork_that_ignores_sigterm_is_killed_once_its_grace_is_over(tmp_path: Path) -> None:
    watcher = subprocess.Popen(["sleep", "300"])
    stubborn = f"""
import signal, time
from pathlib import Path
from gan_hpc import warm_handover
signal.signal(signal.SIGTERM, lambda *_: Path({str(tmp_path / "sigterm")!r}).touch())
warm_handover.stop_with({watcher.pid}, grace_s=0.5)
Path({str(tmp_path / "ready")!r}).touch()
time.sleep(60)
"""
    fork = subprocess.Popen([sys.executable, "-c", stubborn])
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "ready").exists():
            assert time.monotonic() < deadline and fork.poll() is None
            time.sleep(0.05)
        watcher.kill()
        watcher.wait()
        assert fork.wait(timeout=30) == -signal.SIGKILL
        assert (tmp_path / "sigterm").exists()  # asked first
    finally:
        watcher.kill()
        fork.kill()


def test_a_dead_sweeps_warm_directory_is_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm trainer killed with its driver's whole process group could not remove its own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen(["true"])
    ended.wait()

    def warm_directory(name: str, *, warm: int, driver: int, age_s: float) -> Path:
        directory = tmp_path / f"{WARM_DIR_PREFIX}{name}"
        directory.mkdir()
        (directory / warm_handover.SERVER_FILE).write_text(
            json.dumps({"pid": warm, "driver": driver})
        )
        os.utime(directory, (time.time() - age_s, time.time() - age_s))
        return directory

    dead = warm_directory("dead", warm=ended.pid, driver=ended.pid, age_s=600)
    live_driver = warm_directory("live", warm=ended.pid, driver=os.getpid(), age_s=600)
    young = warm_directory("young", warm=ended.pid, driver=ended.pid, age_s=0)
    (tmp_path / "gan-hpc-warm-file").write_text("not a directory")
    assert remove_stale_warm_directories() == 1
    assert not dead.exists() and live_driver.is_dir() and young.is_dir()
