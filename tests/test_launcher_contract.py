"""One contract for every registered launcher: start, poll, cancel, re-attach, exit statuses.

Real processes for ``local``, the real single-node SLURM for ``slurm`` (``slurm/cluster.sh
start``; skipped with the reason when no cluster answers). The trainer is a stand-in that
sleeps and exits as told, so the whole file takes seconds, not minutes. The last tests show
that a backend is one module plus one registry line: a toy backend defined here is picked up
by the spec's validation and the CLI's choices.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gan_hpc
from gan_hpc.cli import build_parser
from gan_hpc.config_validation import config_from_dict
from gan_hpc.errors import LaunchError, SpecError
from gan_hpc.launchers import registry as launcher_registry
from gan_hpc.launchers.base import EXIT_CANCELLED, Launcher, LaunchSpec, TrialJob, read_launch
from gan_hpc.launchers.registry import LAUNCHERS, LauncherBackend, get_launcher
from gan_hpc.sweep.spec import sweep_spec_from_dict
from gan_hpc.trial_dir import EXIT_BAD_INPUT, EXIT_OK, EXIT_REQUEUE, TrialDir
from tests.helpers import small_frf_config

# `python -m gan_hpc.trial.train TRIAL_DIR` finds this package first (the working directory leads
# sys.path; submitit's job starts there too); every other gan_hpc module is the real one.
STAND_IN_INIT = "__path__.append({real!r})\n"
STAND_IN_TRAIN = """
import json, os, signal, sys, time
from pathlib import Path
trial = Path(sys.argv[1])
plan = json.loads((trial / "plan.json").read_text())
signal.signal(signal.SIGTERM, lambda *_: sys.exit(75))  # checkpoint and exit, as the trainer does
(trial / "threads.txt").write_text(os.environ["OMP_NUM_THREADS"])
(trial / "running").touch()
time.sleep(plan["sleep_s"])
sys.exit(plan["exit"])
"""
NUM_THREADS = 2  # train.num_threads: the one thread count every backend hands its ranks


@pytest.fixture(params=list(LAUNCHERS))
def launcher_name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every registered launcher; SLURM's against the real cluster."""
    name = str(request.param)
    if name == "slurm":
        from tests.e2e.test_slurm import SKIP_REASON, _slurm_conf

        if SKIP_REASON:
            pytest.skip(SKIP_REASON)

        monkeypatch.setenv("SLURM_CONF", str(_slurm_conf()))
    return name


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "stand_in" / "gan_hpc"
    package.mkdir(parents=True)
    real = str(Path(gan_hpc.__file__).parent)
    (package / "__init__.py").write_text(STAND_IN_INIT.format(real=real))
    (package / "trial").mkdir()
    (package / "trial" / "__init__.py").write_text("")
    (package / "trial" / "train.py").write_text(STAND_IN_TRAIN)
    monkeypatch.chdir(package.parent)
    return package.parent


def _trial(
    tmp_path: Path,
    name: str,
    *,
    sleep_s: float,
    exit_status: int,
    num_threads: int | None = NUM_THREADS,
) -> TrialDir:
    trial = TrialDir(tmp_path / "sweep" / "trials" / name)
    trial.path.mkdir(parents=True)
    config = small_frf_config()
    trial.write_config(
        dataclasses.replace(
            config, train=dataclasses.replace(config.train, num_threads=num_threads)
        )
    )
    (trial.path / "plan.json").write_text(json.dumps({"sleep_s": sleep_s, "exit": exit_status}))
    return trial


def _launch_spec(name: str, *, cpus_per_rank: int = 1) -> LaunchSpec:
    """One rank, given ``cpus_per_rank`` CPUs in each backend's own terms."""
    settings = None
    if name == "slurm":
        from gan_hpc.launchers.slurm_config import SlurmConfig

        settings = SlurmConfig(timeout_min=5, cpus_per_task=cpus_per_rank, signal_delay_s=30)
    return LaunchSpec(cpus_per_trial=cpus_per_rank, settings=settings, job_name="gan-hpc.contract")


