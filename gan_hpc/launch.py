"""Launchers: start a trial's ranks of ``python -m gan_hpc.train TRIAL_DIR`` and watch them.

Both launchers hand every rank the same environment contract (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT, or SLURM's equivalents), so the quick start, the tests and a cluster
sweep differ only in the launcher. The SLURM launcher lives in :mod:`gan_hpc.slurm_launch`, loaded
only when a sweep uses it.

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
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gan_hpc._logging import get_logger
from gan_hpc.dist_env import free_port
from gan_hpc.errors import GanHpcError, LaunchError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.sweep_spec import SlurmConfig, SweepSpec
from gan_hpc.trial_dir import WARM_TRAINER_FLAG, TrialDir

logger = get_logger(__name__)

CANCEL_GRACE_S = 30.0  # how long a cancelled trial may take to checkpoint before SIGKILL
STDERR_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1
LAUNCH_FILE = "launch.json"  # <trial_dir>/launch.json: the driver's launch record (intents)
# Exit statuses a launcher reports besides the trainer's own (0, 1, 2, 75; see trial_dir):
EXIT_CANCELLED = 130  # the job was cancelled by someone else (a user's scancel)
EXIT_LOST = 69  # the scheduler forgot the job (neither squeue nor sacct knows it): EX_UNAVAILABLE
LEFTOVER_GRACE_S = 20.0  # a leftover trainer gets this long to checkpoint on SIGTERM


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
    """What a launcher needs to start one trial."""

    world_size: int = 1
    nodes: int = 1
    threads_per_rank: int = 1
    slurm: SlurmConfig = field(default_factory=SlurmConfig)  # sbatch settings (slurm launcher)
    job_name: str = "gan-hpc"
    # the driver run whose job poller answers for the trial's job; "": it is asked about alone
    driver_token: str = ""
    # local launcher: after each start, keep a spare trainer per rank that imports torch
    # while the trial trains, for this process's next start (a sweep's reused watcher)
    use_warm_trainers: bool = False


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


class Launcher(abc.ABC):
    """Starts trials; the same ``python -m gan_hpc.train`` entry point whatever the backend."""

    name: str

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
        (:mod:`gan_hpc.slurm_poll`); local processes need nothing.
        """
        return contextlib.nullcontext()


def train_command(trial: TrialDir) -> list[str]:
    """The command every rank runs."""
    return [sys.executable, "-m", "gan_hpc.train", str(trial.path)]


def warm_trainer_command() -> list[str]:
    """A spare trainer: the same entry point, waiting for its trial on stdin."""
    return [sys.executable, "-m", "gan_hpc.train", WARM_TRAINER_FLAG]


class WarmTrainers:
    """Spare ``python -m gan_hpc.train --warm`` processes, one per rank of the next start.

    A fresh trainer spends seconds importing torch and the rest before its first step; a
    spare spends them while the previous trial trains. A spare is a child of this process
    (it dies with it, like any rank), so a reused Ray actor keeps its spares across trials.
    """

    def __init__(self) -> None:
        self._spares: list[tuple[int, subprocess.Popen[bytes]]] = []  # (threads, process)

    def take(self, threads_per_rank: int) -> subprocess.Popen[bytes] | None:
        """A live spare started for ``threads_per_rank`` threads, or None."""
        while self._spares:
            threads, process = self._spares.pop(0)
            if threads == threads_per_rank and process.poll() is None:
                return process
            _dismiss(process)
        return None

    def refill(self, count: int, threads_per_rank: int) -> None:
        """Start spares until ``count`` wait."""
        while len(self._spares) < count:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_rank), "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(
                warm_trainer_command(),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            self._spares.append((threads_per_rank, process))


def _dismiss(process: subprocess.Popen[bytes]) -> None:
    """End of input: a spare that has no trial exits."""
    if process.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            process.stdin.close()


def _hand_over(
    process: subprocess.Popen[bytes], trial: TrialDir, env: dict[str, str], log: Path
) -> bool:
    """Send a spare its trial; False when it died meanwhile (start a cold trainer instead)."""
    request = {"argv": train_command(trial)[3:], "env": env, "log": str(log)}
    assert process.stdin is not None
    try:
        process.stdin.write((json.dumps(request) + "\n").encode())
        process.stdin.close()
    except BrokenPipeError:
        return False
    return True


# the spares of this process: Tune reuses a watcher's actor, and each trial gets a new launcher
WARM_TRAINERS = WarmTrainers()


class LocalJob(TrialJob):
    """The ranks of one trial as child processes of this process."""

    def __init__(
        self, processes: Sequence[subprocess.Popen[bytes]], log_paths: Sequence[Path]
    ) -> None:
        self.processes = list(processes)
        self.log_paths = list(log_paths)
        self.job_id = "local:" + ",".join(str(p.pid) for p in processes)

    def poll(self) -> int | None:
        """Done when every rank has exited; one failed rank takes the others down."""
        codes = [p.poll() for p in self.processes]
        failed = [c for c in codes if c not in (None, 0)]
        if failed and any(c is None for c in codes):
            # a dead rank leaves the others blocked in a collective: stop them now
            self._terminate(signal.SIGKILL)
            codes = [p.wait() for p in self.processes]
        exited = [c for c in codes if c is not None]
        if len(exited) < len(codes):
            return None
        failed = [c for c in exited if c != 0]
        return failed[0] if failed else 0

    def cancel(self) -> None:
        """SIGTERM (the trainer checkpoints and exits), then SIGKILL after a grace period."""
        self._terminate(signal.SIGTERM)
        deadline = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
            time.sleep(0.1)
        self._terminate(signal.SIGKILL)
        for process in self.processes:
            process.wait()

    def failure_summary(self) -> str:
        """The last lines of each failed rank's log."""
        parts = [f"job {self.job_id}"]
        for rank, (process, log) in enumerate(zip(self.processes, self.log_paths, strict=False)):
            if process.returncode in (None, 0):
                continue
            parts.append(f"rank {rank} exited {process.returncode}: {_tail(log)}")
        return "; ".join(parts)

    def _terminate(self, sig: signal.Signals) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    process.send_signal(sig)
                except ProcessLookupError:
                    pass


