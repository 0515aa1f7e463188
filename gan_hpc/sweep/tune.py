"""Sweeps on Ray Tune: OptunaSearch proposes, ASHA stops early, a light watcher runs each trial.

The searcher and its Optuna study are in :mod:`gan_hpc.sweep.optuna_search`. Each Tune trial is
a :class:`~gan_hpc.sweep.watcher.TrialWatcher`: it starts (or re-attaches to) the trial's ranks
through a launcher, and streams ``metrics.jsonl`` into Tune. Progress is the trial's own
``step``.

Exactly once, whatever moment a driver dies. The sweep directory is the whole state of the
sweep; Ray's experiment is one driver's working copy and is never restored:

- The searcher creates each trial directory (``trials/trial_NNNN``, atomically by rename, with
  ``config.json``) *before* Tune runs the trial, after asking the Optuna study (stored in
  ``optuna.journal``) for its parameters. ``tune.num_samples`` counts directories.
- A driver (``sweep run`` or ``sweep resume``) starts a fresh Tuner: the searcher first hands
  Tune every trial directory that has not ended (adopting it, with its exact config), then new
  ones until there are ``num_samples``. A trial that ended while no driver watched it is told to
  the study with its last reported value; ASHA's rungs are refilled from every
  ``metrics.jsonl``.
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

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import is_quality_metric
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_json
from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.locks import DriverLock, exit_driver
from gan_hpc.sweep.baselines import BaselinesJob
from gan_hpc.sweep.directory import (
    RAY_DIR,
    SPEC_FILE,
    TRIALS_DIR,
    trial_dirs,
    write_spec,
)
from gan_hpc.sweep.leaderboard import write_leaderboard
from gan_hpc.sweep.optuna_search import SweepSearcher
from gan_hpc.sweep.progress import SweepProgress, SweepTally, ended_state, make_view
from gan_hpc.sweep.rank import sweep_leaderboard
from gan_hpc.sweep.spec import SweepSpec, dump_sweep_spec
from gan_hpc.sweep.watcher import (
    DRIVER_EPOCH_FILE,
    STOP_FILE,
    TRIAL_KEY,
    SweepContext,
    TrialWatcher,
    has_ended_state,
)
from gan_hpc.trial_dir import TrialDir

logger = get_logger(__name__)

DRIVER_LOCK_FILE = "driver.lock"


def record_stop(trial: TrialDir, step: int, reason: str) -> None:
    """Record the scheduler's decision to stop ``trial`` (before its job is cancelled)."""
    atomic_write_json(trial.path / STOP_FILE, {"step": step, "reason": reason, "at": time.time()})


class _ByTrialDir:
    """A trial as the schedulers key it: by its directory's name, the same for every driver."""

    def __init__(self, trial: Trial) -> None:
        self.trial_id = str(trial.config.get(TRIAL_KEY, trial.trial_id))


