"""The local launcher: each rank of a trial is a child process of the driver on this machine.

Ranks get the torchrun contract (gloo over 127.0.0.1 on CPU) and die with the process that
started them (``PR_SET_PDEATHSIG``). A restarted driver finds the ranks a killed one left in
``/proc`` (:func:`trainer_pids`) and stops them before it starts anything, so a trial never
runs twice. Local ranks cannot outlive the driver, so this backend has no driver job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gan_hpc._logging import get_logger
from gan_hpc.dist_env import free_port
from gan_hpc.launchers.base import (
    Launcher,
    LaunchSpec,
    TrialJob,
    die_with_parent,
    train_command,
    trial_threads,
)
from gan_hpc.trial_dir import WARM_TRAINER_FLAG, TrialDir

logger = get_logger(__name__)

CANCEL_GRACE_S = 30.0  # how long a cancelled trial may take to checkpoint before SIGKILL
STDERR_TAIL_LINES = 20
LEFTOVER_GRACE_S = 20.0  # a leftover trainer gets this long to checkpoint on SIGTERM


def warm_trainer_command() -> list[str]:
    """A spare trainer: the same entry point, waiting for its trial on stdin."""
    return [sys.executable, "-m", "gan_hpc.trial.train", WARM_TRAINER_FLAG]


class WarmTrainers:
    """Spare ``python -m gan_hpc.trial.train --warm`` processes, one per rank of the next start.

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

# "<ranks>x<threads>": the spares each of a local sweep's Ray workers starts as it starts
SPARES_ENV = "GAN_HPC_SPARE_TRAINERS"


def start_spares_in_ray_worker() -> None:
    """Ray's worker setup hook in a local sweep: start this worker's spare trainers now.

    A watcher actor's first trial would start a cold trainer, seconds of imports after Tune
    gave it the trial; spares started with the worker import while the driver sets up. A spare
    that is not taken, or was started for another thread count, ends with its worker.
    """
    value = os.environ.get(SPARES_ENV, "")
    if value:
        ranks, threads = (int(part) for part in value.split("x"))
        try:
            WARM_TRAINERS.refill(ranks, threads)
        except OSError as exc:  # the worker must start regardless: its first trial starts cold
            logger.warning("no spare trainers in this Ray worker: %s", exc)


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

    def ray_worker_setup(
        self, spec: LaunchSpec, num_threads: int | None
    ) -> tuple[str, dict[str, str]] | None:
        """Each Ray worker starts a sweep's spare trainers as it starts (see the hook)."""
        if not spec.use_warm_trainers:
            return None
        threads = num_threads or max(1, int(spec.cpus_per_trial // spec.world_size))
        hook = f"{__name__}.{start_spares_in_ray_worker.__name__}"
        return hook, {SPARES_ENV: f"{spec.world_size}x{threads}"}

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Start ``spec.world_size`` ranks with the torchrun environment contract."""
        stop_leftover_trainers([trial])  # a killed driver's ranks may still be exiting
        trial.logs.mkdir(parents=True, exist_ok=True)
        port = free_port()
        threads = trial_threads(trial, int(spec.cpus_per_trial // spec.world_size))
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
                "OMP_NUM_THREADS": str(threads),
                "PYTHONUNBUFFERED": "1",
            }
            log_path = trial.logs / f"rank-{rank}.log"
            spare = WARM_TRAINERS.take(threads) if spec.use_warm_trainers else None
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
            WARM_TRAINERS.refill(spec.world_size, threads)
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
    """Processes running ``python -m gan_hpc.trial.train`` on one of ``trials`` (pid -> trial dir).

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
        if len(args) < 4 or args[1:3] != ["-m", "gan_hpc.trial.train"]:
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


def _tail(path: Path, num_lines: int = STDERR_TAIL_LINES) -> str:
    """The last lines of a log file, joined on ' | ' so the message stays one line."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in lines[-num_lines:] if line.strip())
