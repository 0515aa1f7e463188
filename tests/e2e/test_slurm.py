"""The SLURM launcher against a real single-node SLURM cluster (never a fake sbatch).

Start the cluster first, as root: ``slurm/cluster.sh start`` (``.ci/run`` does). The tests find
its config under the default prefix when SLURM_CONF is not exported, and skip with the reason
when no cluster answers. The node has 2 CPUs here, so one 2-task trial job runs at a time.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gan_hpc import convergence as names
from gan_hpc.errors import LaunchError
from gan_hpc.launchers import slurm as slurm_launch
from gan_hpc.launchers.base import EXIT_CANCELLED, EXIT_LOST, LaunchSpec, read_launch, update_launch
from gan_hpc.launchers.local import trainer_pids
from gan_hpc.launchers.registry import get_launcher
from gan_hpc.launchers.slurm import SlurmJob, job_comment, sweep_key
from gan_hpc.launchers.slurm_config import SlurmConfig
from gan_hpc.launchers.slurm_driver import render_driver_script
from gan_hpc.sweep.watcher import after_job_end
from gan_hpc.trial_dir import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, TrialDir
from tests.helpers import small_frf_config

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLURM_CONF = Path("/tmp/gan-hpc-slurm/etc/slurm.conf")  # slurm/cluster.sh's prefix
SBATCH_RECORD = REPO / "tests" / "data" / "sbatch_record.txt"
DRIVER_TEMPLATE = REPO / "slurm" / "driver.sbatch"
ACCEPT_ENV = "GAN_HPC_ACCEPT_GOLDEN"  # =1 rewrites the golden files from what the code renders
# preemption needs timeout_min > 10: below that submitit counts every preemption as a timeout
TRAIN = {"batch_size": 16, "num_steps": 60, "eval_every_steps": 20}
SLURM_BLOCK = {"timeout_min": 30, "cpus_per_task": 1, "max_requeues": 3, "driver_cpus": 1}


def _slurm_conf() -> str | None:
    conf = os.environ.get("SLURM_CONF")
    if conf:
        return conf
    return str(DEFAULT_SLURM_CONF) if DEFAULT_SLURM_CONF.is_file() else None


def _skip_reason() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch not found: start the test cluster with `slurm/cluster.sh start` (root)"
    conf = _slurm_conf()
    if conf is None or not Path(conf).is_file():
        return "no SLURM config: start the test cluster with `slurm/cluster.sh start` (root)"
    env = {**os.environ, "SLURM_CONF": conf}
    try:
        sinfo = subprocess.run(["sinfo", "-h"], capture_output=True, env=env, timeout=20)
    except subprocess.TimeoutExpired:
        return f"SLURM ({conf}) does not answer"
    if sinfo.returncode != 0:
        return f"SLURM ({conf}) does not answer: {sinfo.stderr.decode().strip()}"
    return None


SKIP_REASON = _skip_reason()


def needs_slurm(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as a SLURM test, skipped with the reason when no cluster answers."""
    marks = (
        pytest.mark.slurm,
        pytest.mark.slow,
        pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    )
    for mark in marks:
        test = mark(test)
    return test