class SweepASHA(ASHAScheduler):
    """ASHA on the trial's own step, keyed by trial directory, its rungs refilled from disk.

    Before its first decision it replays every ``metrics.jsonl`` of the sweep into the rungs,
    so decisions after a restart count the reports made before it. A stop is recorded in the
    trial directory (``stop.json``) before Tune cancels the trial's job.
    """

    def __init__(self, *, sweep_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep_dir = sweep_dir
        self._history_loaded = False

    def load_history(self) -> int:
        """Record every trial's past reports in the rungs (once); returns how many."""
        if self._history_loaded:
            return 0
        self._history_loaded = True
        bracket = self._brackets[0]
        time_attr, metric, sign = str(self._time_attr), str(self._metric), self._metric_op or 1.0
        count = 0
        for trial in trial_dirs(Path(self.sweep_dir)):
            key = _Key(trial.path.name)
            seen: set[int] = set()
            for record in trial.read_metrics():
                step, value = record.get(time_attr), record.get(metric)
                if not isinstance(step, int) or not isinstance(value, (int, float)):
                    continue
                if step in seen or step >= self._max_t:
                    continue
                seen.add(step)
                bracket.on_result(key, step, sign * value)  # type: ignore[arg-type]
                count += 1
        return count

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        """Load the history, then place the trial in a bracket."""
        self.load_history()
        super().on_trial_add(tune_controller, _ByTrialDir(trial))  # type: ignore[arg-type]

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        """ASHA's decision; a stop before the end is recorded in the trial directory.

        A trial at ``max_t`` is not stopped: it ends by itself, after scoring its checkpoints.
        """
        self.load_history()
        if result.get(str(self._time_attr), 0) >= self._max_t:
            return str(TrialScheduler.CONTINUE)
        action = super().on_trial_result(
            tune_controller,
            _ByTrialDir(trial),  # type: ignore[arg-type]
            result,
        )
        step = int(result.get(str(self._time_attr), 0))
        if action == TrialScheduler.STOP and step < self._max_t and not result.get("done"):
            key = _ByTrialDir(trial).trial_id
            record_stop(TrialDir(Path(self.sweep_dir) / TRIALS_DIR / key), step, "asha")
        return str(action)

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        """Record the trial's last report."""
        key = _ByTrialDir(trial)
        if key.trial_id in self._trial_info:
            super().on_trial_complete(tune_controller, key, result)  # type: ignore[arg-type]

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        """Forget the trial's bracket."""
        self._trial_info.pop(_ByTrialDir(trial).trial_id, None)


class _Key:
    """A trial id only: what ASHA's rungs need of a trial."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def _describe_end(spec: SweepSpec, sweep_dir: Path, trial_id: str) -> str:
    """The ranking score of an ended trial's best checkpoint (result.json), as the view shows it."""
    if not is_quality_metric(spec.ranking.score):
        return ""
    result = TrialDir(sweep_dir / TRIALS_DIR / trial_id).read_result()
    best = result.best if result is not None else None
    value = best.score(spec.ranking) if best is not None else math.nan
    if not math.isfinite(value):
        return ""
    return f" ({spec.ranking.score}={value:.4g} on the {spec.ranking.score_split} split)"


def _name(trial: Trial) -> str:
    """A Tune trial's trial directory name (what the live view and the leaderboard show)."""
    return str(trial.config.get(TRIAL_KEY, trial.trial_id))


def build_tuner(
    spec: SweepSpec,
    sweep_dir: Path,
    callbacks: Sequence[tune.Callback],
    *,
    driver_token: str = "",
) -> tune.Tuner:
    """A fresh Tuner for this driver run of ``spec``: it adopts the unfinished trials first.

    Tune is never restored from its own snapshot: the sweep directory holds the state (trial
    directories, the Optuna study, metrics for ASHA), so nothing depends on when Tune last
    saved. Each driver run gets its own experiment directory under ``<sweep_dir>/ray``.
    """
    context = SweepContext(sweep_dir=str(sweep_dir), driver_token=driver_token)
    resources = get_launcher(spec.launcher).watcher_resources(
        spec.resources.cpus_per_trial, spec.resources.gpus_per_trial
    )
    trainable = tune.with_resources(tune.with_parameters(TrialWatcher, context=context), resources)
    tune_settings = spec.tune
    searcher = ConcurrencyLimiter(
        SweepSearcher(spec, str(sweep_dir)), max_concurrent=tune_settings.max_concurrent_trials
    )
    scheduler: TrialScheduler
    if tune_settings.scheduler == "asha":
        scheduler = SweepASHA(
            sweep_dir=str(sweep_dir),
            time_attr=names.STEP,
            metric=tune_settings.metric,
            mode=tune_settings.mode,
            max_t=spec.max_num_steps,  # the longest trial the search can draw
            grace_period=tune_settings.grace_period_steps,
            reduction_factor=tune_settings.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    run_name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{driver_token[:6]}"
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=-1,  # the searcher counts trial directories against num_samples
            trial_dirname_creator=lambda trial: trial.trial_id,
            # one watcher actor watches trial after trial: no actor start per trial, and the
            # local launcher's warm trainers (imported while the last trial trained) carry over
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_name,
            storage_path=str((sweep_dir / RAY_DIR).resolve()),
            callbacks=list(callbacks),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2,
                checkpoint_frequency=1 if tune_settings.checkpoint_every_report else 0,
            ),
            # one retry budget per trial: the watcher's (launch.json), never Ray's on top
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


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
        ended = SweepSearcher(spec, str(sweep_dir)).reconcile()
        launcher.reconcile(launch_spec, trial_dirs(sweep_dir), ended)
        for trial in ended:  # stopped by the scheduler just before a driver died
            if (trial.path / STOP_FILE).exists() and not has_ended_state(trial):
                trial.update_status(state="stopped", message="stopped early by the scheduler")
        # scored beside Ray's start and the trials, by a child that holds torch and the data
        baselines = BaselinesJob(sweep_dir, emit=emit)
        if len(trial_dirs(sweep_dir)) >= spec.tune.num_samples and len(ended) == len(
            trial_dirs(sweep_dir)
        ):
            emit(f"all {spec.tune.num_samples} trials have ended")
            baselines.finish()
            return update_leaderboard(spec, sweep_dir)
        # one scheduler query per interval for all trials' jobs, answered to this run's watchers
        with launcher.watch_jobs(launch_spec_for(spec, driver_token=token), sweep_dir):
            _start_ray(
                num_cpus or launcher.ray_cpus(spec.tune.max_concurrent_trials),
                launcher.ray_worker_setup(
                    launch_spec_for(spec, use_warm_trainers=True), spec.base.train.num_threads
                ),
            )
            try:
                baselines.check_data()  # unreadable data stops the sweep before any trial
                callbacks = [_progress(spec, sweep_dir, ended, emit=emit, use_bar=use_bar)]
                build_tuner(spec, sweep_dir, callbacks, driver_token=token).fit()
            finally:
                ray.shutdown()
        SweepSearcher(spec, str(sweep_dir)).reconcile()  # tell the study what ended last
        baselines.finish()
        return update_leaderboard(spec, sweep_dir)


def _progress(
    spec: SweepSpec,
    sweep_dir: Path,
    ended: Sequence[TrialDir],
    *,
    emit: Callable[[str], None],
    use_bar: bool,
) -> SweepProgress:
    """The live view, counting the trials that ended before this driver."""
    tally = SweepTally(
        num_samples=spec.tune.num_samples,
        num_steps=spec.base.train.num_steps,
        metric=spec.tune.metric,
        mode=spec.tune.mode,
        started_at=time.monotonic(),
    )
    for trial in ended:
        tally.end(trial.path.name, ended_state(trial.read_status().state), tally.started_at)
    tally.adopted = {t.path.name for t in trial_dirs(sweep_dir)} - set(tally.ended)
    return SweepProgress(
        tally,
        make_view(tally, name=spec.name, emit=emit, use_bar=use_bar),
        name_of=_name,
        on_trial_end=lambda _: update_leaderboard(spec, sweep_dir),
        describe_end=lambda trial_id: _describe_end(spec, sweep_dir, trial_id),
    )


def update_leaderboard(spec: SweepSpec, sweep_dir: Path) -> Any:
    """Rank the sweep's trials (with baselines and confirmations); rewrite ``leaderboard.csv``."""
    leaderboard = sweep_leaderboard(sweep_dir, spec.ranking)
    write_leaderboard(sweep_dir, leaderboard)
    return leaderboard


def has_tune_state(spec: SweepSpec, sweep_dir: Path) -> bool:
    """True when ``sweep_dir`` holds a sweep that :func:`run_sweep` can continue.

    The sweep directory itself is the state (spec, trials, study); a driver killed at any
    moment, even before Ray's first snapshot, leaves a sweep that continues.
    """
    return (Path(sweep_dir) / SPEC_FILE).exists()


def _start_ray(num_cpus: int | None, worker_setup: tuple[str, dict[str, str]] | None) -> None:
    """Start a local Ray runtime with its console noise kept out of the way.

    ``worker_setup`` is the launcher's hook that each Ray worker runs as it starts, and the
    environment the hook reads (the workers inherit the driver's).
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then really prints nothing
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own CSV, JSON and TensorBoard loggers copy what each trial directory already has;
    # the TensorBoard one alone imports torch into the driver (1.5 s, 0.2 GiB)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray", "ray.tune", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)
    runtime_env = None
    if worker_setup is not None:
        hook, env = worker_setup
        os.environ.update(env)
        runtime_env = {"worker_process_setup_hook": hook}
    ray.init(
        runtime_env=runtime_env,
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
    )
