"""A sweep's driver: ``gan-hpc sweep run`` and ``sweep resume``, from the lock to the leaderboard.

What a driver does, in order:

1. checks the launcher's options (a refused sbatch option fails in one line) and takes the
   sweep's lock (``driver.lock``);
2. writes the spec (or checks it, when resuming) and a fresh token to ``driver_epoch.json``;
3. starts what takes seconds before the first trial: the local launcher's warm trainer and the
   baselines child (:mod:`gan_hpc.sweep.baselines`), both importing torch while the driver
   imports Ray Tune and Optuna (:mod:`gan_hpc.sweep.tune`, loaded only here) and starts Ray;
4. reconciles the sweep directory with the study and the scheduler, then runs Tune until every
   trial has ended;
5. tells the study what ended last, and rewrites the leaderboard.

Exactly once, whatever moment a driver dies. The sweep directory is the whole state of the
sweep; Ray's experiment is one driver's working copy and is never restored:

- The searcher creates each trial directory (``trials/trial_NNNN``, atomically by rename, with
  ``config.json``) *before* Tune runs the trial, after asking the Optuna study (stored in
  ``optuna.journal``) for its parameters. ``tune.num_samples`` counts directories.
- A driver starts a fresh Tuner: the searcher first hands Tune every trial directory that has
  not ended (adopting it, with its exact config), then new ones until there are
  ``num_samples``. A trial that ended while no driver watched it is told to the study with its
  last reported value; ASHA's rungs are refilled from every ``metrics.jsonl``.
- A trial has ended when ``status.json`` says so or the scheduler stopped it (``stop.json``,
  written before its job is cancelled). Launchers record each launch before it starts
  (``launch.json``) and look a job up before starting another (see :mod:`gan_hpc.launchers.base`).
- Each driver writes a fresh token to ``driver_epoch.json``; a watcher left over from a killed
  driver sees it change and never starts or cancels anything again.

Sweep directory::

    <sweep_dir>/spec.yaml            the resolved spec (what resume reads)
    <sweep_dir>/optuna.journal       the Optuna study (JournalStorage): every trial, its value
    <sweep_dir>/trials/<trial_id>/   trial directories (see gan_hpc.trial_dir)
    <sweep_dir>/ray/<name>-<time>/   one Ray Tune experiment per driver run
    <sweep_dir>/leaderboard.csv      the ranking, rewritten as trials end
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gan_hpc._logging import get_logger
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_json
from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.locks import DriverLock, exit_driver
from gan_hpc.sweep.baselines import BaselinesJob
from gan_hpc.sweep.directory import (
    DRIVER_EPOCH_FILE,
    DRIVER_LOCK_FILE,
    SPEC_FILE,
    STOP_FILE,
    has_ended_state,
    trial_dirs,
    write_spec,
)
from gan_hpc.sweep.spec import SweepSpec, dump_sweep_spec

logger = get_logger(__name__)


def prepare_sweep_dir(spec: SweepSpec, sweep_dir: Path) -> None:
    """Create the sweep directory and write the resolved spec (refusing a different one)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    rendered = dump_sweep_spec(spec)
    spec_path = sweep_dir / SPEC_FILE
    if spec_path.exists() and spec_path.read_text() != rendered:
        raise SweepError(
            f"{sweep_dir}: holds a sweep with a different spec; resume it with "
            f"`gan-hpc sweep resume {sweep_dir}` or pick another --out"
        )
    write_spec(sweep_dir, spec)