@pytest.fixture
def slurm_conf(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """SLURM_CONF for this process, its CLI subprocesses and the jobs they submit."""
    conf = _slurm_conf()
    assert conf is not None
    monkeypatch.setenv("SLURM_CONF", conf)
    yield conf


# ------------------------------------------------------------------------------------ helpers


def _spec(name: str, **blocks: Any) -> dict[str, Any]:
    """A sweep of tiny conditional MLP GANs, each trial a 2-rank DDP job (gloo on CPU)."""
    spec: dict[str, Any] = {
        "name": name,
        "seed": 0,
        "base": {
            "data": {
                "format": "synthetic_frf",
                "conditional": True,
                "synthetic": {"num_points": 64, "num_frequencies": 32},
            },
            "model": {
                "latent_dim": 8,
                "generator": {"depth": 1, "width": 16},
                "discriminator": {"depth": 1, "width": 16},
            },
            "train": dict(TRAIN),
        },
        "search": {"optim.generator.lr": {"loguniform": [5.0e-4, 3.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": 1,
            "max_concurrent_trials": 1,  # 2 CPUs: one 2-task job at a time
            "scheduler": "fifo",
        },
        "resources": {"world_size": 2, "nodes": 1},
        "launcher": "slurm",
        "slurm": dict(SLURM_BLOCK),
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 32},
    }
    for key, value in blocks.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    return spec


def _write_spec(tmp_path: Path, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _cli(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gan_hpc", *args], capture_output=True, text=True, timeout=timeout_s
    )


def _wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.5)


def _trials(sweep_dir: Path) -> list[TrialDir]:
    root = sweep_dir / "trials"
    return [TrialDir(p) for p in sorted(root.iterdir())] if root.is_dir() else []


def _steps(trial: TrialDir) -> list[int]:
    return [int(r[names.STEP]) for r in trial.read_metrics()]


def _sacct(*args: str) -> list[list[str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", *args], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def _job_state(job_id: str) -> str:
    """sacct's state; while it still says PENDING (accounting lags a start), the controller's."""
    rows = _sacct("-j", job_id, "-o", "State")
    state = rows[-1][0].split(" ")[0] if rows else "UNKNOWN"
    if state in ("PENDING", "UNKNOWN"):
        queued = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        state = queued or state
    return state


def _restarts(job_id: str) -> int:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"Restarts=(\d+)", out)
    assert match, out
    return int(match.group(1))


def _jobs_named(name: str, since: float) -> list[str]:
    """Ids of the jobs with this name (all jobs of a sweep share it) submitted since then."""
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 1))
    rows = _sacct("-S", start, "--name", name, "-o", "JobID,Submit")
    return [row[0] for row in rows if row[1] >= start]


def _error_line(stderr: str) -> str:
    """The CLI's one error line: the last line, and the only one that is an error (no trace)."""
    lines = stderr.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], stderr
    return lines[-1]


def _assert_golden(path: Path, actual: str) -> None:
    """Compare with a golden file (a missing one fails); GAN_HPC_ACCEPT_GOLDEN=1 writes it."""
    if os.environ.get(ACCEPT_ENV) == "1":
        path.write_text(actual)
    if not path.exists():
        pytest.fail(
            f"{path}: golden file missing; write it: {ACCEPT_ENV}=1 python -m pytest {__file__}"
        )
    expected = path.read_text()
    if actual != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), str(path), "rendered", lineterm=""
            )
        )
        pytest.fail(
            f"{path} differs from what the code renders:\n{diff}\n"
            f"If the change is intended, accept it: {ACCEPT_ENV}=1 python -m pytest {__file__}"
        )


# --------------------------------------------------------------------------------------- tests


def test_driver_template_is_the_rendered_script() -> None:
    """slurm/driver.sbatch is what `sweep submit` writes, for the default slurm: block."""
    rendered = render_driver_script(
        SlurmConfig(),
        watched_trials=8,
        job_name="gan-hpc-driver",
        log_path="gan-hpc-driver-%j.log",
    )
    _assert_golden(DRIVER_TEMPLATE, rendered)


