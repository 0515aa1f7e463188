"""How a SLURM job's end reaches the watcher, without a cluster (the states are stubbed).

The same paths run against the real test cluster in tests/e2e/test_slurm.py; states that cluster
cannot produce on demand (TIMEOUT, PREEMPTED, NODE_FAIL) are covered here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import submitit

from gan_hpc.launchers import slurm as slurm_launch
from gan_hpc.launchers.base import EXIT_CANCELLED, EXIT_LOST
from gan_hpc.launchers.slurm import SlurmJob, job_comment, parse_comment, sweep_key
from gan_hpc.trial_dir import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_REQUEUE, TrialDir


def _job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcomes: list[tuple[str, int | None]]):  # type: ignore[no-untyped-def]
    answers = iter(outcomes)
    monkeypatch.setattr(slurm_launch, "slurm_outcome", lambda job_id: next(answers))
    monkeypatch.setattr(slurm_launch, "STATE_REFRESH_S", 0.0)
    return SlurmJob(submitit.SlurmJob(folder=tmp_path / "%j", job_id="42", tasks=[0]))


@pytest.mark.parametrize(
    ("state", "exit_status", "code"),
    [
        ("COMPLETED", 0, EXIT_OK),
        ("FAILED", 2, EXIT_BAD_INPUT),
        ("FAILED", 75, EXIT_REQUEUE),
        ("FAILED", 1, EXIT_FAILED),
        ("FAILED", None, EXIT_FAILED),
        ("CANCELLED", 0, EXIT_CANCELLED),
        ("TIMEOUT", 0, EXIT_REQUEUE),
        ("NODE_FAIL", 0, EXIT_REQUEUE),
        ("OUT_OF_MEMORY", 0, EXIT_FAILED),
    ],
)
def test_each_end_state_maps_to_one_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str, exit_status: int, code: int
) -> None:
    job = _job(tmp_path, monkeypatch, [("RUNNING", None), (state, exit_status)])
    assert job.poll() is None
    assert job.poll() == code


def test_preempted_waits_for_a_requeue_before_it_counts_as_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm_launch, "PREEMPTED_GRACE_S", 0.0)
    job = _job(tmp_path, monkeypatch, [("PREEMPTED", None), ("PREEMPTED", None)])
    assert job.poll() == EXIT_REQUEUE
    monkeypatch.setattr(slurm_launch, "PREEMPTED_GRACE_S", 3600.0)
    requeued = _job(tmp_path, monkeypatch, [("PREEMPTED", None), ("PENDING", None)])
    assert requeued.poll() is None and requeued.poll() is None  # came back: still watched


def test_a_job_unknown_for_too_long_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _job(tmp_path, monkeypatch, [("UNKNOWN", None)] * 2 + [("RUNNING", None)] * 2)
    monkeypatch.setattr(slurm_launch, "LOST_AFTER_S", 3600.0)
    assert job.poll() is None and job.poll() is None
    assert job.poll() is None  # known again: the clock restarts
    monkeypatch.setattr(slurm_launch, "LOST_AFTER_S", 0.0)
    lost = _job(tmp_path, monkeypatch, [("UNKNOWN", None)])
    assert lost.poll() == EXIT_LOST


def test_a_job_comment_names_the_trial_its_launch_and_its_sweep(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path / "sweep" / "trials" / "trial_0003")
    other = TrialDir(tmp_path / "other" / "trials" / "trial_0003")
    comment = job_comment(trial, 2)
    assert parse_comment(comment) == ("trial_0003", 2, sweep_key(trial))
    assert sweep_key(trial) != sweep_key(other)  # two sweeps of one name never share jobs
    assert parse_comment("driver") == ("driver", -1, "")


def test_the_driver_jobs_memory_grows_with_the_trials_it_watches() -> None:
    from gan_hpc.launchers.slurm_config import SlurmConfig
    from gan_hpc.launchers.slurm_driver import render_driver_script

    def memory_line(slurm: SlurmConfig, trials: int) -> str:
        script = render_driver_script(slurm, watched_trials=trials, job_name="d", log_path="l")
        return next(line for line in script.splitlines() if line.startswith("#SBATCH --mem="))

    assert memory_line(SlurmConfig(), 2) == "#SBATCH --mem=1536MB"  # 1 + 0.1, rounded up
    assert memory_line(SlurmConfig(), 32) == "#SBATCH --mem=3GB"  # 1 + 1.6 -> 3
    assert memory_line(SlurmConfig(), 100) == "#SBATCH --mem=6GB"  # 1 + 5
    assert memory_line(SlurmConfig(driver_mem_gb=3), 100) == "#SBATCH --mem=3GB"