def has_tune_state(spec: SweepSpec, sweep_dir: Path) -> bool:
    """True when ``sweep_dir`` holds a sweep that :func:`run_sweep` can continue.

    The sweep directory itself is the state (spec, trials, study); a driver killed at any
    moment, even before Ray's first snapshot, leaves a sweep that continues.
    """
    return (Path(sweep_dir) / SPEC_FILE).exists()


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    *,
    restore: bool = False,
    emit: Callable[[str], None] = logger.info,
    num_cpus: int | None = None,
    use_bar: bool = False,
) -> Any:
    """Run a sweep, or finish one a previous driver left; returns the ranked leaderboard.

    Args:
        spec: the sweep's spec.
        sweep_dir: its directory.
        restore: continue the sweep in ``sweep_dir`` (its spec.yaml must exist).
        emit: where the live view's lines go.
        num_cpus: CPUs for the local Ray runtime (default: the launcher's
            :meth:`~gan_hpc.launchers.base.Launcher.ray_cpus`).
        use_bar: show the live view as a bar on stderr (a terminal), not lines through emit.

    """
    # a refused sbatch option fails here in one line, before any directory or Ray runtime
    launcher, launch_spec = get_launcher(spec.launcher), launch_spec_for(spec)
    launcher.check(launch_spec)
    sweep_dir = sweep_dir.resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    ray_cpus = num_cpus or launcher.ray_cpus(spec.tune.max_concurrent_trials)
    # a driver whose lock another took over exits at once, as if killed: the new one adopts
    with DriverLock(sweep_dir / DRIVER_LOCK_FILE, on_lost=exit_driver):
        if restore:
            if not (sweep_dir / SPEC_FILE).exists():
                raise SweepError(f"{sweep_dir}: no {SPEC_FILE}; is it a sweep directory?")
        else:
            prepare_sweep_dir(spec, sweep_dir)
        token = uuid.uuid4().hex
        # from here on, watchers of an older driver (still exiting) start and cancel nothing
        atomic_write_json(
            sweep_dir / DRIVER_EPOCH_FILE, {"token": token, "pid": os.getpid(), "at": time.time()}
        )
        warm = (
            launcher.warm_trainer(launch_spec, spec.base.train.num_threads)
            if _may_run_trials(spec, sweep_dir)
            else contextlib.nullcontext()
        )
        with warm as warm_trainer:
            # scored beside the driver's start and the trials, by a child that holds torch
            baselines = BaselinesJob(sweep_dir, emit=emit)
            # seconds of imports, while the warm trainer and the baselines child import theirs
            import optuna

            from gan_hpc.sweep import tune as sweep_tune
            from gan_hpc.sweep.optuna_search import SweepSearcher

            optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per told trial
            ended = SweepSearcher(spec, str(sweep_dir)).reconcile()
            launcher.reconcile(launch_spec, trial_dirs(sweep_dir), ended)
            for trial in ended:  # stopped by the scheduler just before a driver died
                if (trial.path / STOP_FILE).exists() and not has_ended_state(trial):
                    trial.update_status(state="stopped", message="stopped early by the scheduler")
            if len(trial_dirs(sweep_dir)) >= spec.tune.num_samples and len(ended) == len(
                trial_dirs(sweep_dir)
            ):
                emit(f"all {spec.tune.num_samples} trials have ended")
                baselines.finish()
                return sweep_tune.update_leaderboard(spec, sweep_dir)
            # one scheduler query per interval for all trials' jobs, for this run's watchers
            with launcher.watch_jobs(launch_spec_for(spec, driver_token=token), sweep_dir):
                with sweep_tune.ray_runtime(ray_cpus):
                    baselines.check_data()  # unreadable data stops the sweep before any trial
                    sweep_tune.fit(
                        spec,
                        sweep_dir,
                        ended,
                        driver_token=token,
                        warm_dir=str(warm_trainer.directory) if warm_trainer else "",
                        emit=emit,
                        use_bar=use_bar,
                    )
        SweepSearcher(spec, str(sweep_dir)).reconcile()  # tell the study what ended last
        baselines.finish()
        return sweep_tune.update_leaderboard(spec, sweep_dir)


def _may_run_trials(spec: SweepSpec, sweep_dir: Path) -> bool:
    """False when every trial the spec asks for has ended (a finished sweep starts nothing)."""
    trials = trial_dirs(sweep_dir)
    if len(trials) < spec.tune.num_samples:
        return True
    return not all(has_ended_state(t) or (t.path / STOP_FILE).exists() for t in trials)
