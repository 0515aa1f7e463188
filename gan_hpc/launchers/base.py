"""What every launcher shares: the :class:`Launcher` interface, its job handle and launch records.

A launcher starts a trial's ranks of ``python -m gan_hpc.trial.train TRIAL_DIR`` and watches them.
Every backend hands each rank the same environment contract (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT, or SLURM's equivalents) and the same thread count (the trial's
``train.num_threads``), so the quick start, the tests and a cluster sweep differ only in the
launcher. The backends (:mod:`gan_hpc.launchers.local`, :mod:`gan_hpc.launchers.slurm`) are listed
in :mod:`gan_hpc.launchers.registry`; this module imports none of them.

Exactly once: before a launcher starts anything it records the intent in the trial's
``launch.json`` (the launch number), and the job's handle once it exists. A restarted driver
reconciles these records with what runs (``/proc`` for local ranks; ``squeue``/``sacct`` by the
job's comment for SLURM) before it starts anything, so a trial never has two jobs.
``launch.json`` has one writer: the sweep's driver (its trial watchers).
"""

from __future__ import annotations

import abc
import contextlib
import ctypes
import dataclasses
import math
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gan_hpc.errors import GanHpcError, LaunchError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.trial_dir import TrialDir

_PR_SET_PDEATHSIG = 1
LAUNCH_FILE = "launch.json"  # <trial_dir>/launch.json: the driver's launch record (intents)
# Exit statuses a launcher reports besides the trainer's own (0, 1, 2, 75; see trial_dir):
EXIT_CANCELLED = 130  # the job was cancelled by someone else (a user's scancel)
EXIT_LOST = 69  # the scheduler forgot the job (neither squeue nor sacct knows it): EX_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class LaunchRecord:
    """The content of ``launch.json``: what the driver started for a trial, and why.

    ``launch`` is incremented and written *before* a job starts (the intent); ``job_id`` is
    written once the job exists. A restarted driver that finds a launch without a job id looks
    the job up (SLURM: by its comment) before it starts another one.
    """

    launch: int = 0  # jobs started for this trial, the current one included
    job_id: str | None = None  # the current launch's job, once known
    intent_at: float = 0.0  # when the current launch was decided (bounds the sacct look-up)
    retries: int = 0  # launches after a crash, a lost job or a stop: the trial's one budget
    retried_job: str | None = None  # the job whose end the last retry answered (idempotent)
    cancelled_job: str | None = None  # a job the driver cancelled itself (not a user's scancel)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


def read_launch(trial: TrialDir) -> LaunchRecord:
    """The trial's launch record (empty when the driver never started it)."""
    try:
        data = read_json(trial.path / LAUNCH_FILE)
    except (GanHpcError, FileNotFoundError):
        return LaunchRecord()
    names = {f.name for f in dataclasses.fields(LaunchRecord)}
    return LaunchRecord(**{k: v for k, v in data.items() if k in names})


def update_launch(trial: TrialDir, **changes: Any) -> LaunchRecord:
    """Change some fields of the launch record (atomic write); returns the new record."""
    record = dataclasses.replace(read_launch(trial), **changes)
    atomic_write_json(trial.path / LAUNCH_FILE, record.to_dict())
    return record


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What a launcher needs to start one trial.

    ``settings`` is the backend's own block of the sweep spec (e.g. a ``SlurmConfig``), opaque
    here; None: the backend's defaults. How many threads a rank runs is the trial's own
    ``train.num_threads``, else the CPUs the backend gives it (:func:`trial_threads`).
    """

    world_size: int = 1
    cpus_per_trial: float = 1.0  # the sweep's resources.cpus_per_trial (the local launcher's share)
    nodes: int = 1
    settings: Any = None
    job_name: str = "gan-hpc"
    # the driver run whose job poller answers for the trial's job; "": it is asked about alone
    driver_token: str = ""
    # local launcher: where the driver's warm trainer takes trials (``Launcher.warm_trainer``);
    # "": every rank starts a fresh interpreter
    warm_dir: str = ""


class TrialJob(abc.ABC):
    """A running trial: a future-like handle on its ranks."""

    job_id: str

    @abc.abstractmethod
    def poll(self) -> int | None:
        """None while running, else the job's exit status (0 ok, 75 requeue, other failure)."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Ask the ranks to checkpoint and stop; force them after a grace period."""

    @abc.abstractmethod
    def failure_summary(self) -> str:
        """The job id and the tail of its error output, for a failed trial's message."""


class WarmTrainer:
    """The driver's warm trainer: a process that imported what a trial needs and forks trials."""

    directory: Path  # where the watchers give it their trials (``LaunchSpec.warm_dir``)


