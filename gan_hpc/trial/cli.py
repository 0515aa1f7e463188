"""The trainer's program around train_trial: ``python -m gan_hpc.trial.train``, ``gan-hpc train``.

Launchers start ``python -m gan_hpc.trial.train TRIAL_DIR`` (or a warm spare, ``--warm DIR``);
:mod:`gan_hpc.trial.train`'s ``__main__`` hands its arguments to :func:`run_program`. Exit statuses
are in :mod:`gan_hpc.trial_dir` (0 finished, diverged or halted, 2 bad input, 75 checkpointed
on SIGTERM/SIGUSR1 and asking to be run again, 1 a crash).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gan_hpc import spare_handover
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
    """``python -m gan_hpc.trial.train ARGS``: a warm spare for ``--warm DIR``, else one trial."""
    if len(argv) == 2 and argv[0] == WARM_TRAINER_FLAG:
        return serve_warm(Path(argv[1]))
    return main(argv)


def serve_warm(spares_dir: Path) -> int:
    """``python -m gan_hpc.trial.train --warm DIR``: import what a trial needs, then run its trial.

    A local sweep's driver starts this spare before Ray, so the trial a watcher gives it skips
    the interpreter's start: torch, TorchDynamo (which the optimisers import on their first
    call), TensorBoard and the end-of-trial scorers, several seconds in all. The request comes
    through ``DIR`` (:mod:`gan_hpc.spare_handover`): the arguments, environment and log file that
    a cold ``python -m gan_hpc.trial.train`` would get, and the watcher's pid. The spare dies with
    that watcher, and leaves its exit status in ``DIR`` for it. A spare whose driver closes
    ``DIR`` without giving it a trial exits.

    Returns:
        the trial's exit status, as :func:`main`'s.

    """
    _import_trial_dependencies()
    ready_at = time.monotonic()
    request = spare_handover.wait_for_request(spares_dir)
    if request is None:
        return EXIT_OK
    waited_s = time.monotonic() - ready_at
    spare_handover.die_with(int(request["watcher_pid"]))
    os.environ.clear()
    os.environ.update(request["env"])
    # the log takes over stdout and stderr: what the trial prints lands where a cold start's
    # would, and /proc/<pid>/fd/1 tells which trial this process trains (launch.trainer_pids)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, sys.stdout.fileno())
    os.dup2(log, sys.stderr.fileno())
    os.close(log)
    configure()
    logger.info("runs in a spare trainer (its imports were done %.1f s before)", waited_s)
    code = EXIT_FAILED
    try:
        code = main(request["argv"])
    finally:
        spare_handover.record_exit(spares_dir, code)
    return code


def _import_trial_dependencies() -> None:
    """Import the modules every trial loads on its way (seconds in a fresh interpreter)."""
    import torch._dynamo  # noqa: F401  # the optimisers' first call imports it (seconds)
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    from gan_hpc.bundle import scoring  # noqa: F401  # end-of-trial scores (scikit-learn, scipy)