class LocalLauncher(Launcher):
    """Runs each rank as a subprocess on this machine (gloo over 127.0.0.1 on CPU)."""

    name = "local"

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Start ``spec.world_size`` ranks with the torchrun environment contract."""
        stop_leftover_trainers([trial])  # a killed driver's ranks may still be exiting
        trial.logs.mkdir(parents=True, exist_ok=True)
        port = free_port()
        processes, logs = [], []
        for rank in range(spec.world_size):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(spec.world_size),
                "LOCAL_WORLD_SIZE": str(spec.world_size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "OMP_NUM_THREADS": str(spec.threads_per_rank),
                "PYTHONUNBUFFERED": "1",
            }
            log_path = trial.logs / f"rank-{rank}.log"
            spare = WARM_TRAINERS.take(spec.threads_per_rank) if spec.use_warm_trainers else None
            if spare is not None and _hand_over(spare, trial, env, log_path):
                processes.append(spare)
            else:
                with open(log_path, "ab") as log:
                    processes.append(
                        subprocess.Popen(
                            train_command(trial),
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent,
                        )
                    )
            logs.append(log_path)
        if spec.use_warm_trainers:
            WARM_TRAINERS.refill(spec.world_size, spec.threads_per_rank)
        job = LocalJob(processes, logs)
        trial.update_status(state="running", job_id=job.job_id)
        logger.debug("started %s for %s", job.job_id, trial.path)
        return job

    def attach(
        self, trial: TrialDir, spec: LaunchSpec, *, include_ended: bool = False
    ) -> TrialJob | None:
        """Local ranks die with the driver that started them: stop any still exiting."""
        stop_leftover_trainers([trial])
        return None

    def reconcile(
        self, spec: LaunchSpec, trials: Sequence[TrialDir], ended: Sequence[TrialDir]
    ) -> None:
        """No local trainer of this sweep may outlive its driver: stop the stragglers."""
        stop_leftover_trainers(trials)


def trainer_pids(trials: Sequence[TrialDir]) -> dict[int, Path]:
    """Processes running ``python -m gan_hpc.train`` on one of ``trials`` (pid -> trial dir).

    Read from ``/proc``, so it finds trainers whatever started them (a killed driver's
    watcher, a previous launch), and never a recycled pid of another program. A warm
    trainer names no trial on its command line; its stdout, ``<trial>/logs/rank-N.log``, does.
    """
    wanted = {str(t.path): t.path for t in trials} | {str(t.path.resolve()): t.path for t in trials}
    found: dict[int, Path] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if len(args) < 4 or args[1:3] != ["-m", "gan_hpc.train"]:
            continue
        trial = args[3]
        if trial == WARM_TRAINER_FLAG:
            try:
                trial = str(Path(os.readlink(entry / "fd" / "1")).parent.parent)
            except OSError:
                continue
        if trial in wanted:
            found[int(entry.name)] = wanted[trial]
    return found


def stop_leftover_trainers(trials: Sequence[TrialDir], grace_s: float = LEFTOVER_GRACE_S) -> int:
    """SIGTERM (checkpoint and exit), then SIGKILL, every trainer running one of ``trials``.

    Returns:
        how many trainer processes were found.

    """
    pids = trainer_pids(trials)
    for pid, path in pids.items():
        logger.warning("stopping leftover trainer %d of %s", pid, path)
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(pids)


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``; a process that is gone (or not ours) needs nothing more."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it only waits for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this child when its launcher dies (Linux).

    A killed driver then leaves no orphaned ranks writing into the trial directory; the resumed
    sweep restarts them from their checkpoint.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _tail(path: Path, num_lines: int = STDERR_TAIL_LINES) -> str:
    """The last lines of a log file, joined on ' | ' so the message stays one line."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in lines[-num_lines:] if line.strip())


def _slurm_launcher() -> Launcher:
    """The SLURM launcher; its module (and submitit) load only when a sweep uses it."""
    from gan_hpc.slurm_launch import SlurmLauncher

    return SlurmLauncher()


LAUNCHERS: dict[str, Callable[[], Launcher]] = {"local": LocalLauncher, "slurm": _slurm_launcher}


def get_launcher(name: str) -> Launcher:
    """The launcher called ``name``."""
    if name not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {name!r}; valid: {', '.join(sorted(LAUNCHERS))}")
    return LAUNCHERS[name]()


def launch_spec_for(
    spec: SweepSpec, *, driver_token: str = "", use_warm_trainers: bool = False
) -> LaunchSpec:
    """What the launcher needs to start a trial of ``spec``.

    Args:
        spec: the sweep's spec.
        driver_token: the driver run whose job poller answers for the trial's job.
        use_warm_trainers: keep spare trainers for the next local start (a sweep's watcher).

    """
    return LaunchSpec(
        world_size=spec.resources.world_size,
        nodes=spec.resources.nodes,
        slurm=spec.slurm,
        job_name=f"gan-hpc.{spec.name}",  # every job of the sweep: scancel --name stops them all
        driver_token=driver_token,
        use_warm_trainers=use_warm_trainers,
    )
