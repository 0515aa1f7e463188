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
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gan_hpc import warm_handover
from gan_hpc._logging import get_logger
from gan_hpc.dist_env import free_port
from gan_hpc.launchers.base import (
    Launcher,
    LaunchSpec,
    TrialJob,
    WarmTrainer,
    die_with_parent,
    train_command,
    trial_threads,
)
from gan_hpc.trial_dir import WARM_TRAINER_FLAG, TrialDir

logger = get_logger(__name__)

CANCEL_GRACE_S = 30.0  # how long a cancelled trial may take to checkpoint before SIGKILL
STDERR_TAIL_LINES = 20
WARM_DIR_PREFIX = "gan-hpc-warm-"  # a warm trainer's directory, under the temporary directory
STALE_WARM_DIR_S = 10.0  # a younger one may not have its server.json yet
LEFTOVER_GRACE_S = 20.0  # a leftover trainer gets this long to checkpoint on SIGTERM


WARM_START_TIMEOUT_S = 300.0  # how long a watcher waits for the warm trainer to take its trial
FORK_NAMES_ITSELF_S = 10.0  # a fork names itself this soon, even if its warm trainer just died


def warm_trainer_command(directory: Path) -> list[str]:
    """The warm trainer: the same entry point, forking the trials given in ``directory``."""
    return [sys.executable, "-m", "gan_hpc.trial.train", WARM_TRAINER_FLAG, str(directory)]


class LocalWarmTrainer(WarmTrainer):
    """A local sweep's warm trainer, started by its driver before Ray; it forks every trial.

    A fresh trainer spends seconds of CPU importing torch and the rest before its first step.
    The warm trainer imports them once, beside Ray's and Tune's start, then forks one process
    per trial a watcher gives it (:mod:`gan_hpc.warm_handover`): no trial waits for the
    imports, and no import competes with a running trial. It is a child of the driver's main
    thread (``PR_SET_PDEATHSIG``: SIGTERM, on which it removes its directory and exits); each
    forked trial stops with its watcher.
    """

    def __init__(self, threads: int) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=WARM_DIR_PREFIX))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            warm_trainer_command(self.directory),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_warm_trainer_preexec,
        )
        warm_handover.advertise(self.directory, self.process.pid)

    def close(self) -> None:
        """Remove the directory (the warm trainer then exits), then make sure it has."""
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def remove_stale_warm_directories(min_age_s: float = STALE_WARM_DIR_S) -> int:
    """Remove this user's warm directories whose warm trainer and driver have both ended.

    A warm trainer removes its directory when its driver dies, unless it was killed with it
    (a SIGKILL to the driver's whole process group): the next local sweep then removes it. A
    directory younger than ``min_age_s`` may not name its warm trainer yet, and is kept.

    Returns:
        how many directories were removed.

    """
    removed = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{WARM_DIR_PREFIX}*"):
        try:
            info = directory.lstat()
        except OSError:
            continue
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.getuid()
            or time.time() - info.st_mtime < min_age_s
        ):
            continue
        pids = (warm_handover.server_pid(directory), warm_handover.driver_pid(directory))
        if any(pid is not None and _alive(pid) for pid in pids):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed += 1
    return removed


def _warm_trainer_preexec() -> None:
    """In the warm trainer, before it runs: SIGTERM when the driver dies, held until it can act.

    It removes its directory on that SIGTERM (a killed driver leaves none behind); blocked
    here, a SIGTERM sent while it imports waits for the handler (see ``serve_warm``).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    die_with_parent(signal.SIGTERM)


class ForkedTrial:
    """A rank forked by the warm trainer: the few ``Popen`` calls a job makes of it.

    Not this process's child: it and the warm trainer are watched through pidfds (never a
    recycled pid), and its exit status is the one recorded as it ended (by itself, then by the
    warm trainer as it reaped it); -9 when it was killed and the warm trainer is gone.
    """

    def __init__(self, directory: Path, token: str, pid: int, server_fd: int) -> None:
        self.directory, self.token, self.pid = directory, token, pid
        self.returncode: int | None = None
        self._server_fd = server_fd
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # it has ended already: its status is, or will be, recorded
            self._pidfd = None

    def poll(self) -> int | None:
        """None while it runs, else its exit status."""
        if self.returncode is not None:
            return self.returncode
        # looked at before the read: once both have exited, the status is written if ever
        both_exited = _has_exited(self._pidfd) and _has_exited(self._server_fd)
        code = warm_handover.read_exit(self.directory, self.token)
        if code is None and both_exited:
            code = -signal.SIGKILL
        if code is not None:
            self.returncode = code
            for fd in (self._pidfd, self._server_fd):
                if fd is not None:
                    os.close(fd)
            self._pidfd = None
        return self.returncode

    def wait(self) -> int:
        """Block until it has exited and its status is known."""
        while (code := self.poll()) is None:
            time.sleep(warm_handover.POLL_S)
        return code

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless it has exited."""
        if self.poll() is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)


