"""The trainer's program around train_trial: ``python -m gan_hpc.trial.train``, ``gan-hpc train``.

Launchers start ``python -m gan_hpc.trial.train TRIAL_DIR`` (or the warm trainer, ``--warm DIR``);
:mod:`gan_hpc.trial.train`'s ``__main__`` hands its arguments to :func:`run_program`. Exit statuses
are in :mod:`gan_hpc.trial_dir` (0 finished, diverged or halted, 2 bad input, 75 checkpointed
on SIGTERM/SIGUSR1 and asking to be run again, 1 a crash).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import torch

from gan_hpc import warm_handover
from gan_hpc._logging import configure, get_logger
from gan_hpc.arguments import build_train_parser
from gan_hpc.config import load_trial_config
from gan_hpc.errors import GanHpcError, SpecError
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REQUEUE,
    WARM_TRAINER_FLAG,
    TrialDir,
)

logger = get_logger(__name__)


def run_from_args(args: argparse.Namespace) -> int:
    """Resolve the config and trial directory, train, and map the outcome to an exit status."""
    if args.config.is_dir():
        trial = TrialDir(args.out or args.config)
        config = TrialDir(args.config).read_config()
        if args.overrides:
            raise SpecError(f"{args.config}: --set cannot change an existing trial's config.json")
    else:
        if args.out is None:
            raise SpecError(
                f"{args.config}: --out DIR is required when training from a config file"
            )
        trial = TrialDir(args.out)
        config = load_trial_config(args.config, args.overrides)
        has_checkpoints = (
            any(trial.checkpoints.glob("*.pt")) if trial.checkpoints.is_dir() else False
        )
        if has_checkpoints and not args.resume:
            raise SpecError(
                f"{trial.path}: already holds checkpoints; pass --resume or choose a new --out"
            )
    result = train_trial(config, trial.path, stop_after_step=args.max_steps)
    return EXIT_REQUEUE if result.state == "preempted" else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gan_hpc.trial.train``: exit 0 ended, 2 bad input, 75 requeue, 1 crash."""
    args = build_train_parser().parse_args(argv)
    configure()
    try:
        return run_from_args(args)
    except GanHpcError as exc:
        print(f"gan-hpc train: error: {exc}", file=sys.stderr)  # noqa: T201 - program entry point
        return EXIT_BAD_INPUT
    except Exception:
        logger.exception("trial crashed")
        return EXIT_FAILED


def exit_without_teardown(status: int) -> NoReturn:
    """End the trainer's process with ``status``, skipping the interpreter's teardown.

    Unloading torch, scikit-learn and their threads takes up to a second, every trial,
    before the watcher sees the exit. By now everything durable is written, fsynced and closed
    (checkpoints, metrics, result.json, TensorBoard): only the logs and standard streams are
    flushed here.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)


def run_program(argv: Sequence[str]) -> int:
    """``python -m gan_hpc.trial.train ARGS``: the warm trainer (``--warm DIR``), or one trial."""
    if len(argv) == 2 and argv[0] == WARM_TRAINER_FLAG:
        return serve_warm(Path(argv[1]))
    return main(argv)


def serve_warm(directory: Path) -> int:
    """``python -m gan_hpc.trial.train --warm DIR``: import what a trial needs, then fork trials.

    A local sweep's driver starts this warm trainer before Ray, so no trial waits for the
    interpreter's start: torch, TorchDynamo (which the optimisers import on their first call),
    TensorBoard and the end-of-trial scorers, seconds of CPU each time. The watchers give it
    their trials through ``DIR`` (:mod:`gan_hpc.warm_handover`): the arguments, environment and
    log file that a cold ``python -m gan_hpc.trial.train`` would get, and the watcher's pid. It
    forks one process per trial, records each one's pid and, once it has reaped it, its exit
    status. It ends when the driver removes ``DIR``, or when the driver dies (the kernel sends
    it SIGTERM, and it removes ``DIR`` itself); a forked trial lives on until it ends or its
    watcher does (see :mod:`gan_hpc.warm_handover`).

    It runs no torch operation before forking: torch sizes its thread pools in the forked
    process (``train.num_threads``), and CUDA initialises there. Should an import ever
    initialise CUDA, it exits instead (a fork could not use it), and the trials start cold.

    Returns:
        0 once the directory is gone; 1 when it cannot fork trials.

    """

    def remove_directory_and_exit(signum: int, frame: FrameType | None) -> None:
        # its driver died (no longer its parent): nobody else will remove the directory; a
        # live driver's watchers still read their forks' exit files there
        if os.getppid() != warm_handover.driver_pid(directory):
            shutil.rmtree(directory, ignore_errors=True)
        os._exit(EXIT_OK)

    signal.signal(signal.SIGTERM, remove_directory_and_exit)
    # the driver starts it with SIGTERM blocked: one sent before now is handled here
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _import_trial_dependencies()
    if torch.cuda.is_initialized():
        return EXIT_FAILED
    gc.freeze()  # what the imports made is shared with every fork, never copied by the GC
    forked: dict[int, str] = {}  # pid -> request token
    while directory.is_dir():
        for token, request in warm_handover.take_requests(directory):
            # blocked across the fork: a SIGTERM must never run this process's handler there
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            pid = os.fork()
            if pid == 0:  # never returns into this loop, whatever happens in the trial
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                exit_without_teardown(_run_forked(directory, token, request))
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            forked[pid] = token
        while forked:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            warm_handover.record_exit(directory, forked.pop(pid), os.waitstatus_to_exitcode(status))
        time.sleep(warm_handover.POLL_S)
    return EXIT_OK


def _run_forked(directory: Path, token: str, request: dict[str, Any]) -> int:
    """In a process forked by :func:`serve_warm`: run the trial as a cold trainer would.

    The fork names itself first (were the warm trainer to die now, the trial still runs), and
    records its own exit status last.
    """
    code = EXIT_FAILED
    try:
        warm_handover.record_pid(directory, token, os.getpid())
        warm_handover.stop_with(int(request["watcher_pid"]))
        os.environ.clear()
        os.environ.update(request["env"])
        # the log takes over stdout and stderr: what the trial prints lands where a cold
        # start's would, and /proc/<pid>/fd/1 tells which trial it trains (trainer_pids)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, sys.stdout.fileno())
        os.dup2(log, sys.stderr.fileno())
        os.close(log)
        configure()
        logger.info("runs in a process forked from the sweep's warm trainer")
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except BaseException:  # noqa: BLE001 - a fork must never return into the warm trainer's loop
        logger.exception("trial crashed")
    with contextlib.suppress(OSError):
        warm_handover.record_exit(directory, token, code)
    return code


def _import_trial_dependencies() -> None:
    """Import the modules every trial loads on its way (seconds in a fresh interpreter)."""
    import torch._dynamo  # noqa: F401  # the optimisers' first call imports it (seconds)
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    from gan_hpc.bundle import scoring  # noqa: F401  # end-of-trial scores (scikit-learn, scipy)
