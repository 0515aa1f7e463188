"""The sweep's SLURM poller without a cluster: parsing, the interval rule, the watcher's side.

tests/e2e/test_slurm_poll.py runs the poller against the real test cluster.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import submitit

from gan_hpc.files import atomic_write_json
from gan_hpc.launchers import slurm as slurm_launch
from gan_hpc.launchers import slurm_poll
from gan_hpc.launchers.base import EXIT_CANCELLED
from gan_hpc.launchers.slurm import SlurmJob
from gan_hpc.launchers.slurm_poll import (
    FAST_POLL_S,
    SLOW_POLL_S,
    PolledJob,
    merge_outcomes,
    next_interval_s,
    parse_sacct,
    parse_squeue,
    to_account,
)
from gan_hpc.trial_dir import EXIT_BAD_INPUT, EXIT_OK, TrialDir


def test_squeue_and_sacct_lines_parse_to_states_and_exit_statuses() -> None:
    assert parse_squeue("12|RUNNING\n13|pending\n\n") == {"12": "RUNNING", "13": "PENDING"}
    sacct = "12|COMPLETED|0:0\n13|CANCELLED by 0|0:15\n14|FAILED|2:0\n14|FAILED|75:0\n15||\n"
    assert parse_sacct(sacct) == {
        "12": ("COMPLETED", 0),
        "13": ("CANCELLED", 0),
        "14": ("FAILED", 75),  # a requeued job's last run wins
    }


def test_only_jobs_that_left_the_queue_with_no_known_end_go_to_sacct() -> None:
    watched = ["1", "2", "3", "4"]
    queued = {"1": "RUNNING", "2": "COMPLETED"}  # squeue may list a job that just ended
    ended = {"3": ("COMPLETED", 0)}
    assert to_account(watched, queued, ended) == ["2", "4"]
    accounted = {"2": ("COMPLETED", 0)}
    assert merge_outcomes(watched, queued, accounted, ended) == {
        "1": ("RUNNING", None),
        "2": ("COMPLETED", 0),
        "3": ("COMPLETED", 0),
        "4": ("UNKNOWN", None),  # neither knows it: the watcher decides when it is lost
    }
    requeued = merge_outcomes(["3"], {"3": "PENDING"}, {}, ended)
    assert requeued == {"3": ("PENDING", None)}  # squeue lists it again: squeue wins


def test_the_interval_is_short_while_jobs_start_and_backs_off_while_all_run() -> None:
    running = {"1": "RUNNING", "2": "COMPLETED"}
    assert next_interval_s(FAST_POLL_S, {"1": "PENDING"}, changed=False) == FAST_POLL_S
    assert next_interval_s(FAST_POLL_S, {"1": "UNKNOWN"}, changed=False) == FAST_POLL_S
    assert next_interval_s(FAST_POLL_S, running, changed=True) == FAST_POLL_S
    intervals = [FAST_POLL_S]
    for _ in range(6):
        intervals.append(next_interval_s(intervals[-1], running, changed=False))
    assert intervals == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert max(intervals) == SLOW_POLL_S
    assert next_interval_s(SLOW_POLL_S, running, changed=True) == FAST_POLL_S  # one just ended


def _publish(folder: Path, jobs: dict[str, list[object]], *, age_s: float = 0.0) -> None:
    atomic_write_json(
        folder / slurm_poll.STATES_FILE, {"polled_at": time.time() - age_s, "jobs": jobs}
    )


def _polled_job(folder: Path, job_id: str, trial: TrialDir | None = None) -> SlurmJob:
    polled = PolledJob(folder, job_id, trial=trial)
    return SlurmJob(
        submitit.SlurmJob(folder=folder / "%j", job_id=job_id, tasks=[0]), polled=polled
    )


def test_a_watcher_reads_its_jobs_end_from_the_poller_and_never_asks_slurm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_direct_query(job_id: str) -> tuple[str, int | None]:
        raise AssertionError(f"job {job_id} asked SLURM itself")

    monkeypatch.setattr(slurm_launch, "slurm_outcome", no_direct_query)
    monkeypatch.setattr(slurm_poll, "READ_EVERY_S", 0.0)
    (tmp_path / slurm_poll.JOBS_DIR).mkdir()
    _publish(tmp_path, {})
    bad, cancelled = _polled_job(tmp_path, "7"), _polled_job(tmp_path, "8")
    assert sorted(os.listdir(tmp_path / slurm_poll.JOBS_DIR)) == ["7", "8"]  # registered
    assert (tmp_path / slurm_poll.REFRESH_FILE).exists()  # and asked for a prompt answer
    assert bad.poll() is None and cancelled.poll() is None  # not answered yet: still watched
    _publish(tmp_path, {"7": ["RUNNING", None], "8": ["RUNNING", None]})
    assert bad.poll() is None and cancelled.poll() is None
    _publish(tmp_path, {"7": ["FAILED", EXIT_BAD_INPUT], "8": ["CANCELLED", 0]})
    assert bad.poll() == EXIT_BAD_INPUT  # the trainer's own exit status
    assert cancelled.poll() == EXIT_CANCELLED


def test_a_trial_that_wrote_its_final_status_asks_for_a_prompt_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm_poll, "READ_EVERY_S", 0.0)
    (tmp_path / slurm_poll.JOBS_DIR).mkdir()
    trial = TrialDir(tmp_path / "trial_0000")
    trial.path.mkdir()
    job = _polled_job(tmp_path, "9", trial)
    refresh = tmp_path / slurm_poll.REFRESH_FILE
    os.utime(refresh, (0, 0))
    _publish(tmp_path, {"9": ["RUNNING", None]})
    assert job.poll() is None and refresh.stat().st_mtime == 0
    trial.update_status(state="finished")
    assert job.poll() is None and refresh.stat().st_mtime > 0
    _publish(tmp_path, {"9": ["COMPLETED", 0]})
    assert job.poll() == EXIT_OK


def test_without_a_live_poller_the_watcher_asks_slurm_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def direct(job_id: str) -> tuple[str, int | None]:
        asked.append(job_id)
        return "COMPLETED", 0

    monkeypatch.setattr(slurm_launch, "slurm_outcome", direct)
    monkeypatch.setattr(slurm_poll, "READ_EVERY_S", 0.0)
    no_poller = _polled_job(tmp_path / "gone", "5")  # its driver's folder does not exist
    assert no_poller.polled is not None and no_poller.polled.is_stale
    assert no_poller.poll() == EXIT_OK and asked == ["5"]
    (tmp_path / slurm_poll.JOBS_DIR).mkdir()
    stopped = _polled_job(tmp_path, "6")
    _publish(tmp_path, {"6": ["RUNNING", None]}, age_s=slurm_poll.STALE_AFTER_S + 1)
    assert stopped.poll() == EXIT_OK and asked == ["5", "6"]  # the poller stopped answering
