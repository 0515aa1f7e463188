"""Launchers: start a trial's ranks of ``python -m gan_hpc.train TRIAL_DIR`` and watch them.

Both launchers hand every rank the same environment contract (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT, or SLURM's equivalents), so the quick start, the tests and a cluster
sweep differ only in the launcher. The job handle is saved in the trial's ``status.json``.
The SLURM launcher lives in :mod:`gan_hpc.slurm_launch`, loaded only when a sweep uses it.
"""

from __future__ import annotations

import abc
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gan_hpc._logging import get_logger
from gan_hpc.distributed import free_port
from gan_hpc.errors import LaunchError
from gan_hpc.sweep_spec import SlurmConfig, SweepSpec
from gan_hpc.trial_dir import TrialDir

logger = get_logger(__name__)

CANCEL_GRACE_S = 30.0  # how long a cancelled trial may take to checkpoint before SIGKILL
STDERR_TAIL_LINES = 20
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What a launcher needs to start one trial."""

    world_size: int = 1
    nodes: int = 1
    threads_per_rank: int = 1
    slurm: SlurmConfig = field(default_factory=SlurmConfig)  # sbatch settings (slurm launcher)
    job_name: str = "gan-hpc"


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

    @abc.abstractmethod
    def start(self, trial: TrialDir, spec: LaunchSpec) -> TrialJob:
        """Start the trial's ranks; the trial directory already holds ``config.json``."""

    def attach(self, trial: TrialDir, spec: LaunchSpec) -> TrialJob | None:
        """Re-attach to the trial's job if it is still queued or running (None: start anew)."""
        return None

    def check(self, spec: LaunchSpec) -> None:
        """Raise :class:`LaunchError` (one line) when trials like ``spec`` cannot be started."""
        return None  # a launcher that starts local processes has nothing to ask


def train_command(trial: TrialDir) -> list[str]:
    """The command every rank runs."""
    return [sys.executable, "-m", "gan_hpc.train", str(trial.path)]


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

    def start(self, trial: TrialDir, spec: LaunchSpec) -> TrialJob:
        """Start ``spec.world_size`` ranks with the torchrun environment contract."""
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
        job = LocalJob(processes, logs)
        trial.update_status(state="running", job_id=job.job_id)
        logger.debug("started %s for %s", job.job_id, trial.path)
        return job


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


def launch_spec_for(spec: SweepSpec) -> LaunchSpec:
    """What the launcher needs to start a trial of ``spec``."""
    return LaunchSpec(
        world_size=spec.resources.world_size,
        nodes=spec.resources.nodes,
        slurm=spec.slurm,
        job_name=f"gan-hpc.{spec.name}",  # every job of the sweep: scancel --name stops them all
    )