@needs_slurm
def test_sbatch_script_of_a_trial_job_is_recorded(slurm_conf: str, tmp_path: Path) -> None:
    trial = TrialDir(tmp_path / "trial")
    trial.path.mkdir()
    trial.write_config(small_frf_config())
    slurm = SlurmConfig(
        partition="debug",
        qos="normal",
        timeout_min=45,
        mem_gb=1.5,
        cpus_per_task=1,
        signal_delay_s=90,
        setup=("export GAN_HPC_EXAMPLE=1",),
        # held: submitted and recorded, never started
        additional_parameters={"hold": "", "mail-type": "NONE"},
    )
    spec = LaunchSpec(world_size=2, nodes=1, settings=slurm, job_name="gan-hpc.golden")
    job = get_launcher("slurm").start(trial, spec)
    try:
        assert isinstance(job, SlurmJob)
        assert trial.read_status().job_id == job.job_id
        script = job.job.paths.submission_file.read_text()
    finally:
        job.cancel()
    normalized = script.replace(str(trial.path.resolve()), "<TRIAL_DIR>")
    normalized = normalized.replace(sys.executable, "<PYTHON>")
    normalized = normalized.replace(sweep_key(trial), "<SWEEP_KEY>")
    _assert_golden(SBATCH_RECORD, normalized)
    assert _job_state(job.job_id) == "CANCELLED"


@needs_slurm
def test_sweep_runs_trials_as_ddp_jobs_and_cancels_the_stopped_one(
    slurm_conf: str, tmp_path: Path
) -> None:
    """Two trials, each a 2-task DDP job; ASHA stops the bad one and its job is cancelled."""
    spec = _spec(
        "slurm_sweep",
        base={
            **_spec("x")["base"],
            "train": {**TRAIN, "num_steps": 400},
        },
        search={
            "train.num_steps": {"choice": [60, 400]},
            # a sigmoid output cannot reach the negative half of the [-1, 1] data: a bad trial
            "model.output_activation": {"choice": ["auto", "sigmoid"]},
        },
        tune={
            "num_samples": 2,
            "scheduler": "asha",
            "grace_period_steps": 20,
            "reduction_factor": 2,
            "initial_points": [
                {"train.num_steps": 60, "model.output_activation": "auto"},
                {"train.num_steps": 400, "model.output_activation": "sigmoid"},
            ],
        },
        launcher="local",  # the CLI's --launcher picks slurm
    )
    spec_file = _write_spec(tmp_path, spec)
    started = time.time()
    out = str(tmp_path / "slurm_sweep")
    run = _cli("sweep", "run", str(spec_file), "--out", out, "--launcher", "slurm")
    assert run.returncode == 0, run.stderr[-3000:]
    sweep_dir = tmp_path / "slurm_sweep"
    assert (sweep_dir / "leaderboard.csv").exists()
    assert run.stdout.startswith("rank  trial")  # the leaderboard table

    trials = {t.read_config().model.output_activation: t for t in _trials(sweep_dir)}
    good, bad = trials["auto"], trials["sigmoid"]
    jobs = _jobs_named("gan-hpc.slurm_sweep", started)  # one job per trial, no other
    assert sorted(jobs) == sorted(str(t.read_status().job_id) for t in trials.values())

    status = good.read_status()
    assert status.state == "finished" and status.job_id in jobs
    assert _steps(good) == [20, 40, 60] and _job_state(status.job_id) == "COMPLETED"
    result = good.read_result()
    assert result is not None
    fingerprints = result.replica_fingerprints
    assert len(fingerprints) == 2 and len(set(fingerprints)) == 1  # two ranks, one model
    script = (good.path / "slurm" / status.job_id / f"{status.job_id}_submission.sh").read_text()
    assert "#SBATCH --ntasks-per-node=2" in script and "#SBATCH --signal=USR2@120" in script

    status = bad.read_status()
    assert status.state == "stopped" and max(_steps(bad)) < 400
    assert _job_state(status.job_id) == "CANCELLED"
    squeue = subprocess.run(
        ["squeue", "-h", "-j", status.job_id], capture_output=True, text=True
    ).stdout
    assert not squeue.strip()  # not still running