def _has_exited(pidfd: int | None) -> bool:
    """True when the process behind ``pidfd`` has exited (None: it had before we looked)."""
    return pidfd is None or bool(select.select([pidfd], [], [], 0)[0])


Rank = subprocess.Popen[bytes] | ForkedTrial


def run_warm(directory: Path, request: dict[str, object]) -> ForkedTrial | None:
    """Have the warm trainer of ``directory`` fork this rank; None: start it cold instead.

    Waits while the warm trainer still imports (seconds, as a sweep starts). None when there
    is no warm trainer, it died, or it did not fork the request in time (the request is then
    withdrawn, so the rank never runs twice).
    """
    server = warm_handover.server_pid(directory)
    if server is None:
        return None
    try:
        server_fd = os.pidfd_open(server)
    except ProcessLookupError:
        return None
    if _command(server) != warm_trainer_command(directory)[1:]:  # a recycled pid
        os.close(server_fd)
        return None
    token = warm_handover.submit(directory, request)
    deadline = time.monotonic() + WARM_START_TIMEOUT_S
    died_at: float | None = None
    while (pid := warm_handover.read_pid(directory, token)) is None:
        if died_at is None and _has_exited(server_fd):
            died_at = time.monotonic()
        late = died_at is not None or time.monotonic() > deadline
        # a request it took is forked, and the fork names itself at once, unless the warm
        # trainer died before forking: only then may the rank start cold
        if (late and warm_handover.withdraw(directory, token)) or (
            died_at is not None and time.monotonic() - died_at > FORK_NAMES_ITSELF_S
        ):
            logger.warning("the warm trainer %d did not take a trial; starting it cold", server)
            os.close(server_fd)
            return None
        time.sleep(warm_handover.POLL_S)
    return ForkedTrial(directory, token, pid, server_fd)


def _command(pid: int) -> list[str]:
    """The arguments of process ``pid`` after the interpreter ([] when it is gone)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [a.decode(errors="replace") for a in argv[1:] if a]


class LocalJob(TrialJob):
    """The ranks of one trial: child processes of this process, or forked by the warm trainer."""

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
    # a look is a read of local files: the next trial starts within 0.1 s of the last one's end
    poll_interval_s = 0.1

    @contextlib.contextmanager
    def warm_trainer(self, spec: LaunchSpec, num_threads: int | None) -> Iterator[LocalWarmTrainer]:
        """A warm trainer for the sweep's watchers, started now (see :class:`LocalWarmTrainer`)."""
        remove_stale_warm_directories()
        warm = LocalWarmTrainer(num_threads or max(1, int(spec.cpus_per_trial // spec.world_size)))
        try:
            yield warm
        finally:
            warm.close()

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Start ``spec.world_size`` ranks with the torchrun environment contract."""
        stop_leftover_trainers([trial])  # a killed driver's ranks may still be exiting
        trial.logs.mkdir(parents=True, exist_ok=True)
        trial.update_status(state="running")  # now: once a rank runs, it writes the state
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
            forked = run_warm(Path(spec.warm_dir), request) if spec.warm_dir else None
            if forked is not None:
                processes.append(forked)
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
        trial.update_status(job_id=job.job_id)
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
        args = _command(int(entry.name))
        if len(args) < 3 or args[:2] != ["-m", "gan_hpc.trial.train"]:
            continue
        trial = args[2]
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
