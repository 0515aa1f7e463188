"""Sweeps on Ray Tune: OptunaSearch proposes, ASHA stops early, a light watcher runs each trial.

This module and :mod:`gan_hpc.sweep.watcher` are the only ones that import Ray, and this the only
one that imports Optuna. Each Tune trial is a :class:`~gan_hpc.sweep.watcher.TrialWatcher`: it
starts (or re-attaches to) the trial's ranks through a launcher, and streams ``metrics.jsonl``
into Tune. Progress is the trial's own ``step``.

Exactly once, whatever moment a driver dies. The sweep directory is the whole state of the
sweep; Ray's experiment is one driver's working copy and is never restored:

- :class:`SweepSearcher` creates each trial directory (``trials/trial_NNNN``, atomically by
  rename, with ``config.json``) *before* Tune runs the trial, after asking the Optuna study
  (stored in ``optuna.journal``) for its parameters. ``tune.num_samples`` counts directories.
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
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import is_quality_metric
from gan_hpc.errors import GanHpcError, SweepError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.locks import DriverLock, exit_driver
from gan_hpc.sweep.directory import BASELINES_FILE, RAY_DIR, SPEC_FILE, TRIALS_DIR, write_spec
from gan_hpc.sweep.leaderboard import write_leaderboard
from gan_hpc.sweep.progress import SweepProgress, SweepTally, ended_state, make_view
from gan_hpc.sweep.rank import sweep_leaderboard
from gan_hpc.sweep.search_space import Choice, Distribution, IntRange, LogUniform, Uniform
from gan_hpc.sweep.spec import (
    SweepSpec,
    conditions_hold,
    dump_sweep_spec,
    search_order,
    trial_config_for,
)
from gan_hpc.sweep.watcher import (
    DRIVER_EPOCH_FILE,
    PARAMS_FILE,
    STOP_FILE,
    TRIAL_KEY,
    SweepContext,
    TrialWatcher,
    has_ended_state,
)
from gan_hpc.trial_dir import CONFIG_FILE, FINAL_STATES, TrialDir

logger = get_logger(__name__)

DRIVER_LOCK_FILE = "driver.lock"
STUDY_FILE = "optuna.journal"  # the Optuna study: JournalStorage, no server, any shared FS
NEW_TRIALS_DIR = ".new-trials"  # trial directories are built here, then renamed into trials/
SEARCH_FILE = "search.json"  # <trial>/search.json: the Optuna trial number behind the trial
JOURNAL_LOCK_GRACE_S = 5  # a killed driver's journal lock is broken after this (one driver runs)


# ------------------------------------------------------------------- the sweep's trial ledger


def trial_dirs(sweep_dir: Path) -> list[TrialDir]:
    """The sweep's trial directories, sorted by name (each counts against num_samples)."""
    root = sweep_dir / TRIALS_DIR
    if not root.is_dir():
        return []
    return [TrialDir(p) for p in sorted(root.iterdir()) if p.is_dir()]


def has_ended(trial: TrialDir) -> bool:
    """True when the trial will never run again: a final state, or stopped by the scheduler."""
    return (trial.path / STOP_FILE).exists() or trial.read_status().state in FINAL_STATES


def read_params(trial: TrialDir) -> dict[str, Any]:
    """The searched parameters of a trial (``params.json``)."""
    try:
        params = read_json(trial.path / PARAMS_FILE)
    except (GanHpcError, FileNotFoundError):
        return {}
    return params if isinstance(params, dict) else {}


def final_values(trial: TrialDir, metrics: Sequence[str]) -> list[float] | None:
    """The last reported value of each metric (what Tune saw last), or None."""
    for record in reversed(trial.read_metrics()):
        values = [record.get(m) for m in metrics]
        if all(isinstance(v, (int, float)) for v in values):
            return [float(v) for v in values]
    return None


def record_stop(trial: TrialDir, step: int, reason: str) -> None:
    """Record the scheduler's decision to stop ``trial`` (before its job is cancelled)."""
    atomic_write_json(trial.path / STOP_FILE, {"step": step, "reason": reason, "at": time.time()})


class OptunaSpace:
    """A define-by-run Optuna space: conditional parameters are drawn only when they apply.

    A class rather than a closure because Ray pickles the searcher into the sweep's state.
    """

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.order = search_order(spec)

    def __call__(self, trial: optuna.Trial) -> None:
        """Suggest every parameter whose conditions hold, parents first."""
        drawn: dict[str, Any] = {}
        for key in self.order:
            if conditions_hold(self.spec, key, drawn):
                drawn[key] = _suggest(trial, key, self.spec.search[key])