@needs_slurm
def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(
    slurm_conf: str, tmp_path: Path
) -> None:
    """submitit's preemption (SIGTERM + USR2), then an admin's `scontrol requeue`."""
    trial = TrialDir(tmp_path / "trial")
    trial.path.mkdir()
    trial.write_config(small_frf_config(num_steps=600, eval_every_steps=20))
    spec = LaunchSpec(world_size=2, settings=SlurmConfig(**SLURM_BLOCK), job_name="gan-hpc.preempt")
    job = get_launcher("slurm").start(trial, spec)
    assert isinstance(job, SlurmJob)

    def preempt(action: Callable[[], None], restarts: int) -> int:
        seen = len(trial.read_metrics())
        _wait_for(lambda: len(trial.read_metrics()) > seen, 120, "a new metrics record")
        step = max(_steps(trial))
        action()
        _wait_for(lambda: _restarts(job.job_id) == restarts, 60, f"restart {restarts}")
        return step

    first = preempt(job.job._interrupt, 1)  # SIGTERM then USR2, as a preempting scheduler
    second = preempt(lambda: subprocess.run(["scontrol", "requeue", job.job_id], check=True), 2)
    _wait_for(lambda: job.poll() is not None, 240, "the job to end")

    assert job.poll() == 0 and _job_state(job.job_id) == "COMPLETED"
    steps = _steps(trial)
    assert steps == sorted(set(steps)), steps  # strictly increasing: never back to step 0
    assert steps[-1] == 600 and first < second < 600
    status = trial.read_status()
    assert status.state == "finished" and status.job_id == job.job_id
    assert status.restart_count == 2 and status.resumes == 2
    assert status.resumed_from_step >= second
    log = job.job.task(0).stdout() or ""
    assert "this job is preempted" in (job.job.task(0).stderr() or "") + log


@needs_slurm
def test_restarted_driver_reattaches_to_running_jobs(slurm_conf: str, tmp_path: Path) -> None:
    """SIGKILL the driver while a trial job runs; `sweep resume` re-attaches, submits nothing."""
    spec = _spec("reattach", base={**_spec("x")["base"], "train": {**TRAIN, "num_steps": 800}})
    spec_file = _write_spec(tmp_path, spec)
    sweep_dir = tmp_path / "reattach"
    started = time.time()
    with (tmp_path / "driver.log").open("wb") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "gan_hpc", "sweep", "run", str(spec_file)]
            + ["--out", str(tmp_path / "reattach")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: any(t.read_metrics() for t in _trials(sweep_dir)), 120, "a report")
        _wait_for(lambda: list((sweep_dir / "ray").rglob("experiment_state*.json")), 60, "state")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    (trial,) = _trials(sweep_dir)
    job_id = trial.read_status().job_id
    assert job_id is not None and _job_state(job_id) == "RUNNING"

    resume = _cli("sweep", "resume", str(sweep_dir))
    assert resume.returncode == 0, resume.stderr[-3000:]
    status = trial.read_status()
    assert status.state == "finished" and status.job_id == job_id  # the same job, re-attached
    assert _jobs_named("gan-hpc.reattach", started) == [job_id]  # and no duplicate submitted
    steps = _steps(trial)
    assert steps == sorted(set(steps)) and steps[-1] == 800
    assert (sweep_dir / "leaderboard.csv").exists()


