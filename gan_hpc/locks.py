"""Locks that a dead holder does not keep: one driver per sweep, one trainer per trial.

``DriverLock`` is a JSON file linked into place fully written and kept fresh by a heartbeat, so
it works on shared cluster filesystems where ``flock`` may not cross nodes; a lock whose holder
is dead (same host, pid gone) or silent (no heartbeat for ``stale_after_s``) is taken over by
exactly one racer, and the holder it was taken from notices at its next heartbeat.
``TrialLock`` is an ``flock`` on a file in the trial directory, released by the kernel when the
holding process dies; a new trainer waits for an old one that is still shutting down.
:func:`update_lock` is an ``flock`` held for one read-change-write of a small file that several
processes change (a trial's ``status.json``).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from gan_hpc._logging import ROOT_LOGGER_NAME, get_logger
from gan_hpc.errors import LaunchError, SweepError

logger = get_logger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
EXIT_LOST_LOCK = 2  # the CLI's exit code for a one-line error
_TAKEOVER_GENERATIONS = 16  # claims left by takers that died mid-takeover, skipped one by one


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exit_driver(message: str) -> None:
    """``on_lost`` for a sweep driver: log the one-line reason and end the process at once.

    The driver stops as if killed, a case the sweep is built to survive: it must not stop its
    trials (the new driver adopts them) nor write anything more into the sweep directory.
    """
    logger.critical("%s", message)
    for handler in logging.getLogger(ROOT_LOGGER_NAME).handlers:
        handler.flush()
    os._exit(EXIT_LOST_LOCK)


class DriverLock:
    """Exclusive right to drive one sweep directory, fenced by a token in the lock file.

    The lock file is written in full under a temporary name and linked into place, so no
    reader ever sees a half-written lock of ours. A lock is stale only when its heartbeat (the
    file's mtime) is older than ``stale_after_s``, or, for a fully written lock, when its
    holder's pid is gone on this host or its SLURM job was requeued. A stale lock is taken over
    by exactly one racer: the racer that creates the claim file named after the stale file's
    inode and mtime, which then renames its own lock over the stale one. The heartbeat touches
    the file only after checking (on the same open file) that it still holds this lock's token;
    a holder that finds another token has lost the lock, and calls ``on_lost`` with a one-line
    reason (``check()`` and ``__exit__`` then raise it as a :class:`SweepError`).

    Example:
        >>> with DriverLock(sweep_dir / "driver.lock", on_lost=exit_driver):
        ...     run_the_sweep()

    """

    def __init__(
        self,
        path: Path,
        *,
        stale_after_s: float = STALE_AFTER_S,
        heartbeat_s: float = HEARTBEAT_S,
        on_lost: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Describe the lock; nothing is taken before :meth:`acquire`.

        Args:
            path: the lock file.
            stale_after_s: a lock whose heartbeat is older than this is taken over.
            heartbeat_s: how often the holder touches the file and checks it still holds it.
            on_lost: called once, from the heartbeat thread, with a one-line reason when
                another driver has taken the lock over (e.g. :func:`exit_driver`).
            clock: wall clock compared with the file's mtime (tests pass a fake one).

        """
        self.path = Path(path)
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.on_lost = on_lost
        self.clock = clock
        self.token = uuid.uuid4().hex
        self.lost: str | None = None
        self._held: tuple[int, int] | None = None  # (st_dev, st_ino) of our lock file
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lock, or raise a one-line :class:`SweepError` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(200):
            if self._create():
                break
            try:
                judged = os.stat(self.path)
            except FileNotFoundError:
                continue  # released between our try and our look: try again
            holder = self._read_holder()
            if not self._is_stale(judged, holder):
                raise SweepError(self._held_message(holder)) from None
            if self._take_over(judged, holder):
                break
            # another racer holds the takeover claim (or the file changed): look again shortly
            time.sleep(0.005 * (1 + attempt % 10))
        else:
            raise SweepError(f"{self.path}: could not take the driver lock; retry")
        self._thread = threading.Thread(target=self._heartbeat, name="driver-lock", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise a one-line :class:`SweepError` when this driver no longer holds the lock."""
        if self.lost is None and self._held is not None and not self._still_mine(touch=False):
            self._lose()
        if self.lost is not None:
            raise SweepError(self.lost)

    def beat(self) -> bool:
        """One heartbeat: touch the lock if it is still ours; else mark it lost (returns False)."""
        if self.lost is not None:
            return False
        if self._still_mine(touch=True):
            return True
        self._lose()
        return False

    def release(self) -> None:
        """Stop the heartbeat and remove the lock file (only if it is still ours)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.lost is None and self._held is not None and self._still_mine(touch=False):
            # a takeover between this check and the unlink needs this driver to have been
            # silent for stale_after_s first, which a releasing driver is not
            self.path.unlink(missing_ok=True)
        self._held = None

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
        if self.lost is not None:
            raise SweepError(self.lost) from exc

    def _identity(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": time.time(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        }

    def _write_temp(self) -> Path:
        """Our lock, written in full and fsynced under a unique temporary name beside the lock."""
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.{self.token[:8]}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            os.fchmod(fd, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._identity(), handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return Path(name)

    def _create(self) -> bool:
        """Create the lock where none exists (atomically, fully written); False if one exists."""
        tmp = self._write_temp()
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            return self._create_exclusive()  # a filesystem without hard links
        finally:
            tmp.unlink(missing_ok=True)
        self._note_held()
        return True

    def _create_exclusive(self) -> bool:
        """``O_EXCL`` creation; the file is briefly empty, which others read as a fresh lock."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._identity(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        self._note_held()
        return True

    def _take_over(self, judged: os.stat_result, holder: dict[str, Any] | None) -> bool:
        """Replace the stale lock ``judged``; True for the one racer that does, else False."""
        stem = f".{self.path.name}.takeover-{judged.st_dev}-{judged.st_ino}-{judged.st_mtime_ns}"
        claim: Path | None = None
        for generation in range(_TAKEOVER_GENERATIONS):
            candidate = self.path.parent / f"{stem}-{generation}"
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:
                try:
                    claimed_at = candidate.stat().st_mtime
                except FileNotFoundError:
                    return False  # the taker finished and cleaned up: judge again
                if self.clock() - claimed_at <= self.stale_after_s:
                    return False  # another racer is taking it over right now
                continue  # that taker died mid-takeover: the next generation decides
            claim = candidate
            break
        if claim is None:
            return False
        try:
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                return False
            if (now.st_dev, now.st_ino, now.st_mtime_ns) != (
                judged.st_dev,
                judged.st_ino,
                judged.st_mtime_ns,
            ):
                return False  # its holder came back to life, or someone released it
            logger.warning("taking over stale driver lock %s (holder %s)", self.path, holder)
            tmp = self._write_temp()
            try:
                os.replace(tmp, self.path)  # the path always names a lock: no window to race
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self._note_held()
            return True
        finally:
            for stale_claim in self.path.parent.glob(f"{stem}-*"):
                stale_claim.unlink(missing_ok=True)

    def _note_held(self) -> None:
        st = os.stat(self.path)
        self._held = (st.st_dev, st.st_ino)
        self.lost = None

    def _read_holder(self) -> dict[str, Any] | None:
        """The holder's identity, or None when the file is gone, empty or partly written."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def _is_stale(self, judged: os.stat_result, holder: dict[str, Any] | None) -> bool:
        """A silent lock (old mtime), whatever its content; a dead or requeued full one early."""
        if self.clock() - judged.st_mtime > self.stale_after_s:
            return True
        if holder is None:  # a lock being written, or a damaged one: only silence makes it stale
            return False
        # a requeued driver job (maybe on another node) replaces its own earlier incarnation
        job_id = os.environ.get("SLURM_JOB_ID")
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if job_id and holder.get("slurm_job_id") == job_id:
            if int(holder.get("slurm_restart_count", 0)) < restarts:
                return True
        pid = holder.get("pid")
        same_host = holder.get("host") == socket.gethostname()
        return same_host and isinstance(pid, int) and not _pid_alive(pid)

    def _still_mine(self, *, touch: bool) -> bool:
        """True when the lock file is our file with our token; then touch it if asked."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:  # e.g. a network filesystem hiccup: judge again next beat
            logger.warning("cannot read driver lock %s: %s", self.path, exc)
            return True
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self._held:
                return False
            try:
                data = json.loads(os.read(fd, 1 << 16).decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return False
            if not isinstance(data, dict) or data.get("token") != self.token:
                return False
            if touch:
                os.utime(fd)  # the file just checked, not whatever the path names by now
            return True
        finally:
            os.close(fd)

    def _lose(self) -> None:
        holder = self._read_holder()
        self.lost = (
            f"{self.path.parent}: another driver took over this sweep "
            f"({self._describe(holder)}); this one stops, the other carries on"
        )
        self._held = None
        if self.on_lost is not None:
            self.on_lost(self.lost)
        else:
            logger.error("%s", self.lost)

    def _describe(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            return "lock file gone or being written"
        return f"pid {holder.get('pid')} on {holder.get('host')}"

    def _held_message(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            return (
                f"{self.path.parent}: another driver is taking the lock ({self.path} is being "
                f"written); stop it first, or delete {self.path} if no driver runs"
            )
        return (
            f"{self.path.parent}: already driven by pid {holder.get('pid')} on "
            f"{holder.get('host')} since {time.ctime(holder.get('started_at', 0))}; "
            f"stop it first, or delete {self.path} if that driver is gone"
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self.beat():
                return


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


@contextmanager
def update_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block.

    For a read-change-write that others make too: without it, one process's change is lost
    when another reads before it writes and writes after. Held for milliseconds, so it blocks.
    """
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
