"""The local launcher: each rank of a trial is a child process of the driver on this machine.

Ranks get the torchrun contract (gloo over 127.0.0.1 on CPU) and die with the process that
started them (``PR_SET_PDEATHSIG``). A restarted driver finds the ranks a killed one left in
``/proc`` (:func:`trainer_pids`) and stops them before it starts anything, so a trial never
runs twice. Local ranks cannot outlive the driver, so this backend has no driver job.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gan_hpc import spare_handover
from gan_hpc._logging import get_logger
from gan_hpc.dist_env import free_port
from gan_hpc.launchers.base import (
    Launcher,
    LaunchSpec,
    SpareTrainers,
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


def warm_trainer_command(spares_dir: Path) -> list[str]:
    """A spare trainer: the same entry point, waiting for its trial in ``spares_dir``."""
    return [sys.executable, "-m", "gan_hpc.trial.train", WARM_TRAINER_FLAG, str(spares_dir)]


class LocalSpares(SpareTrainers):
    """A local sweep's spare trainers, started by its driver before Ray and taken by the watchers.

    A fresh trainer spends seconds importing torch and the rest before its first step. The
    driver starts ``count`` spares (one per rank that can start at once) as the sweep starts,
    so the first trials' imports overlap Ray's and Tune's start; a spare a watcher took is
    replaced once it has begun its trial, because two interpreters importing at once slow each
    other down and the taken one is what the sweep waits for. The spares are children of the
    driver's main thread (``PR_SET_PDEATHSIG``); a spare that has its trial also dies with the
    watcher that took it (:mod:`gan_hpc.spare_handover`).
    """

    def __init__(self, count: int, threads: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="gan-hpc-spares-"))
        self.count, self.threads = count, threads
        self._waiting: list[subprocess.Popen[bytes]] = []  # not yet begun a trial
        self._training: list[subprocess.Popen[bytes]] = []  # began one: reaped when it ends
        self._broken = False  # a spare died before its trial: start no more

    def refill(self) -> None:
        """Start spares until ``count`` wait, unless a taken one still imports."""
        self._training = [p for p in self._training if p.poll() is None]
        waiting = []
        for process in self._waiting:
            if spare_handover.has_begun(self.directory, process.pid):
                self._training.append(process)
            elif process.poll() is not None:
                if not self._broken:
                    logger.warning(
                        "spare trainer %d exited with %s before its trial; trials start cold "
                        "(python -m gan_hpc.trial.train --warm %s shows why)",
                        process.pid,
                        process.returncode,
                        self.directory,
                    )
                self._broken = True
            else:
                waiting.append(process)
        self._waiting = waiting
        if self._broken or any(spare_handover.is_taken(self.directory, p.pid) for p in waiting):
            return
        while len(self._waiting) < self.count:
            env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen(
                warm_trainer_command(self.directory),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            spare_handover.advertise(self.directory, process.pid, self.threads)
            self._waiting.append(process)

    def close(self) -> None:
        """Stop the spares no trial runs in, and remove the directory."""
        for process in self._waiting:
            process.kill()
            process.wait()
        self._waiting = []
        shutil.rmtree(self.directory, ignore_errors=True)


class HandedSpare:
    """A rank running in one of the driver's spares: the few ``Popen`` calls a job makes of it.

    The spare is the driver's child, not this process's: it is watched through a pidfd (never a
    recycled pid), and its exit status is the one it left in the spares directory, -9 when it
    left none (it was killed).
    """

    def __init__(self, directory: Path, pid: int, pidfd: int) -> None:
        self.directory, self.pid, self._pidfd = directory, pid, pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while it runs, else its exit status."""
        if self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            code = spare_handover.read_exit(self.directory, self.pid)
            self.returncode = -signal.SIGKILL if code is None else code
            os.close(self._pidfd)
        return self.returncode

    def wait(self) -> int:
        """Block until it exits; its exit status."""
        while (code := self.poll()) is None:
            select.select([self._pidfd], [], [], 1.0)
        return code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless it has exited."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)


Rank = subprocess.Popen[bytes] | HandedSpare


def take_spare(directory: Path, threads: int, request: dict[str, object]) -> HandedSpare | None:
    """Give a waiting spare started for ``threads`` threads its trial; None when none waits."""
    for pid in spare_handover.waiting_spares(directory, threads):
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        if _command(pid) == warm_trainer_command(directory)[1:] and spare_handover.give(
            directory, pid, request
        ):
            return HandedSpare(directory, pid, pidfd)
        os.close(pidfd)
    return None


def _command(pid: int) -> list[str]:
    """The arguments of process ``pid`` after the interpreter ([] when it is gone)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [a.decode(errors="replace") for a in argv[1:] if a]


class LocalJob(TrialJob):
    """The ranks of one trial: child processes of this process, or spares it was given."""

    def __init__(self, processes: Sequence[Rank], log_paths: Sequence[Path]) -> None:
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

    @contextlib.contextmanager
    def spare_trainers(
        self, spec: LaunchSpec, num_threads: int | None, count: int
    ) -> Iterator[LocalSpares]:
        """``count`` spare trainers for the watchers, started now (see :class:`LocalSpares`)."""
        threads = num_threads or max(1, int(spec.cpus_per_trial // spec.world_size))
        spares = LocalSpares(count, threads)
        try:
            spares.refill()
            yield spares
        finally:
            spares.close()

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Start ``spec.world_size`` ranks with the torchrun environment contract."""
        stop_leftover_trainers([trial])  # a killed driver's ranks may still be exiting
        trial.logs.mkdir(parents=True, exist_ok=True)
        port = free_port()
        threads = trial_threads(trial, int(spec.cpus_per_trial // spec.world_size))
        processes: list[Rank] = []
        logs = []
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
            request = {
                "argv": train_command(trial)[3:],
                "env": env,
                "log": str(log_path),
                "watcher_pid": os.getpid(),
            }
            spare = take_spare(Path(spec.spares_dir), threads, request) if spec.spares_dir else None
            if spare is not None:
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
