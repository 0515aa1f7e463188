"""How a trial's watcher gets its trial run by the sweep's warm trainer, in another process.

A local sweep's driver starts one warm trainer (``python -m gan_hpc.trial.train --warm DIR``) as
it starts: it imports torch and the rest while Ray and Tune start, then forks one process per
trial it is given, so no trial waits for those imports and none slows a running trial by
importing beside it. The watchers, in Ray workers, give it their trials through DIR, a
directory only this user can write (``tempfile.mkdtemp``), in small JSON files:

``server.json``
    ``{"pid": N}``: the warm trainer, written by the driver as it starts it.
``<token>.request``
    ``{"argv", "env", "log", "watcher_pid"}``: a trial, as a cold trainer would be started;
    written by a watcher under a token of its own. The warm trainer renames it to
    ``<token>.taken`` before it forks, so it runs each request once.
``<token>.pid``
    ``{"pid": N}``: the forked process, written by the warm trainer once it exists.
``<token>.exit``
    ``{"code": N}``: that process's exit status as the warm trainer reaped it (``-9``: killed).

The forked process dies with the warm trainer and with the watcher that gave it the trial, as a
rank started by the watcher itself would (:func:`die_with`). This module is cheap to import:
the trainer, the launcher and the driver all use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

SERVER_FILE = "server.json"
REQUEST, TAKEN, PID, EXIT = ".request", ".taken", ".pid", ".exit"
POLL_S = 0.05  # how often the warm trainer looks for requests, and a watcher for its process
_PR_SET_PDEATHSIG = 1


def token_file(directory: Path, token: str, kind: str) -> Path:
    """The file of kind ``REQUEST``, ``TAKEN``, ``PID`` or ``EXIT`` of the request ``token``."""
    return directory / f"{token}{kind}"


def advertise(directory: Path, pid: int) -> None:
    """Name the warm trainer of ``directory`` (the driver, once it started it)."""
    _write(directory / SERVER_FILE, {"pid": pid})


def server_pid(directory: Path) -> int | None:
    """The warm trainer's pid; None when the directory has none (or is gone)."""
    try:
        return int(json.loads((directory / SERVER_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def submit(directory: Path, request: dict[str, Any]) -> str:
    """Give the warm trainer a trial; returns the request's token."""
    token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    _write(token_file(directory, token, REQUEST), request)
    return token


def withdraw(directory: Path, token: str) -> bool:
    """Take back a request the warm trainer has not taken; False when it already has."""
    try:
        token_file(directory, token, REQUEST).unlink()
    except FileNotFoundError:
        return False
    return True


def take_requests(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """In the warm trainer: the requests not yet taken, each renamed to ``.taken`` first."""
    taken = []
    for path in sorted(directory.glob(f"*{REQUEST}")):
        token = path.name.removesuffix(REQUEST)
        claimed = token_file(directory, token, TAKEN)
        try:
            os.rename(path, claimed)  # a watcher's withdraw() and this take race: one wins
        except FileNotFoundError:
            continue
        taken.append((token, json.loads(claimed.read_text())))
    return taken


def record_pid(directory: Path, token: str, pid: int) -> None:
    """In the warm trainer: name the process forked for ``token``."""
    _write(token_file(directory, token, PID), {"pid": pid})


def read_pid(directory: Path, token: str) -> int | None:
    """The process forked for ``token``; None until it exists."""
    try:
        return int(json.loads(token_file(directory, token, PID).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_exit(directory: Path, token: str, code: int) -> None:
    """In the warm trainer: the exit status of the process it forked for ``token``.

    A driver that already removed the directory has no watcher left to read it.
    """
    with contextlib.suppress(FileNotFoundError):
        _write(token_file(directory, token, EXIT), {"code": code})


def read_exit(directory: Path, token: str) -> int | None:
    """The exit status of the process forked for ``token``; None while it runs."""
    try:
        return int(json.loads(token_file(directory, token, EXIT).read_text())["code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def die_with_parent(parent: int) -> None:
    """In a forked process: SIGKILL when the warm trainer ``parent`` that forked it ends (Linux).

    A parent that ended before the request took effect already left the process an orphan:
    it ends now.
    """
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def die_with(pid: int) -> None:
    """In a forked process: SIGKILL this process when process ``pid`` (its watcher) ends.

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