class Launcher(abc.ABC):
    """Starts trials; the same ``python -m gan_hpc.trial.train`` entry point whatever the backend.

    A backend implements :meth:`_spawn` and, when its jobs outlive the driver, :meth:`attach`
    and :meth:`reconcile`; the class attributes say what it needs from Ray and whether it can
    run the sweep's driver as a job of its own (:meth:`submit_driver`).
    """

    name: ClassVar[str]
    # CPUs a trial's Tune watcher holds; None: the trial's resources (its ranks run there)
    watcher_cpus: ClassVar[float | None] = None
    has_driver_job: ClassVar[bool] = False  # True: `sweep submit` can queue the driver
    # how often a watcher looks at its trial's files and job: each look is a few file reads
    poll_interval_s: ClassVar[float] = 0.5

    def warm_trainer(
        self, spec: LaunchSpec, num_threads: int | None
    ) -> contextlib.AbstractContextManager[WarmTrainer | None]:
        """A warm trainer the driver keeps for the watchers while the sweep runs; None: none.

        ``num_threads`` is the sweep's base ``train.num_threads``. Only a backend whose ranks
        run beside the driver keeps one.
        """
        return contextlib.nullcontext()

    def start(self, trial: TrialDir, spec: LaunchSpec) -> TrialJob:
        """Start the trial's ranks; the trial directory already holds ``config.json``.

        The intent (the next launch number) is recorded before anything starts, the job id
        right after, so a driver killed in between finds the job instead of starting another.
        """
        record = update_launch(
            trial, launch=read_launch(trial).launch + 1, job_id=None, intent_at=time.time()
        )
        job = self._spawn(trial, spec, record.launch)
        update_launch(trial, job_id=job.job_id)
        return job

    @abc.abstractmethod
    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Start launch number ``launch`` of the trial's ranks."""

    def attach(
        self, trial: TrialDir, spec: LaunchSpec, *, include_ended: bool = False
    ) -> TrialJob | None:
        """The trial's current job, to watch it again (None: none runs, start anew).

        Args:
            trial: the trial directory.
            spec: how the trial is launched.
            include_ended: also a job that ended unwatched, so the caller reads how it
                ended (a sweep's driver does; without it only a live or completed job).

        """
        return None

    def reconcile(
        self, spec: LaunchSpec, trials: Sequence[TrialDir], ended: Sequence[TrialDir]
    ) -> None:
        """Before a driver starts anything: stop what must not run (called once per driver).

        Args:
            spec: how the sweep's trials are launched.
            trials: every trial directory of the sweep.
            ended: those that have ended; any job of theirs still running is stopped.

        """
        return None

    def check(self, spec: LaunchSpec) -> None:
        """Raise :class:`LaunchError` (one line) when trials like ``spec`` cannot be started."""
        return None  # a launcher that starts local processes has nothing to ask

    def watch_jobs(
        self, spec: LaunchSpec, sweep_dir: Path
    ) -> contextlib.AbstractContextManager[Any]:
        """While open, the driver run ``spec.driver_token`` watches all its trials' jobs at once.

        The SLURM launcher polls the scheduler once per interval for every job
        (:mod:`gan_hpc.launchers.slurm_poll`); local processes need nothing.
        """
        return contextlib.nullcontext()

    def watcher_resources(self, cpus_per_trial: float, gpus_per_trial: float) -> dict[str, float]:
        """The Ray resources of one trial's watcher (``resources.cpus/gpus_per_trial``)."""
        if self.watcher_cpus is None:
            return {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
        return {"cpu": self.watcher_cpus}  # the backend's job holds the real resources

    def ray_cpus(self, max_concurrent_trials: int) -> int | None:
        """The CPUs the driver's Ray runtime declares; None: all of this machine's.

        Ray may keep one idle worker process per declared CPU (about 50 MiB each), so
        watchers that hold no real CPUs declare only their share: on a 128-core node the
        driver could otherwise keep up to 128 idle workers.
        """
        if self.watcher_cpus is None:
            return None
        return max(1, math.ceil(self.watcher_cpus * max_concurrent_trials))

    def submit_driver(
        self, spec_path: Path, sweep_dir: Path, spec: LaunchSpec, *, watched_trials: int
    ) -> str:
        """Queue the driver of the sweep in ``sweep_dir`` as a job; returns its job id.

        ``watched_trials`` is the most trials it watches at once (a backend may size the job).

        Raises:
            LaunchError: this backend has no driver job (one line saying what to do).

        """
        raise LaunchError(self.no_driver_job_reason())

    @classmethod
    def no_driver_job_reason(cls) -> str:
        """One line: this backend cannot queue the driver, and what to run instead."""
        return (
            f"launcher {cls.name} has no driver job: run `gan-hpc sweep run SPEC --launcher "
            f"{cls.name}` "
            "where the trials should run"
        )


def trial_threads(trial: TrialDir, allotted: int) -> int:
    """Threads per rank: the trial's ``train.num_threads``, else ``allotted`` (the rank's CPUs).

    The launchers hand the count to the ranks as OMP_NUM_THREADS, which torch follows too.

    Read without validating the config: one the trainer refuses still starts, and the
    trainer exits 2 saying why (``allotted`` stands in meanwhile).
    """
    try:
        threads = read_json(trial.config_path)["train"]["num_threads"]
    except (GanHpcError, FileNotFoundError, KeyError, TypeError):
        threads = None
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        return threads
    return max(1, allotted)


def train_command(trial: TrialDir) -> list[str]:
    """The command every rank runs."""
    return [sys.executable, "-m", "gan_hpc.trial.train", str(trial.path)]


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this child when its launcher dies (Linux).

    A killed driver then leaves no orphaned ranks writing into the trial directory; the resumed
    sweep restarts them from their checkpoint.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:
        pass