def _suggest(trial: optuna.Trial, key: str, distribution: Distribution) -> Any:
    """One Optuna suggestion for a spec distribution."""
    if isinstance(distribution, Uniform):
        return trial.suggest_float(key, distribution.low, distribution.high)
    if isinstance(distribution, LogUniform):
        return trial.suggest_float(key, distribution.low, distribution.high, log=True)
    if isinstance(distribution, IntRange):
        return trial.suggest_int(key, distribution.low, distribution.high, step=distribution.step)
    if isinstance(distribution, Choice):
        return trial.suggest_categorical(key, list(distribution.values))
    raise SweepError(f"search.{key}: unsupported distribution {type(distribution).__name__}")


def make_sampler(spec: SweepSpec, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's Optuna sampler, seeded with ``spec.seed + seed_offset``."""
    settings = spec.tune
    seed = spec.seed + seed_offset
    if settings.search_alg == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.multi_objective_metrics:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, settings.num_samples // 4))


def open_study(spec: SweepSpec, sweep_dir: Path) -> optuna.Study:
    """The sweep's Optuna study, stored in ``<sweep_dir>/optuna.journal`` (created if absent).

    Plain Optuna opens it too::

        storage = JournalStorage(JournalFileBackend("<sweep_dir>/optuna.journal"))
        optuna.load_study(study_name="<sweep name>", storage=storage).trials
    """
    path = str(sweep_dir / STUDY_FILE)
    lock = JournalFileSymlinkLock(path, grace_period=JOURNAL_LOCK_GRACE_S)
    storage = JournalStorage(JournalFileBackend(path, lock_obj=lock))
    modes = spec.tune.multi_objective_modes or (spec.tune.mode,)
    return optuna.create_study(
        storage=storage,
        study_name=spec.name,
        sampler=make_sampler(spec),
        directions=["minimize" if m == "min" else "maximize" for m in modes],
        load_if_exists=True,
    )


def search_metrics(spec: SweepSpec) -> tuple[str, ...]:
    """The metric(s) the study optimises."""
    return spec.tune.multi_objective_metrics or (spec.tune.metric,)


class SweepSearcher(Searcher):
    """Tune's searcher: adopts the sweep's unfinished trial directories, then asks Optuna.

    The count of trial directories is the budget (``tune.num_samples``); the study lives in the
    sweep directory, so a restarted driver sees every trial with its value. Only the sweep
    directory's path and the spec cross the pickle: the state is re-read from disk.
    """

    def __init__(self, spec: SweepSpec, sweep_dir: str) -> None:
        super().__init__()
        self.spec = spec
        self.sweep_dir = sweep_dir
        self._study: optuna.Study | None = None
        self._adopt: list[str] = []
        self._trials: dict[str, str] = {}  # Tune trial id -> trial directory name

    def __getstate__(self) -> dict[str, Any]:
        """Only the settings cross the pickle; the study is re-opened from disk."""
        return {"spec": self.spec, "sweep_dir": self.sweep_dir, "metric": None, "mode": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from the settings."""
        self.__init__(state["spec"], state["sweep_dir"])  # type: ignore[misc]

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """The spec fixes metric and mode; Tune's are not used."""
        return True

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the state is the sweep directory (a marker for Tune)."""
        atomic_write_json(Path(checkpoint_path), {"sweep_dir": self.sweep_dir})

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: :meth:`reconcile` re-reads the sweep directory."""

    @property
    def root(self) -> Path:
        """The sweep directory."""
        return Path(self.sweep_dir)

    def study(self) -> optuna.Study:
        """The study, opened (and reconciled with the trial directories) on first use."""
        if self._study is None:
            self.reconcile()
        assert self._study is not None
        return self._study

    def reconcile(self) -> list[TrialDir]:
        """Match the study with the trial directories; queue unfinished trials for adoption.

        - a trial that ended while no driver watched it is told with its last value;
        - an Optuna trial asked for but never given a directory (the driver died in between)
          is failed, and an initial point it carried is queued again;
        - every trial directory that has not ended is adopted, before any new trial.

        Returns:
            the trial directories that have ended.

        """
        study = open_study(self.spec, self.root)
        if study.trials:  # a restarted driver: draw new points from a stream of their own
            study.sampler = make_sampler(self.spec, seed_offset=len(study.trials))
        if not study.user_attrs.get("initial_points_queued"):
            for point in self.spec.tune.initial_points:
                study.enqueue_trial(dict(point))
            study.set_user_attr("initial_points_queued", True)
        self._study = study
        shutil.rmtree(self.root / NEW_TRIALS_DIR, ignore_errors=True)
        claimed: set[int] = set()
        ended: list[TrialDir] = []
        self._adopt = []
        for trial in trial_dirs(self.root):
            number = self._number(trial)
            if number is not None:
                claimed.add(number)
            if has_ended(trial):
                ended.append(trial)
                self._tell(trial)
            else:
                self._adopt.append(trial.path.name)
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number in claimed:
                continue
            study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
            fixed = frozen.system_attrs.get("fixed_params")
            if isinstance(fixed, dict):
                study.enqueue_trial(fixed)
        if self._adopt:
            logger.info("adopting %d unfinished trial(s): %s", len(self._adopt), self._adopt)
        return ended

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """An unfinished trial directory first, else a new one; FINISHED at the budget."""
        self.study()
        if self._adopt:
            name = self._adopt.pop(0)
        elif len(trial_dirs(self.root)) >= self.spec.tune.num_samples:
            return Searcher.FINISHED  # type: ignore[return-value]
        else:
            name = self._new_trial()
        self._trials[trial_id] = name
        params = read_params(TrialDir(self.root / TRIALS_DIR / name))
        return {TRIAL_KEY: name, **params}

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        """Tell the study the trial's value once its directory says it has ended."""
        name = self._trials.get(trial_id)
        if name is None:
            return
        trial = TrialDir(self.root / TRIALS_DIR / name)
        if has_ended(trial):
            self._tell(trial)
        # else the watcher died without ending the trial: the next driver adopts it

    def _new_trial(self) -> str:
        """Ask the study for a point and create its trial directory (atomically)."""
        study = self.study()
        asked = study.ask()
        try:
            OptunaSpace(self.spec)(asked)
        except Exception:
            study.tell(asked, state=TrialState.FAIL)
            raise
        params = dict(asked.params)
        index = len(trial_dirs(self.root))
        while (self.root / TRIALS_DIR / f"trial_{index:04d}").exists():
            index += 1
        name = f"trial_{index:04d}"
        staging = TrialDir(self.root / NEW_TRIALS_DIR / name)
        shutil.rmtree(staging.path, ignore_errors=True)
        staging.path.mkdir(parents=True)
        atomic_write_json(staging.path / PARAMS_FILE, params)
        atomic_write_json(staging.path / SEARCH_FILE, {"optuna_trial": asked.number})
        try:
            staging.write_config(trial_config_for(self.spec, params))
        except GanHpcError as exc:  # an impossible combination: the trial fails, and counts
            staging.update_status(state="failed", message=str(exc)[-500:])
        (self.root / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
        os.rename(staging.path, self.root / TRIALS_DIR / name)
        asked.set_user_attr("trial_id", name)
        if not (self.root / TRIALS_DIR / name / CONFIG_FILE).exists():
            self._tell(TrialDir(self.root / TRIALS_DIR / name))
        return name

    @staticmethod
    def _number(trial: TrialDir) -> int | None:
        try:
            number = read_json(trial.path / SEARCH_FILE).get("optuna_trial")
        except (GanHpcError, FileNotFoundError):
            return None
        return int(number) if isinstance(number, int) else None

    def _tell(self, trial: TrialDir) -> None:
        """Tell the study how an ended trial did: its last value (failed: FAIL)."""
        number = self._number(trial)
        if number is None or self._study is None:
            return
        values = final_values(trial, search_metrics(self.spec))
        failed = trial.read_status().state == "failed"
        if values is None or failed:
            self._study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        else:
            self._study.tell(number, values, skip_if_finished=True)


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
            max_t=spec.base.train.num_steps,
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
        # imported here: every trial's watcher actor imports this module, and scoring's
        # scikit-learn and scipy would add a second to each actor's start
        from gan_hpc.bundle.scoring import write_baselines

        write_baselines(sweep_dir / BASELINES_FILE, spec.base, emit=emit)
        if len(trial_dirs(sweep_dir)) >= spec.tune.num_samples and len(ended) == len(
            trial_dirs(sweep_dir)
        ):
            emit(f"all {spec.tune.num_samples} trials have ended")
            return update_leaderboard(spec, sweep_dir)
        # one scheduler query per interval for all trials' jobs, answered to this run's watchers
        with launcher.watch_jobs(launch_spec_for(spec, driver_token=token), sweep_dir):
            _start_ray(num_cpus or launcher.ray_cpus(spec.tune.max_concurrent_trials))
            try:
                callbacks = [_progress(spec, sweep_dir, ended, emit=emit, use_bar=use_bar)]
                build_tuner(spec, sweep_dir, callbacks, driver_token=token).fit()
            finally:
                ray.shutdown()
        SweepSearcher(spec, str(sweep_dir)).reconcile()  # tell the study what ended last
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


def _start_ray(num_cpus: int | None) -> None:
    """Start a local Ray runtime with its console noise kept out of the way."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then really prints nothing
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray", "ray.tune", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
    )
