"""Sweeps on Ray Tune: OptunaSearch proposes, ASHA stops early, a light watcher runs each trial.

The driver's procedure (lock, reconcile, start, end) is :mod:`gan_hpc.sweep.driver`; this module
holds what it runs on Ray: the runtime (:func:`ray_runtime`, its workers forked by
:mod:`gan_hpc.sweep.worker_forkserver`), the Tuner (:func:`build_tuner`,
:func:`fit`), ASHA on the trial's own step (:class:`SweepASHA`) and the live view's callbacks.
The searcher and its Optuna study are in :mod:`gan_hpc.sweep.optuna_search`. Each Tune trial is
a :class:`~gan_hpc.sweep.watcher.TrialWatcher`: it starts (or re-attaches to) the trial's ranks
through a launcher, and streams ``metrics.jsonl`` into Tune. Progress is the trial's own
``step``.

Tune is never restored from its own snapshot: the sweep directory holds the state (trial
directories, the Optuna study, metrics for ASHA), so nothing depends on when Tune last saved.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import is_quality_metric
from gan_hpc.files import atomic_write_json
from gan_hpc.launchers.registry import get_launcher
from gan_hpc.sweep.directory import (
    RAY_DIR,
    TRIALS_DIR,
    trial_dirs,
)
from gan_hpc.sweep.leaderboard import write_leaderboard
from gan_hpc.sweep.optuna_search import SweepSearcher
from gan_hpc.sweep.progress import SweepProgress, SweepTally, ended_state, make_view
from gan_hpc.sweep.rank import sweep_leaderboard
from gan_hpc.sweep.spec import SweepSpec
from gan_hpc.sweep.watcher import (
    STOP_FILE,
    TRIAL_KEY,
    SweepContext,
    TrialWatcher,
)
from gan_hpc.sweep.worker_forkserver import forkserver
from gan_hpc.trial_dir import TrialDir

logger = get_logger(__name__)


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
    warm_dir: str = "",
) -> tune.Tuner:
    """A fresh Tuner for this driver run of ``spec``: it adopts the unfinished trials first.

    Tune is never restored from its own snapshot: the sweep directory holds the state (trial
    directories, the Optuna study, metrics for ASHA), so nothing depends on when Tune last
    saved. Each driver run gets its own experiment directory under ``<sweep_dir>/ray``.
    """
    context = SweepContext(
        sweep_dir=str(sweep_dir),
        driver_token=driver_token,
        driver_pid=os.getpid(),  # build_tuner runs in the driver
        warm_dir=warm_dir,
    )
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
            # one watcher actor watches trial after trial: no actor start per trial
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


def fit(
    spec: SweepSpec,
    sweep_dir: Path,
    ended: Sequence[TrialDir],
    *,
    driver_token: str,
    warm_dir: str,
    emit: Callable[[str], None],
    use_bar: bool,
) -> None:
    """Run Tune until every trial of ``spec`` has ended; Ray must be up (:func:`start_ray`).

    Args:
        spec: the sweep's spec.
        sweep_dir: its directory.
        ended: the trials that ended before this driver (the live view counts them).
        driver_token: this driver run's token (``driver_epoch.json``).
        warm_dir: where the launcher's warm trainer takes trials; "": it has none.
        emit: where the live view's lines go.
        use_bar: show the live view as a bar on stderr (a terminal), not lines through emit.

    """
    callbacks: list[tune.Callback] = [_progress(spec, sweep_dir, ended, emit=emit, use_bar=use_bar)]
    build_tuner(spec, sweep_dir, callbacks, driver_token=driver_token, warm_dir=warm_dir).fit()


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


@contextlib.contextmanager
def ray_runtime(num_cpus: int | None) -> Iterator[None]:
    """A local Ray runtime whose workers fork from a server that imported them (the watchers)."""
    with forkserver() as worker_command:
        start_ray(num_cpus, worker_command)
        try:
            yield
        finally:
            ray.shutdown()


def start_ray(num_cpus: int | None, worker_command: str | None = None) -> None:
    """Start a local Ray runtime with its console noise kept out of the way.

    ``worker_command`` starts each of its workers (Ray's ``py_executable``); None: Ray's own.
    """
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # verbose=0 then really prints nothing
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own CSV, JSON and TensorBoard loggers copy what each trial directory already has;
    # the TensorBoard one alone imports torch into the driver (1.5 s, 0.2 GiB)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Ray starts an idle worker per CPU for the first driver, but Tune's actors carry a runtime
    # env of their own and never run in those: they would only take CPU while the sweep starts
    os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    for name in ("ray", "ray.tune", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
        runtime_env={"py_executable": worker_command} if worker_command else None,
    )