@needs_slurm
def test_sweep_submit_runs_the_driver_as_a_job_that_requeues(
    slurm_conf: str, tmp_path: Path
) -> None:
    """`sweep submit`: the driver is a CPU job; preempted, it requeues and restores the sweep."""
    spec = _spec(
        "submitted",
        base={**_spec("x")["base"], "train": {**TRAIN, "num_steps": 800}},
        resources={"world_size": 1},  # the driver's CPU + one 1-task trial job fit 2 CPUs
    )
    spec_file = _write_spec(tmp_path, spec)
    started = time.time()
    submit = _cli("sweep", "submit", str(spec_file), "--out", str(tmp_path / "submitted"))
    assert submit.returncode == 0, submit.stderr[-3000:]
    driver_id = re.search(r"submitted driver job (\d+)", submit.stdout).group(1)  # type: ignore[union-attr]
    sweep_dir = tmp_path / "submitted"
    assert f"gan-hpc sweep status {sweep_dir}" in submit.stdout
    assert (sweep_dir / "driver" / "driver.sbatch").exists()

    _wait_for(lambda: any(t.read_metrics() for t in _trials(sweep_dir)), 180, "a trial report")
    _wait_for(lambda: list((sweep_dir / "ray").rglob("experiment_state*.json")), 60, "state")
    (trial,) = _trials(sweep_dir)
    trial_job = trial.read_status().job_id
    # what SLURM sends before the driver's time limit (--signal=B:USR2@...), or at preemption
    subprocess.run(["scancel", "--batch", "--signal=USR2", driver_id], check=True)
    _wait_for(lambda: _restarts(driver_id) == 1, 60, "the driver's requeue")
    _wait_for(lambda: _job_state(driver_id) not in ("PENDING", "RUNNING", "REQUEUED"), 240, "end")

    log = (sweep_dir / "driver" / f"{driver_id}.log").read_text()
    assert _job_state(driver_id) == "COMPLETED", log[-3000:]
    assert "requeueing job" in log and "restart 1" in log
    status = trial.read_status()
    assert status.state == "finished" and status.job_id == trial_job  # re-attached, not resubmitted
    jobs = _jobs_named("gan-hpc.submitted", started)
    assert sorted(jobs) == sorted([driver_id, trial_job])
    assert _steps(trial)[-1] == 800
    board = _cli("sweep", "status", str(sweep_dir), "--format", "csv")
    assert board.returncode == 0 and trial.path.name in board.stdout


@needs_slurm
def test_sweep_extend_submit_runs_the_new_trials_from_a_driver_job(
    slurm_conf: str, tmp_path: Path
) -> None:
    """`sweep extend --submit`: the new total is stored, then a driver job runs the new trial."""
    spec = _spec("grown", resources={"world_size": 1})  # the driver's CPU + a 1-task job fit
    spec_file = _write_spec(tmp_path, spec)
    sweep_dir = tmp_path / "grown"
    started = time.time()
    run = _cli("sweep", "run", str(spec_file), "--out", str(sweep_dir))
    assert run.returncode == 0, run.stderr[-3000:]
    (first,) = _trials(sweep_dir)

    extend = _cli("sweep", "extend", str(tmp_path), "--num-samples", "1", "--submit")
    assert extend.returncode == 0, extend.stderr[-3000:]
    assert "extended to 2 trials" in extend.stderr
    driver_id = re.search(r"submitted driver job (\d+)", extend.stdout).group(1)  # type: ignore[union-attr]
    assert yaml.safe_load((sweep_dir / "spec.yaml").read_text())["tune"]["num_samples"] == 2
    _wait_for(lambda: _job_state(driver_id) not in ("PENDING", "RUNNING", "UNKNOWN"), 300, "end")
    log = (sweep_dir / "driver" / f"{driver_id}.log").read_text()
    assert _job_state(driver_id) == "COMPLETED", log[-3000:]

    trials = _trials(sweep_dir)
    assert [t.path.name for t in trials] == ["trial_0000", "trial_0001"]
    assert all(t.read_status().state == "finished" for t in trials), log[-3000:]
    trial_jobs = [str(t.read_status().job_id) for t in trials]
    assert trial_jobs[0] == str(first.read_status().job_id)  # the first trial was not rerun
    assert sorted(_jobs_named("gan-hpc.grown", started)) == sorted([*trial_jobs, driver_id])
    board = _cli("sweep", "status", str(sweep_dir), "--format", "csv")
    assert board.returncode == 0 and all(t.path.name in board.stdout for t in trials)


