"""Launch records, leftover trainers (a stand-in trainer), and the warm trainer (the real one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_hpc.config import TrialConfig
from gan_hpc.convergence import SAMPLES_PER_S
from gan_hpc.dist_env import rank_threads
from gan_hpc.launchers.base import (
    LAUNCH_FILE,
    LaunchSpec,
    read_launch,
    trial_threads,
    update_launch,
)
from gan_hpc.launchers.local import (
    LocalWarmTrainer,
    run_warm,
    stop_leftover_trainers,
    trainer_pids,
)
from gan_hpc.launchers.registry import get_launcher
from gan_hpc.trial.checkpoint import list_step_checkpoints
from gan_hpc.trial_dir import EXIT_REQUEUE, TrialDir
from tests.helpers import small_frf_config

# `python -m gan_hpc.trial.train TRIAL_DIR` finds this module first (the working directory leads
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
    (package / "trial").mkdir()
    (package / "trial" / "__init__.py").write_text("")
    (package / "trial" / "train.py").write_text(STAND_IN)
    monkeypatch.chdir(package.parent)
    return package.parent


def _trial(tmp_path: Path, config: TrialConfig | None = None) -> TrialDir:
    trial = TrialDir(tmp_path / "sweep" / "trials" / "trial_0000")
    trial.path.mkdir(parents=True)
    # a launcher reads the rank's thread count there
    trial.write_config(config or small_frf_config())
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
    leftover = subprocess.Popen([sys.executable, "-m", "gan_hpc.trial.train", str(trial.path)])
    bystander = subprocess.Popen([sys.executable, "-m", "gan_hpc.trial.train", str(other.path)])
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
    leftover = subprocess.Popen([sys.executable, "-m", "gan_hpc.trial.train", str(trial.path)])
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


def test_trials_forked_by_the_warm_trainer_train_as_cold_ones_would(
    tmp_path: Path, trial_config: TrialConfig
) -> None:
    """The real trainer: both launches are forks of one warm trainer, which imported once."""
    first, second = _trial(tmp_path), TrialDir(tmp_path / "sweep" / "trials" / "trial_0001")
    second.path.mkdir()
    for trial in (first, second):
        trial.write_config(trial_config)
    warm = LocalWarmTrainer(threads=trial_threads(first, 1))
    launcher, spec = get_launcher("local"), LaunchSpec(warm_dir=str(warm.directory))
    jobs = []
    try:
        jobs = [launcher.start(first, spec), launcher.start(second, spec)]  # side by side
        pids = {int(job.job_id.split(":")[1]) for job in jobs}
        assert len(pids) == 2 and warm.process.pid not in pids
        # forked by the warm trainer: its children, not this process's
        assert all(_parent(pid) == warm.process.pid for pid in pids)
        found: set[int] = set()  # while they train, the forks name their trials by their logs
        _wait(lambda: bool(found.update(trainer_pids([first, second]))) or len(found) == 2, 180)
        assert found == pids
        for job in jobs:
            _wait(lambda job=job: job.poll() is not None, timeout_s=180)
            assert job.poll() == 0, job.failure_summary()
    finally:
        for job in jobs:
            job.cancel()
        warm.close()
    assert not warm.directory.exists() and warm.process.returncode is not None
    results = [json.loads(t.result_path.read_text()) for t in (first, second)]
    assert [r["state"] for r in results] == ["finished", "finished"]
    metrics = [
        {k: v for k, v in r["last"]["metrics"].items() if k != SAMPLES_PER_S} for r in results
    ]
    assert metrics[0] == metrics[1]  # the same config and seed train the same either way
    cold = TrialDir(tmp_path / "cold")
    cold.path.mkdir()
    cold.write_config(trial_config)
    job = launcher.start(cold, LaunchSpec())
    _wait(lambda: job.poll() is not None, timeout_s=180)
    assert job.poll() == 0, job.failure_summary()
    cold_result = json.loads(cold.result_path.read_text())
    assert {k: v for k, v in cold_result["last"]["metrics"].items() if k != SAMPLES_PER_S} == (
        metrics[0]
    )
    log = (second.logs / "rank-0.log").read_text()
    assert "signal quality" in log and "forked from the sweep's warm trainer" in log


def test_a_forked_trial_checkpoints_and_exits_when_its_watcher_dies(tmp_path: Path) -> None:
    """A fork is the warm trainer's child, yet a watcher's death stops it as Ray stops a rank.

    The fork gets SIGTERM, checkpoints at its next step and exits for a requeue, so a resumed
    sweep repeats no step of it.
    """
    trial = _trial(tmp_path, small_frf_config(num_steps=100_000, eval_every_steps=200))
    trial.logs.mkdir()
    watcher = subprocess.Popen(["sleep", "300"])
    warm = LocalWarmTrainer(threads=1)
    try:
        rank = run_warm(warm.directory, _request(trial, watcher_pid=watcher.pid))
        assert rank is not None and rank.poll() is None
        _wait(lambda: bool(trial.read_metrics()), timeout_s=60)  # training, its stop handler set
        watcher.kill()
        watcher.wait()
        _wait(lambda: rank.poll() is not None, timeout_s=30)
        assert rank.returncode == EXIT_REQUEUE, rank.failure_summary()
        status = trial.read_status()
        assert status.state == "preempted" and 0 < status.step < 100_000
        assert max(step for step, _ in list_step_checkpoints(trial.checkpoints)) == status.step
        assert warm.process.poll() is None  # the warm trainer itself serves on
    finally:
        watcher.kill()
        warm.close()


def test_a_forked_trial_outlives_its_warm_trainer_and_reports_its_own_exit(
    tmp_path: Path,
) -> None:
    """A killed driver takes its warm trainer at once: its trials end with their watchers only.

    Were they to die with the warm trainer, the killed driver's watchers, which outlive it by a
    moment, would count their trials' deaths as crashes and spend their retries.
    """
    trial = _trial(tmp_path)
    trial.logs.mkdir()
    warm = LocalWarmTrainer(threads=1)
    try:
        rank = run_warm(warm.directory, _request(trial, watcher_pid=os.getpid()))
        assert rank is not None
        _wait(lambda: bool(trainer_pids([trial])), timeout_s=60)
        warm.process.kill()
        warm.process.wait()
        assert rank.wait() == 0  # the status the trial left itself
        assert json.loads(trial.result_path.read_text())["state"] == "finished"
    finally:
        warm.close()


def test_a_killed_drivers_warm_trainer_removes_its_directory(tmp_path: Path) -> None:
    """The kernel sends the warm trainer SIGTERM as its driver dies: no directory is left."""
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from gan_hpc.launchers.local import LocalWarmTrainer; "
            "warm = LocalWarmTrainer(threads=1); "
            "print(warm.directory, warm.process.pid, flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    directory, pid = driver.stdout.readline().split()
    driver.kill()  # while the warm trainer still imports: the SIGTERM waits for its handler
    driver.wait()
    _wait(lambda: not Path(directory).exists(), timeout_s=30)
    _wait(lambda: _state(int(pid)) in ("Z", None), timeout_s=30)  # reaped or not, it ended


def test_a_warm_trainer_stopped_while_its_driver_lives_keeps_its_directory() -> None:
    """Its driver's watchers may still read their forks' exit files there."""
    warm = LocalWarmTrainer(threads=1)
    try:
        warm.process.terminate()
        assert warm.process.wait(timeout=60) == 0
        assert warm.directory.is_dir()
    finally:
        warm.close()
    assert not warm.directory.exists()


def _request(trial: TrialDir, *, watcher_pid: int) -> dict[str, object]:
    """What a watcher gives the warm trainer for rank 0 of ``trial``, on one thread."""
    return {
        "argv": [str(trial.path)],
        "env": {**os.environ, "OMP_NUM_THREADS": "1"},
        "log": str(trial.logs / "rank-0.log"),
        "watcher_pid": watcher_pid,
    }


def _state(pid: int) -> str | None:
    """The process state letter of ``pid`` (``Z``: ended, not reaped); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


CPUS_HERE = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("configured", "environ", "expected"),
    [
        (3, {"OMP_NUM_THREADS": "8"}, 3),  # train.num_threads pins the count
        (None, {"OMP_NUM_THREADS": "4"}, 4),  # else the launcher's allotment
        (None, {}, CPUS_HERE),  # a lone `gan-hpc train`: every CPU it may run on
        (None, {"LOCAL_WORLD_SIZE": "2"}, max(1, CPUS_HERE // 2)),  # shared among the ranks
        (None, {"SLURM_NTASKS_PER_NODE": str(4 * CPUS_HERE)}, 1),  # never below one
        (None, {"OMP_NUM_THREADS": "0"}, CPUS_HERE),  # a meaningless allotment is ignored
    ],
)
def test_a_rank_trains_with_the_threads_it_was_given(
    configured: int | None, environ: dict[str, str], expected: int
) -> None:
    assert rank_threads(configured, environ) == expected
