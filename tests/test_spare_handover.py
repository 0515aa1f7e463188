"""The hand-over of a spare trainer through its directory (no trainer process: the files alone)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gan_hpc import spare_handover
from gan_hpc.launchers.local import take_spare

REQUEST = {"argv": ["trials/trial_0000"], "env": {}, "log": "rank-0.log", "watcher_pid": 1}


def test_a_spare_is_given_to_one_watcher_only(tmp_path: Path) -> None:
    spare_handover.advertise(tmp_path, 4242, threads=2)
    assert spare_handover.waiting_spares(tmp_path, 2) == [4242]
    assert spare_handover.give(tmp_path, 4242, REQUEST)
    assert not spare_handover.give(tmp_path, 4242, {**REQUEST, "argv": ["other"]})
    assert spare_handover.is_taken(tmp_path, 4242)
    assert spare_handover.waiting_spares(tmp_path, 2) == []  # taken: offered to nobody else
    request_file = spare_handover.spare_file(tmp_path, 4242, spare_handover.REQUEST)
    assert '"trials/trial_0000"' in request_file.read_text()  # the first watcher's trial
    assert sorted(p.name for p in tmp_path.iterdir()) == ["4242.request", "4242.spare"]


def test_a_watcher_takes_only_spares_started_for_its_thread_count(tmp_path: Path) -> None:
    spare_handover.advertise(tmp_path, 11, threads=1)
    spare_handover.advertise(tmp_path, 12, threads=4)
    assert spare_handover.waiting_spares(tmp_path, 4) == [12]
    assert spare_handover.waiting_spares(tmp_path, 2) == []


def test_a_spare_reads_its_request_and_says_it_has_begun(tmp_path: Path) -> None:
    pid = os.getpid()  # this process plays the spare
    spare_handover.advertise(tmp_path, pid, threads=1)
    assert not spare_handover.has_begun(tmp_path, pid)
    assert spare_handover.give(tmp_path, pid, REQUEST)
    assert spare_handover.wait_for_request(tmp_path) == REQUEST
    assert spare_handover.has_begun(tmp_path, pid)
    assert spare_handover.read_exit(tmp_path, pid) is None  # none yet: still running
    spare_handover.record_exit(tmp_path, 75)
    assert spare_handover.read_exit(tmp_path, pid) == 75


def test_a_waiting_spare_exits_when_its_driver_removes_the_directory(tmp_path: Path) -> None:
    spares = tmp_path / "spares"
    spares.mkdir()
    answer: list[object] = []
    waiting = threading.Thread(
        target=lambda: answer.append(spare_handover.wait_for_request(spares))
    )
    waiting.start()
    spares.rmdir()
    waiting.join(timeout=10)
    assert answer == [None]


def test_a_recycled_pid_is_never_taken_for_a_spare(tmp_path: Path) -> None:
    # the pid of a spare that died now names another process (here: this test's): it is skipped
    spare_handover.advertise(tmp_path, os.getpid(), threads=1)
    assert take_spare(tmp_path, 1, REQUEST) is None
    assert not spare_handover.is_taken(tmp_path, os.getpid())
