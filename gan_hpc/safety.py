"""Refuse to unpickle what another user could have written.

A resumed sweep and the trial watchers read pickles from the sweep directory (Ray's experiment
state and trial checkpoints, submitit's job and result files). Unpickling runs code, so a file
that someone else could write, or place through a directory they can write, would run their
code as you. Before anything is unpickled, the sweep directory, every directory in it and every
pickle in it must be owned by you (or root) and not writable by group or others; otherwise the
run stops with one line that says which path and how to fix it (``chmod go-w``).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from gan_hpc.errors import SweepError

PICKLE_SUFFIXES: tuple[str, ...] = (".pkl", ".pickle")


def _user(uid: int) -> str:
    """A user's name, or ``uid N`` when the system does not know it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _problem(path: Path, status: os.stat_result) -> str | None:
    """Why ``path`` is unsafe to trust (one line with the fix), or None when it is safe."""
    me = os.geteuid()
    if status.st_uid not in (me, 0):
        return (
            f"{path}: owned by {_user(status.st_uid)}, not by you ({_user(me)}); gan-hpc "
            "unpickles sweep state, which would run code they wrote: if you trust it, take it "
            f"over (`chown -R {_user(me)} {path}` as root), else start a new sweep"
        )
    writers = [
        who
        for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
        if status.st_mode & bit
    ]
    if writers:
        return (
            f"{path}: writable by {' and '.join(writers)} (mode "
            f"{stat.S_IMODE(status.st_mode):o}); gan-hpc unpickles sweep state, which would run "
            f"code they plant there: `chmod go-w {path}`"
        )
    return None


def check_safe_to_unpickle(path: Path, *, root: Path | None = None) -> None:
    """Raise unless ``path`` and the directories above it, up to ``root``, are safe to trust.

    Args:
        path: the file about to be unpickled.
        root: the highest directory to check (default: the file's own directory); a directory
            that others can write lets them replace any file below it.

    Raises:
        SweepError: one line naming the unsafe path and the fix.

    """
    path = Path(path)
    top = Path(root) if root is not None else path.parent
    if top not in path.parents:
        raise ValueError(f"{top} is not a directory above {path}")
    chain = [path, *path.parents[: path.parents.index(top) + 1]]
    for item in chain:
        try:
            problem = _problem(item, os.stat(item))
        except FileNotFoundError:
            continue
        if problem is not None:
            raise SweepError(problem)


def check_sweep_dir_safe(sweep_dir: Path) -> None:
    """Raise unless the sweep directory, every directory in it and every pickle are safe.

    Call it before anything in the sweep directory is unpickled (a resume, a watcher's first
    look at a job): a directory that others can write would let them plant a pickle later.

    Raises:
        SweepError: one line naming the first unsafe path and the fix (``chmod -R go-w`` when
            there are several).

    """
    sweep_dir = Path(sweep_dir)
    problems: list[str] = []
    try:
        top = _problem(sweep_dir, os.stat(sweep_dir))
    except FileNotFoundError:
        return
    if top is not None:
        problems.append(top)
    for dirpath, dirnames, filenames in os.walk(sweep_dir):
        here = Path(dirpath)
        names = [*dirnames, *(f for f in filenames if f.endswith(PICKLE_SUFFIXES))]
        for name in names:
            try:
                problem = _problem(here / name, os.stat(here / name))
            except FileNotFoundError:  # removed while we looked: nothing to unpickle there
                continue
            if problem is not None:
                problems.append(problem)
    if len(problems) == 1:
        raise SweepError(problems[0])
    if problems:
        raise SweepError(
            f"{problems[0]} (and {len(problems) - 1} more paths in {sweep_dir}; "
            f"`chmod -R go-w {sweep_dir}` fixes modes)"
        )
