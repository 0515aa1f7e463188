"""How a waiting spare trainer gets its trial from a watcher in another process.

A local sweep's driver starts spare trainers (``python -m gan_hpc.trial.train --warm DIR``) as it
starts, so that they import torch and the rest while Ray and Tune start; the watcher of each
trial, in a Ray worker, takes one. They meet in DIR, a directory only this user can write
(``tempfile.mkdtemp``), through a few small JSON files per spare, named by its pid:

``<pid>.spare``
    ``{"threads": N}``, written by the driver as it starts the spare. The spare removes it once
    it has read its request, so the driver knows the spare began its trial.
``<pid>.request``
    ``{"argv", "env", "log", "watcher_pid"}``: the trial, as a cold trainer would be started.
    The watcher writes it beside, then links it into place: ``os.link`` fails for a second
    watcher, so a spare is taken once.
``<pid>.exit``
    ``{"code": N}``: the trial's exit status, written by the spare just before it exits. The
    spare is the driver's child, so its watcher reads the status here (and waits on a pidfd).

A spare that has its trial dies with the watcher that took it, as a rank started by the watcher
itself would (:func:`die_with`). This module is cheap to import: the trainer, the launcher and
the driver all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
from pathlib import Path
from typing import Any

SPARE, REQUEST, EXIT = ".spare", ".request", ".exit"
REQUEST_POLL_S = 0.05  # how often a waiting spare looks for its request


def spare_file(directory: Path, pid: int, kind: str) -> Path:
    """The file of kind ``SPARE``, ``REQUEST`` or ``EXIT`` of the spare ``pid``."""
    return directory / f"{pid}{kind}"


def advertise(directory: Path, pid: int, threads: int) -> None:
    """Offer the new spare ``pid`` (started for ``threads`` threads) to the watchers."""
    _write(spare_file(directory, pid, SPARE), {"threads": threads})


def waiting_spares(directory: Path, threads: int) -> list[int]:
    """Pids of the spares started for ``threads`` threads that no watcher has taken yet."""
    pids = []
    for path in sorted(directory.glob(f"*{SPARE}")):
        pid = int(path.name.removesuffix(SPARE))
        if spare_file(directory, pid, REQUEST).exists():
            continue
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text()).get("threads") == threads:
                pids.append(pid)
    return pids


def give(directory: Path, pid: int, request: dict[str, Any]) -> bool:
    """Give the spare ``pid`` its trial; False when another watcher took it first."""
    staged = directory / f"{pid}{REQUEST}.{os.getpid()}.{threading.get_ident()}"
    _write(staged, request)
    try:
        os.link(staged, spare_file(directory, pid, REQUEST))
    except FileExistsError:
        return False
    finally:
        staged.unlink()
    return True


def has_begun(directory: Path, pid: int) -> bool:
    """True once the spare ``pid`` has read its request (its imports are done)."""
    return not spare_file(directory, pid, SPARE).exists()


def is_taken(directory: Path, pid: int) -> bool:
    """True once a watcher gave the spare ``pid`` a trial."""
    return spare_file(directory, pid, REQUEST).exists()


def wait_for_request(directory: Path) -> dict[str, Any] | None:
    """In the spare: wait for this process's request; None when the driver closed the directory."""
    pid = os.getpid()
    request_path = spare_file(directory, pid, REQUEST)
    while not request_path.exists():
        if not directory.is_dir():
            return None
        time.sleep(REQUEST_POLL_S)
    request: dict[str, Any] = json.loads(request_path.read_text())
    spare_file(directory, pid, SPARE).unlink(missing_ok=True)
    return request


def record_exit(directory: Path, code: int) -> None:
    """In the spare: leave this process's exit status for its watcher.

    A driver that already removed the directory has no watcher left to read it.
    """
    with contextlib.suppress(FileNotFoundError):
        _write(spare_file(directory, os.getpid(), EXIT), {"code": code})


def read_exit(directory: Path, pid: int) -> int | None:
    """The exit status the spare ``pid`` left; None when it left none (it was killed)."""
    try:
        return int(json.loads(spare_file(directory, pid, EXIT).read_text())["code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def die_with(pid: int) -> None:
    """In the spare: SIGKILL this process when process ``pid`` (its watcher) ends.

    The counterpart of ``PR_SET_PDEATHSIG`` for a process that is not our parent: a daemon
    thread waits on the watcher's pidfd.
    """
    try:
        watcher = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return

    def wait_then_die() -> None:
        select.select([watcher], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait_then_die, name="die-with-watcher", daemon=True).start()


def _write(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that a reader sees all of it or no file (temp file, rename)."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps(payload))
    os.replace(staged, path)
