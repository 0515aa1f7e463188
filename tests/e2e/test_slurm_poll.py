"""The sweep's SLURM poller against the real test cluster: one squeue call per poll for all jobs.

Start the cluster first, as root: ``slurm/cluster.sh start``.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import submitit

from gan_hpc.launchers import slurm as slurm_launch
from gan_hpc.launchers import slurm_poll
from gan_hpc.launchers.slurm import SlurmJob
from gan_hpc.launchers.slurm_commands import slurm_outcome, slurm_state
from gan_hpc.launchers.slurm_poll import JobPoller, PolledJob
from gan_hpc.trial_dir import EXIT_OK
from tests.e2e.test_slurm import needs_slurm, slurm_conf  # noqa: F401 (a fixture)

# two run at once on the 2-CPU node, the third waits: pending, running and ended are all seen
JOBS = ("sleep 4", "sleep 4", "sleep 2; exit 3")


def _sbatch(name: str, command: str, folder: Path) -> str:
    out = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", "--cpus-per-task=1", "--mem=64M",
         f"--output={folder}/%j.out", f"--wrap={command}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.split(";")[0].strip()


@needs_slurm
@pytest.mark.usefixtures("slurm_conf")
def test_several_jobs_are_watched_with_one_squeue_call_per_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    real_query = slurm_poll._query

    def counted(command: Sequence[str]) -> str:
        calls.append(list(command))
        return real_query(command)

    def no_direct_query(job_id: str) -> tuple[str, int | None]:
        raise AssertionError(f"job {job_id} asked SLURM itself")

    monkeypatch.setattr(slurm_poll, "_query", counted)
    monkeypatch.setattr(slurm_launch, "slurm_outcome", no_direct_query)
    monkeypatch.setattr(slurm_poll, "SLOW_POLL_S", 4.0)
    name = f"gan-hpc.poll-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "slurm_poll" / "token"
    with JobPoller(folder, job_name=name) as poller:
        ids = [_sbatch(name, command, tmp_path) for command in JOBS]
        jobs = [
            SlurmJob(
                submitit.SlurmJob(folder=tmp_path / "%j", job_id=job_id, tasks=[0]),
                polled=PolledJob(folder, job_id),
            )
            for job_id in ids
        ]
        codes: dict[str, int] = {}
        deadline = time.monotonic() + 180
        while len(codes) < len(jobs) and time.monotonic() < deadline:
            for job in jobs:
                code = job.poll()
                if code is not None:
                    codes[job.job_id] = code
            time.sleep(0.5)
        assert codes == {ids[0]: EXIT_OK, ids[1]: EXIT_OK, ids[2]: 3}  # sacct's ExitCode
        polls, sacct_calls = poller.num_polls, poller.num_sacct_calls
        time.sleep(2 * slurm_poll.FAST_POLL_S + 1)  # every end is known: no more sacct
        assert poller.num_polls > polls and poller.num_sacct_calls == sacct_calls
    squeue_calls = [c for c in calls if c[0] == "squeue"]
    sacct_calls_made = [c for c in calls if c[0] == "sacct"]
    assert len(squeue_calls) == poller.num_squeue_calls
    assert poller.num_squeue_calls <= poller.num_polls  # one per poll (none before a job)
    assert len(sacct_calls_made) == poller.num_sacct_calls <= poller.num_squeue_calls
    assert all(c[-2] == "-j" and len(c[-1].split(",")) <= len(ids) for c in sacct_calls_made)
    # three jobs watched ~20 s: the per-watcher rule would have made 3 calls every 5 s
    assert poller.num_polls >= 3


@needs_slurm
@pytest.mark.usefixtures("slurm_conf")
def test_one_jobs_direct_state_queries_read_the_real_cluster(tmp_path: Path) -> None:
    # what a watcher asks when no poller answers: the same parsers as the poller's
    job_id = _sbatch(f"direct-{uuid.uuid4().hex[:6]}", "sleep 2; exit 3", tmp_path)
    assert slurm_outcome(job_id)[0] in ("PENDING", "RUNNING", "CONFIGURING")
    deadline = time.monotonic() + 60
    while slurm_outcome(job_id) != ("FAILED", 3):
        assert time.monotonic() < deadline, f"job {job_id}: {slurm_outcome(job_id)}"
        time.sleep(0.5)
    assert slurm_state(job_id) == "FAILED"
    assert slurm_outcome("999999") == ("UNKNOWN", None)
    assert slurm_state("999999") == "UNKNOWN"