@needs_slurm
def test_refused_sbatch_option_is_one_line(slurm_conf: str, tmp_path: Path) -> None:
    spec_file = _write_spec(tmp_path, _spec("refused"))
    for option, message in [
        ("slurm.partition=nope", "invalid partition specified: nope"),
        ("slurm.cpus_per_task=64", "Requested node configuration is not available"),
    ]:
        for command in ("run", "submit"):
            out = str(tmp_path / "refused")
            run = _cli("sweep", command, str(spec_file), "--out", out, "--set", option)
            assert run.returncode == 2, run.stderr
            line = _error_line(run.stderr)
            assert line.startswith("gan-hpc: error: sbatch refused") and message in line
    assert not (tmp_path / "refused").exists()  # nothing was started


@needs_slurm
def test_unreachable_slurm_suggests_the_local_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = _write_spec(tmp_path, _spec("unreachable"))
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "missing.conf"))
    run = _cli("sweep", "run", str(spec_file), "--out", str(tmp_path))
    assert run.returncode == 2
    line = _error_line(run.stderr)
    assert "missing.conf does not exist" in line and "--launcher local" in line
    if not Path("/etc/slurm/slurm.conf").exists():  # no config at all: sbatch's own words
        monkeypatch.delenv("SLURM_CONF")
        run = _cli("sweep", "run", str(spec_file), "--out", str(tmp_path))
        assert run.returncode == 2
        line = _error_line(run.stderr)
        assert "SLURM is not reachable" in line and "--launcher local" in line


def test_trial_task_pickle_carries_only_the_trial_directory(tmp_path: Path) -> None:
    """What crosses into the job (and back at requeue) is the path, never a checkpoint."""
    import pickle

    import cloudpickle

    from gan_hpc.launchers.slurm import TrialTask

    task = TrialTask(trial_dir=str(tmp_path), max_requeues=2)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        copy = loads(dumps(task))
        assert vars(copy) == vars(task)
        assert copy.__getstate__() == {"trial_dir": str(tmp_path), "max_requeues": 2}
    # a job queued before the thread count came from config.json still unpickles at requeue
    old = TrialTask.__new__(TrialTask)
    old.__setstate__({"trial_dir": str(tmp_path), "max_requeues": 2, "threads_per_rank": 4})
    assert vars(old) == vars(task)


# ------------------------------------------------- end states and exactly-once job submission

ONE_RANK = LaunchSpec(world_size=1, settings=SlurmConfig(**SLURM_BLOCK), job_name="gan-hpc.ends")


def _new_trial(tmp_path: Path, name: str, **train: object) -> TrialDir:
    trial = TrialDir(tmp_path / "sweep" / "trials" / name)
    trial.path.mkdir(parents=True)
    trial.write_config(small_frf_config(**train))
    return trial


def _ended(job: Any, timeout_s: float = 180) -> int:
    _wait_for(lambda: job.poll() is not None, timeout_s, f"job {job.job_id} to end")
    code = job.poll()
    assert code is not None
    return int(code)


@needs_slurm
def test_the_trainers_exit_status_reaches_the_watcher(slurm_conf: str, tmp_path: Path) -> None:
    """0 ended, 2 bad input (never retried), 1 a crash (here: the trainer SIGKILLed)."""
    launcher = get_launcher("slurm")
    done = _new_trial(tmp_path, "trial_0000", num_steps=10)
    bad = _new_trial(tmp_path, "trial_0001")
    config = json.loads(bad.config_path.read_text())
    config["data"]["synthetic"]["num_points"] = -5  # the trainer refuses it: exit 2
    bad.config_path.write_text(json.dumps(config))
    crash = _new_trial(tmp_path, "trial_0002", num_steps=2000, eval_every_steps=10)

    jobs = {t.path.name: launcher.start(t, ONE_RANK) for t in (done, bad, crash)}
    assert _ended(jobs["trial_0000"]) == EXIT_OK
    assert _ended(jobs["trial_0001"]) == EXIT_BAD_INPUT
    _wait_for(lambda: bool(crash.read_metrics()), 180, "the crash trial's first report")
    for pid in trainer_pids([crash]):
        os.kill(pid, signal.SIGKILL)
    assert _ended(jobs["trial_0002"]) == EXIT_FAILED
    assert _job_state(jobs["trial_0002"].job_id) == "FAILED"
    with pytest.raises(LaunchError, match="exit 2"):
        after_job_end(bad, EXIT_BAD_INPUT, job_id="x", summary=str, max_retries=3)
    assert after_job_end(crash, EXIT_FAILED, job_id="y", summary=str, max_retries=1) is None


