"""Driver and trainer locks: exclusive, and never kept by a dead holder."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def _racer(lock_dir: str, num_rounds: int, barrier: Any, results: Any) -> None:
    """One driver process: races the others for each round's lock, then reports if it won."""
    held = []
    for round_index in range(num_rounds):
        lock = DriverLock(Path(lock_dir) / f"round{round_index}.lock", heartbeat_s=3600)
        barrier.wait()
        try:
            lock.acquire()
        except SweepError:
            results.put((round_index, False))
        else:
            results.put((round_index, True))
            held.append(lock)
    barrier.wait()  # every round decided: now the winners may let go
    for lock in held:
        lock.release()


def _race(lock_dir: Path, *, num_racers: int = 4, num_rounds: int = 25) -> dict[int, int]:
    """Run ``num_racers`` real processes over ``num_rounds`` locks; winners per round."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(num_racers)
    results = context.Queue()
    racers = [
        context.Process(target=_racer, args=(str(lock_dir), num_rounds, barrier, results))
        for _ in range(num_racers)
    ]
    for racer in racers:
        racer.start()
    winners = dict.fromkeys(range(num_rounds), 0)
    for _ in range(num_racers * num_rounds):
        round_index, won = results.get(timeout=120)
        winners[round_index] += won
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    return winners


def test_racing_drivers_take_a_free_lock_exactly_once(tmp_path: Path) -> None:
    assert set(_race(tmp_path).values()) == {1}
    assert not list(tmp_path.iterdir())  # no temp files or takeover claims left behind


def test_racing_drivers_take_over_a_stale_lock_exactly_once(tmp_path: Path) -> None:
    num_rounds = 24
    for round_index in range(num_rounds):
        lock_path = tmp_path / f"round{round_index}.lock"
        # silent for ages: a remote holder, a torn lock, an empty one
        lock_path.write_text(
            [json.dumps({"host": "another-node", "pid": 1, "started_at": 0}), '{"ho', ""][
                round_index % 3
            ]
        )
        os.utime(lock_path, (0, 0))
    assert set(_race(tmp_path, num_rounds=num_rounds).values()) == {1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("content", ["", '{"host": "another-no', "\x00\x00"])
def test_a_lock_being_written_is_respected_while_fresh(tmp_path: Path, content: str) -> None:
    lock_path = tmp_path / "driver.lock"
    lock_path.write_text(content)
    with pytest.raises(SweepError, match="another driver is taking the lock"):
        DriverLock(lock_path).acquire()
    assert lock_path.read_text() == content
    os.utime(lock_path, (0, 0))
    with DriverLock(lock_path) as lock:
        assert json.loads(lock_path.read_text())["token"] == lock.token


def _taken_over(lock_path: Path) -> DriverLock:
    """A second driver that judges every lock stale (its clock runs far ahead)."""
    winner = DriverLock(lock_path, heartbeat_s=3600, clock=lambda: time.time() + 10_000)
    winner.acquire()
    return winner


def test_a_driver_whose_lock_was_taken_notices_at_its_next_heartbeat(tmp_path: Path) -> None:
    lock_path = tmp_path / "driver.lock"
    loser = DriverLock(lock_path, heartbeat_s=3600)
    loser.acquire()
    winner = _taken_over(lock_path)
    os.utime(lock_path, (1000, 1000))
    assert not loser.beat()
    assert lock_path.stat().st_mtime == 1000  # the winner's file was not touched
    with pytest.raises(SweepError, match="another driver took over this sweep"):
        loser.check()
    loser.release()  # leaves the winner's lock in place
    assert json.loads(lock_path.read_text())["token"] == winner.token
    assert winner.beat()
    winner.release()
    assert not lock_path.exists()


def test_the_heartbeat_thread_reports_the_loss(tmp_path: Path) -> None:
    lost = threading.Event()
    lock_path = tmp_path / "driver.lock"
    with pytest.raises(SweepError, match="another driver took over"):
        with DriverLock(lock_path, heartbeat_s=0.02, on_lost=lambda _: lost.set()):
            winner = _taken_over(lock_path)
            assert lost.wait(timeout=30)
    winner.release()


def test_a_driver_that_lost_its_lock_exits_with_one_line(tmp_path: Path) -> None:
    lock_path = tmp_path / "driver.lock"
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pathlib, time\n"
            "from gan_hpc.locks import DriverLock, exit_driver\n"
            f"with DriverLock(pathlib.Path({str(lock_path)!r}), heartbeat_s=0.05, "
            "on_lost=exit_driver):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None and driver.stdout.readline().strip() == "held"
    winner = _taken_over(lock_path)
    try:
        _, stderr = driver.communicate(timeout=30)
    finally:
        driver.kill()
    assert driver.returncode == 2
    assert len(stderr.strip().splitlines()) == 1
    assert "another driver took over this sweep" in stderr
    assert winner.beat()
    winner.release()
