"""Locks that a dead holder does not keep: one driver per sweep, one trainer per trial.

``DriverLock`` is a JSON file created with ``O_EXCL`` and kept fresh by a heartbeat, so it works
on shared cluster filesystems where ``flock`` may not cross nodes; a lock whose holder is dead
(same host, pid gone) or silent (no heartbeat for ``stale_after_s``) is taken over.
``TrialLock`` is an ``flock`` on a file in the trial directory, released by the kernel when the
holding process dies; a new trainer waits for an old one that is still shutting down.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from gan_hpc._logging import get_logger
from gan_hpc.errors import LaunchError, SweepError
from gan_hpc.files import atomic_write_json

logger = get_logger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DriverLock:
    """Exclusive right to drive one sweep directory.

    Example:
        >>> with DriverLock(sweep_dir / "driver.lock"):
        ...     run_the_sweep()

    """

    def __init__(self, path: Path, *, stale_after_s: float = STALE_AFTER_S) -> None:
        self.path = Path(path)
        self.stale_after_s = stale_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock, or raise a one-line :class:`SweepError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._is_stale(holder):
                    raise SweepError(
                        f"{self.path.parent}: already driven by pid {holder.get('pid')} on "
                        f"{holder.get('host')} since {time.ctime(holder.get('started_at', 0))}; "
                        f"stop it first, or delete {self.path} if that driver is gone"
                    ) from None
                logger.warning("taking over stale driver lock %s (holder %s)", self.path, holder)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(self._identity(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            self._thread = threading.Thread(target=self._heartbeat, name="driver-lock", daemon=True)
            self._thread.start()
            return
        raise SweepError(f"{self.path}: could not take the driver lock; retry")

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._holder()
        mine = {"pid": os.getpid(), "host": socket.gethostname()}
        if holder is not None and all(holder.get(k) == v for k, v in mine.items()):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> DriverLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _identity(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": time.time(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        }

    def _holder(self) -> dict[str, Any] | None:
        """The holder's identity, or None when the file is gone or unreadable (torn write)."""
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        try:
            data["heartbeat_at"] = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        return data

    def _is_stale(self, holder: dict[str, Any]) -> bool:
        """A holder on this host whose pid is gone, or any holder silent for too long."""
        # a requeued driver job (maybe on another node) replaces its own earlier incarnation
        job_id = os.environ.get("SLURM_JOB_ID")
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if job_id and holder.get("slurm_job_id") == job_id:
            if int(holder.get("slurm_restart_count", 0)) < restarts:
                return True
        same_host = holder.get("host") == socket.gethostname()
        if same_host and not _pid_alive(int(holder.get("pid", -1))):
            return True
        return time.time() - float(holder.get("heartbeat_at", 0)) > self.stale_after_s

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                atomic_write_json(self.path, self._identity())


class TrialLock:
    """One trainer per trial directory (held by rank 0); waits for a predecessor to exit."""

    def __init__(self, path: Path, *, wait_s: float = 300.0) -> None:
        self.path = Path(path)
        self.wait_s = wait_s
        self._fd: int | None = None

    def __enter__(self) -> TrialLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + self.wait_s
        warned = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise LaunchError(
                        f"{self.path.parent}: another trainer still runs this trial after "
                        f"{self.wait_s:.0f} s; stop it (see {self.path}) and retry"
                    ) from None
                if not warned:
                    logger.warning("waiting for the previous run of %s to exit", self.path.parent)
                    warned = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
