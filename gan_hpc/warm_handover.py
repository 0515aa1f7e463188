"""How a trial's watcher gets its trial run by the sweep's warm trainer, in another process.

A local sweep's driver starts one warm trainer (``python -m gan_hpc.trial.train --warm DIR``) as
it starts: it imports torch and the rest while Ray and Tune start, then forks one process per
trial it is given, so no trial waits for those imports and none slows a running trial by
importing beside it. The watchers, in Ray workers, give it their trials through DIR, a
directory only this user can write (``tempfile.mkdtemp``), in small JSON files:

``server.json``
    ``{"pid": N, "driver": M}``: the warm trainer and its driver, written by the driver as it
    starts it.
``<token>.request``
    ``{"argv", "env", "log", "watcher_pid"}``: a trial, as a cold trainer would be started;
    written by a watcher under a token of its own. The warm trainer renames it to
    ``<token>.taken`` before it forks, so it runs each request once.
``<token>.pid``
    ``{"pid": N}``: the forked process, written by that process first thing.
``<token>.exit``
    ``{"code": N}``: that process's exit status, written by the process as it ends, then by the
    warm trainer as it reaps it (``-9``: killed).

The forked process stops with the watcher that gave it the trial, as a rank started by the
watcher itself would (:func:`stop_with`), and only then: were it to die with the warm trainer
(itself the driver's child), a killed driver's watchers could see their trials end before they
end themselves, and count the end as a crash. This module is cheap to import: the trainer,
the launcher and the driver all use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SERVER_FILE = "server.json"
REQUEST, TAKEN, PID, EXIT = ".request", ".taken", ".pid", ".exit"
POLL_S = 0.05  # how often the warm trainer looks for requests, and a watcher for its process
ORPHAN_GRACE_S = 10.0  # a fork whose watcher died gets this long to checkpoint on SIGTERM


def token_file(directory: Path, token: str, kind: str) -> Path:
    """The file of kind ``REQUEST``, ``TAKEN``, ``PID`` or ``EXIT`` of the request ``token``."""
    return directory / f"{token}{kind}"


def advertise(directory: Path, pid: int) -> None:
    """Name the warm trainer of ``directory`` and its driver, this process."""
    _write(directory / SERVER_FILE, {"pid": pid, "driver": os.getpid()})


def server_pid(directory: Path) -> int | None:
    """The warm trainer's pid; None when the directory has none (or is gone)."""
    return _read_int(directory / SERVER_FILE, "pid")


def driver_pid(directory: Path) -> int | None:
    """The pid of the driver that started the warm trainer; None when unknown."""
    return _read_int(directory / SERVER_FILE, "driver")


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
    """In the forked process: name itself as the one forked for ``token``."""
    _write(token_file(directory, token, PID), {"pid": pid})


def read_pid(directory: Path, token: str) -> int | None:
    """The process forked for ``token``; None until it exists."""
    return _read_int(token_file(directory, token, PID), "pid")


def record_exit(directory: Path, token: str, code: int) -> None:
    """The exit status of the process forked for ``token`` (by it, or the warm trainer).

    A driver that already removed the directory has no watcher left to read it.
    """
    with contextlib.suppress(FileNotFoundError):
        _write(token_file(directory, token, EXIT), {"code": code})


def read_exit(directory: Path, token: str) -> int | None:
    """The exit status of the process forked for ``token``; None while it runs."""
    return _read_int(token_file(directory, token, EXIT), "code")


def stop_with(pid: int, grace_s: float = ORPHAN_GRACE_S) -> None:
    """In a forked process: stop this process when process ``pid`` (its watcher) ends.

    SIGTERM first (the trainer checkpoints at its next step and exits), then SIGKILL after
    ``grace_s``: what a killed driver's own ranks get from Ray, which signals the driver's
    process group as the driver dies. The warm trainer, started before Ray, is not in that
    group. The counterpart of ``PR_SET_PDEATHSIG`` for a process that is not our parent: a
    daemon thread waits on the watcher's pidfd.
    """
    try:
        watcher = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return

    def wait_then_stop() -> None:
        select.select([watcher], [], [])
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait_then_stop, name="stop-with-watcher", daemon=True).start()


def _read_int(path: Path, key: str) -> int | None:
    """The integer ``key`` of the JSON file ``path``; None when there is none yet."""
    try:
        return int(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` so that a reader sees all of it or no file (temp file, rename)."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps(payload))
    os.replace(staged, path)