@needs_slurm
def test_a_users_scancel_ends_the_trial_as_cancelled(slurm_conf: str, tmp_path: Path) -> None:
    trial = _new_trial(tmp_path, "trial_0000", num_steps=2000, eval_every_steps=10)
    job = get_launcher("slurm").start(trial, ONE_RANK)
    _wait_for(lambda: bool(trial.read_metrics()), 180, "the trial's first report")
    subprocess.run(["scancel", job.job_id], check=True)  # a user, not the sweep
    code = _ended(job)
    assert code == EXIT_CANCELLED
    assert after_job_end(trial, code, job_id=job.job_id, summary=str, max_retries=3) == "cancelled"
    assert trial.read_status().state == "cancelled" and read_launch(trial).retries == 0


@needs_slurm
def test_a_job_forgotten_by_squeue_and_sacct_is_lost(
    slurm_conf: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job id neither squeue nor sacct knows (a purged database) ends as lost, not polled on."""
    trial = _new_trial(tmp_path, "trial_0000")
    update_launch(trial, launch=1, job_id="987654")
    assert get_launcher("slurm").attach(trial, ONE_RANK) is None  # `sweep confirm` starts anew
    job = get_launcher("slurm").attach(trial, ONE_RANK, include_ended=True)  # a sweep's driver
    assert isinstance(job, SlurmJob)
    monkeypatch.setattr(slurm_launch, "LOST_AFTER_S", 2.0)
    monkeypatch.setattr(slurm_launch, "STATE_REFRESH_S", 0.0)
    assert job.poll() is None  # unknown for a moment: it may be a new job sacct has not seen
    time.sleep(2.5)
    assert job.poll() == EXIT_LOST
    assert after_job_end(trial, EXIT_LOST, job_id="987654", summary=str, max_retries=1) is None
    assert read_launch(trial).retries == 1  # retried from its checkpoint, once


@needs_slurm
def test_a_job_submitted_before_its_id_was_saved_is_found_not_submitted_again(
    slurm_conf: str, tmp_path: Path
) -> None:
    """The driver dies between sbatch and saving the job id: the next one finds the job."""
    launcher = get_launcher("slurm")
    trial = _new_trial(tmp_path, "trial_0000", num_steps=2000, eval_every_steps=10)
    update_launch(trial, launch=1, job_id=None, intent_at=time.time())  # the intent
    submitted = launcher._spawn(trial, ONE_RANK, 1)
    update_launch(trial, job_id=None)  # ...and the driver died before saving the id
    try:
        found = launcher.attach(trial, ONE_RANK, include_ended=True)
        assert found is not None and found.job_id == submitted.job_id
        assert read_launch(trial).job_id == submitted.job_id
        # a stale launch of the same trial still queued is a duplicate: reconcile cancels it
        update_launch(trial, launch=2, job_id="1")
        launcher.reconcile(ONE_RANK, [trial], [])
        _wait_for(lambda: _job_state(submitted.job_id) == "CANCELLED", 60, "the cancel")
        assert (
            job_comment(trial, 1)
            in subprocess.run(
                ["sacct", "-n", "-X", "-P", "-j", submitted.job_id, "-o", "Comment"],
                capture_output=True,
                text=True,
            ).stdout
        )
    finally:
        subprocess.run(["scancel", submitted.job_id])