def _wait(condition: Any, timeout_s: float = 45.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _ended(job: TrialJob, timeout_s: float = 45.0) -> int:
    """Poll until the job has ended; its exit status."""
    codes: list[int | None] = [None]

    def done() -> bool:
        codes[0] = job.poll()
        return codes[0] is not None

    _wait(done, timeout_s)
    assert codes[0] is not None
    return codes[0]


@pytest.fixture
def started() -> Iterator[list[TrialJob]]:
    """Jobs a test started: cancelled at the end, whatever happened."""
    jobs: list[TrialJob] = []
    yield jobs
    for job in jobs:
        if job.poll() is None:
            job.cancel()


@pytest.mark.parametrize(("exit_status", "expected"), [(0, EXIT_OK), (2, EXIT_BAD_INPUT)])
def test_a_finished_job_reports_the_trainers_exit_status(
    launcher_name: str,
    stand_in: Path,
    tmp_path: Path,
    started: list[TrialJob],
    exit_status: int,
    expected: int,
) -> None:
    trial = _trial(tmp_path, "trial_0000", sleep_s=0, exit_status=exit_status)
    job = get_launcher(launcher_name).start(trial, _launch_spec(launcher_name))
    started.append(job)
    assert read_launch(trial).launch == 1 and read_launch(trial).job_id == job.job_id
    assert _ended(job) == expected, job.failure_summary()
    assert (trial.path / "threads.txt").read_text() == str(NUM_THREADS)
    if expected != EXIT_OK:
        assert job.job_id in job.failure_summary()


def test_a_trial_without_a_thread_count_gets_the_cpus_its_backend_gave_each_rank(
    launcher_name: str, stand_in: Path, tmp_path: Path, started: list[TrialJob]
) -> None:
    trial = _trial(tmp_path, "trial_0000", sleep_s=0, exit_status=0, num_threads=None)
    job = get_launcher(launcher_name).start(trial, _launch_spec(launcher_name, cpus_per_rank=2))
    started.append(job)
    assert _ended(job) == EXIT_OK, job.failure_summary()
    assert (trial.path / "threads.txt").read_text() == "2"


def test_a_cancelled_job_stops_and_a_fresh_launcher_never_runs_it_twice(
    launcher_name: str, stand_in: Path, tmp_path: Path, started: list[TrialJob]
) -> None:
    spec = _launch_spec(launcher_name)
    trial = _trial(tmp_path, "trial_0000", sleep_s=120, exit_status=0)
    job = get_launcher(launcher_name).start(trial, spec)
    started.append(job)
    _wait(lambda: (trial.path / "running").exists() or job.poll() is not None)
    assert job.poll() is None  # running

    # a restarted driver: a new launcher object re-attaches, or stops what it cannot watch
    again = get_launcher(launcher_name).attach(trial, spec, include_ended=True)
    if again is not None:
        started.append(again)
        assert again.job_id == job.job_id and again.poll() is None
    else:
        assert job.poll() is not None  # the old ranks are gone: the next start is the only one
        (trial.path / "running").unlink()
        job = get_launcher(launcher_name).start(trial, spec)
        started.append(job)
        _wait(lambda: (trial.path / "running").exists() or job.poll() is not None)
        assert read_launch(trial).launch == 2
    assert read_launch(trial).job_id == job.job_id

    job.cancel()  # the trainer checkpoints on SIGTERM (75), or the scheduler says cancelled
    assert _ended(job) in (EXIT_REQUEUE, EXIT_CANCELLED)


# ------------------------------------------------ a backend is one module plus one registry line


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ToyConfig:
    """The toy backend's spec block."""

    queue: str = "default"


def load_toy_config(raw: Any, *, source: str) -> ToyConfig:
    return config_from_dict(ToyConfig, raw, source=source, prefix="toy")


class ToyLauncher(Launcher):
    """A backend that starts nothing (its module would start jobs somewhere)."""

    name = "toy"

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        raise LaunchError("the toy backend starts nothing")


@pytest.fixture
def toy_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line of a new backend."""
    backend = LauncherBackend(load=lambda: ToyLauncher, load_settings=load_toy_config)
    monkeypatch.setitem(LAUNCHERS, "toy", backend)


def _toy_spec(**toy: Any) -> dict[str, Any]:
    return {"name": "toy", "base": {"train": {"num_steps": 200}}, "launcher": "toy", "toy": toy}


def test_a_registered_backend_is_a_launcher_and_has_a_spec_block(toy_backend: None) -> None:
    spec = sweep_spec_from_dict(_toy_spec(queue="gpu"), source="toy.yaml")
    assert spec.launcher == "toy" and spec.to_dict()["toy"] == {"queue": "gpu"}
    assert launcher_registry.launch_spec_for(spec).settings == ToyConfig(queue="gpu")
    with pytest.raises(SpecError, match=r"toy\.yaml: toy\.queues: unknown key .*'queue'"):
        sweep_spec_from_dict(_toy_spec(queues="gpu"), source="toy.yaml")
    assert isinstance(get_launcher("toy"), ToyLauncher)
    # a backend without a driver job says so in one line
    with pytest.raises(LaunchError, match=r"^launcher toy has no driver job: run `gan-hpc sweep"):
        launcher_registry.driver_launcher_name("toy", is_explicit=True)
    assert get_launcher("toy").watcher_resources(2.0, 1.0) == {"cpu": 2.0, "gpu": 1.0}


def test_the_cli_offers_every_registered_backend(toy_backend: None) -> None:
    args = build_parser().parse_args(["sweep", "run", "x.yaml", "--launcher", "toy"])
    assert args.launcher == "toy"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "run", "x.yaml", "--launcher", "pbs"])


def test_an_unknown_launcher_lists_the_registered_ones() -> None:
    with pytest.raises(SpecError, match=r"launcher: 'pbs' is not one of 'local', 'slurm'"):
        sweep_spec_from_dict({"name": "x", "launcher": "pbs"}, source="x.yaml")


@pytest.mark.parametrize("name", list(LAUNCHERS))
def test_each_backend_answers_to_its_registry_name(name: str) -> None:
    assert get_launcher(name).name == name
