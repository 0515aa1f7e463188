"""Sweeps on Ray Tune: OptunaSearch proposes, ASHA stops early, a light watcher runs each trial.

This is the only module that imports Ray and Optuna. Each Tune trial is a :class:`TrialWatcher`:
it writes the trial's ``config.json``, starts (or re-attaches to) the trial's ranks through a
launcher, and streams ``metrics.jsonl`` into Tune. Progress is the trial's own ``step``, which
survives restores (Tune's ``training_iteration`` does not).

Sweep directory::

    <sweep_dir>/spec.yaml            the resolved spec (what resume reads)
    <sweep_dir>/trials/<trial_id>/   trial directories (see gan_hpc.trial_dir)
    <sweep_dir>/ray/                 Ray Tune's experiment state (searcher, scheduler, trials)
    <sweep_dir>/leaderboard.csv      the ranking, rewritten as trials end
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import is_quality_metric
from gan_hpc.errors import GanHpcError, LaunchError, SweepError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.launch import TrialJob, get_launcher, launch_spec_for
from gan_hpc.locks import DriverLock
from gan_hpc.rank import (
    BASELINES_FILE,
    RAY_DIR,
    SPEC_FILE,
    TRIALS_DIR,
    read_spec,
    sweep_leaderboard,
    write_leaderboard,
    write_spec,
)
from gan_hpc.search_space import Choice, Distribution, IntRange, LogUniform, Uniform
from gan_hpc.sweep_spec import (
    SweepSpec,
    conditions_hold,
    dump_sweep_spec,
    search_order,
    trial_config_for,
)
from gan_hpc.trial_dir import EXIT_BAD_INPUT, FINAL_STATES, RESULT_FILE, TrialDir

logger = get_logger(__name__)

POINTER_FILE = "progress.json"
DRIVER_LOCK_FILE = "driver.lock"
POLL_INTERVAL_S = 0.5
# The watcher only tails files; under the slurm launcher it must not hold a CPU the
# training jobs could use, so a login node can watch many trials.
WATCHER_CPUS = {"local": None, "slurm": 0.01}


@dataclass(frozen=True)
class SweepContext:
    """What every watcher needs; small and picklable (it crosses into Ray actors)."""

    sweep_dir: str

    def spec(self) -> SweepSpec:
        """The sweep's resolved spec."""
        return read_spec(Path(self.sweep_dir))


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


class TrialWatcher(tune.Trainable):
    """One Tune trial: launches the trial's ranks and streams its metrics.jsonl into Tune."""

    def setup(self, config: dict[str, Any], context: SweepContext) -> None:  # type: ignore[override]
        """Write config.json and prepare the launcher; the job starts on the first step."""
        self.spec = context.spec()
        self.params = {k: v for k, v in config.items() if k in self.spec.search}
        self.trial = TrialDir(Path(context.sweep_dir) / TRIALS_DIR / self.trial_id)
        self.trial.path.mkdir(parents=True, exist_ok=True)
        self.trial.write_config(trial_config_for(self.spec, self.params))
        atomic_write_json(self.trial.path / "params.json", self.params)
        self.launcher = get_launcher(self.spec.launcher)
        self.launch_spec = launch_spec_for(self.spec)
        self.job: TrialJob | None = None
        self.reported_step = 0
        self.last_result: dict[str, Any] = {}
        self.offset = 0
        self.restarts = 0

    def step(self) -> dict[str, Any]:
        """Block until the trial reports a new evaluation (or ends); return it to Tune."""
        if self.job is None:
            self.job = self.launcher.attach(self.trial, self.launch_spec) or self.launcher.start(
                self.trial, self.launch_spec
            )
        while True:
            record = self._next_record()
            if record is not None:
                return record
            code = self.job.poll()
            if code is None:
                time.sleep(POLL_INTERVAL_S)
                continue
            record = self._next_record()  # the last lines may land just before exit
            if record is not None:
                return record
            if code == 0:
                status = self.trial.read_status()
                # the end-of-trial (test split) scores stay out of Tune: the search must
                # learn from evaluations only, never from the test data
                return {**self.last_result, "trial_state": status.state, "done": True}
            self._restart_or_fail(code)

    def _restart_or_fail(self, code: int) -> None:
        """Retry a dead trial from its checkpoint, up to the spec's limit."""
        assert self.job is not None
        summary = self.job.failure_summary()
        # bad input (exit 2) fails the same way every time: retrying only wastes the slot
        if code == EXIT_BAD_INPUT or self.restarts >= self.spec.tune.max_retries_per_trial:
            self.trial.update_status(state="failed", message=summary[-500:])
            raise LaunchError(f"trial {self.trial_id} failed (exit {code}): {summary}")
        self.restarts += 1
        status = self.trial.read_status()
        self.trial.update_status(
            restart_count=status.restart_count + 1, message=f"restarted after exit {code}"
        )
        logger.warning(
            "trial %s exited %s; retrying from its checkpoint (%d/%d)",
            self.trial_id,
            code,
            self.restarts,
            self.spec.tune.max_retries_per_trial,
        )
        self.job = self.launcher.start(self.trial, self.launch_spec)

    def _next_record(self) -> dict[str, Any] | None:
        """The next unreported metrics record, read from where the last read stopped."""
        path = self.trial.metrics_path
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            while True:
                line = handle.readline()
                if not line.endswith("\n"):  # nothing more, or a line still being written
                    return None
                self.offset = handle.tell()
                record = _parse(line)
                if record is None or record.get(names.STEP, 0) <= self.reported_step:
                    continue
                self.reported_step = int(record[names.STEP])
                self.last_result = {k: v for k, v in record.items() if isinstance(v, (int, float))}
                return dict(self.last_result)

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
        """Save Tune's checkpoint: a pointer to the step reported so far (weights stay put)."""
        atomic_write_json(Path(checkpoint_dir) / POINTER_FILE, {names.STEP: self.reported_step})
        return {names.STEP: self.reported_step}

    def load_checkpoint(self, checkpoint: Any) -> None:
        """After a restore, skip the records Tune has already seen."""
        if isinstance(checkpoint, dict):
            self.reported_step = int(checkpoint.get(names.STEP, 0))
        elif checkpoint:
            self.reported_step = int(read_json(Path(checkpoint) / POINTER_FILE)[names.STEP])

    def cleanup(self) -> None:
        """Stop the trial's job when Tune stops the trial (ASHA) or the sweep shuts down."""
        if self.job is not None and self.job.poll() is None:
            self.job.cancel()
            if self.trial.read_status().state not in FINAL_STATES:
                self.trial.update_status(
                    state="stopped", message="stopped by the scheduler or the driver"
                )


def _parse(line: str) -> dict[str, Any] | None:
    """One JSON record, or None for a corrupt line."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class SweepProgress(tune.Callback):
    """The live view: one line per report with the sweep's counts and the best trial so far."""

    def __init__(self, spec: SweepSpec, emit: Callable[[str], None], sweep_dir: Path) -> None:
        self.spec = spec
        self.emit = emit
        self.sweep_dir = sweep_dir
        self.steps: dict[str, int] = {}
        self.values: dict[str, float] = {}
        self.ended: dict[str, str] = {}

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        """Log the trial's step and metric, with the sweep's counts."""
        self.steps[trial.trial_id] = int(result.get(names.STEP, 0))
        metric = self.spec.tune.metric
        if metric in result:
            self.values[trial.trial_id] = float(result[metric])
        self.emit(self._line(trials, f"{trial.trial_id} step {self.steps[trial.trial_id]}"))

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Record whether the trial finished or was stopped early."""
        finished = self.steps.get(trial.trial_id, 0) >= self.spec.base.train.num_steps
        self.ended[trial.trial_id] = "finished" if finished else "stopped early"
        event = f"{trial.trial_id} {self.ended[trial.trial_id]}"
        final_score = self._final_score(trial.trial_id)
        if final_score is not None:
            event += f" ({self.spec.ranking.score}={final_score:.4g} on the test split)"
        self.emit(self._line(trials, event))
        update_leaderboard(self.spec, self.sweep_dir)

    def _final_score(self, trial_id: str) -> float | None:
        """The ranking score of a trial's best checkpoint, from its result.json (if any)."""
        if not is_quality_metric(self.spec.ranking.score):
            return None
        try:
            best = read_json(self.sweep_dir / TRIALS_DIR / trial_id / RESULT_FILE).get("best")
        except GanHpcError:
            return None
        value = (best or {}).get("metrics", {}).get(self.spec.ranking.score)
        return float(value) if isinstance(value, (int, float)) else None

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Record a failed trial."""
        self.ended[trial.trial_id] = "errored"
        self.emit(self._line(trials, f"{trial.trial_id} errored (see its logs/)"))

    def _line(self, trials: list[Trial], event: str) -> str:
        counts = {"running": 0, "pending": 0}
        for trial in trials:
            if trial.trial_id in self.ended:
                state = self.ended[trial.trial_id]
                counts[state] = counts.get(state, 0) + 1
            elif trial.status == Trial.RUNNING:
                counts["running"] += 1
            else:
                counts["pending"] += 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        best = ""
        if self.values:
            pick = min if self.spec.tune.mode == "min" else max
            trial_id = pick(self.values, key=lambda t: self.values[t])
            best = f" | best {trial_id} {self.spec.tune.metric}={self.values[trial_id]:.4g}"
        return f"{event} | {summary} of {self.spec.tune.num_samples}{best}"


def build_tuner(
    spec: SweepSpec, sweep_dir: Path, callbacks: Sequence[tune.Callback], *, restore: bool
) -> tune.Tuner:
    """A Tuner for ``spec`` (fresh, or restored from ``sweep_dir/ray``)."""
    context = SweepContext(sweep_dir=str(sweep_dir))
    resources: dict[str, float] = {
        "cpu": spec.resources.cpus_per_trial,
        "gpu": spec.resources.gpus_per_trial,
    }
    if WATCHER_CPUS.get(spec.launcher) is not None:
        resources = {
            "cpu": float(WATCHER_CPUS[spec.launcher] or 0.0)
        }  # the job holds the real resources
    trainable = tune.with_resources(tune.with_parameters(TrialWatcher, context=context), resources)
    if restore:
        return tune.Tuner.restore(
            str(sweep_dir / RAY_DIR / spec.name),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
        )
    tune_settings = spec.tune
    metric: Any = tune_settings.metric
    mode: Any = tune_settings.mode
    if tune_settings.multi_objective_metrics:
        metric, mode = (
            list(tune_settings.multi_objective_metrics),
            list(tune_settings.multi_objective_modes),
        )
    sampler: optuna.samplers.BaseSampler
    if tune_settings.search_alg == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    elif tune_settings.multi_objective_metrics:
        sampler = optuna.samplers.NSGAIISampler(seed=spec.seed)
    else:
        sampler = optuna.samplers.TPESampler(
            seed=spec.seed, n_startup_trials=max(2, tune_settings.num_samples // 4)
        )
    searcher = ConcurrencyLimiter(
        OptunaSearch(
            space=OptunaSpace(spec),
            metric=metric,
            mode=mode,
            sampler=sampler,
            points_to_evaluate=[dict(p) for p in tune_settings.initial_points] or None,
        ),
        max_concurrent=tune_settings.max_concurrent_trials,
    )
    scheduler: TrialScheduler
    if tune_settings.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr=names.STEP,
            metric=tune_settings.metric,
            mode=tune_settings.mode,
            max_t=spec.base.train.num_steps,
            grace_period=tune_settings.grace_period_steps,
            reduction_factor=tune_settings.reduction_factor,
        )
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=tune_settings.num_samples,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str((sweep_dir / RAY_DIR).resolve()),
            callbacks=list(callbacks),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2,
                checkpoint_frequency=1 if tune_settings.checkpoint_every_report else 0,
            ),
            failure_config=tune.FailureConfig(max_failures=tune_settings.max_retries_per_trial),
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
) -> Any:
    """Run (or restore and finish) a sweep; returns the ranked leaderboard DataFrame."""
    # a refused sbatch option fails here in one line, before any directory or Ray runtime
    get_launcher(spec.launcher).check(launch_spec_for(spec))
    sweep_dir = sweep_dir.resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with DriverLock(sweep_dir / DRIVER_LOCK_FILE):
        if restore:
            if not tune.Tuner.can_restore(str(sweep_dir / RAY_DIR / spec.name)):
                raise SweepError(
                    f"{sweep_dir}: no Ray Tune state to resume (the driver stopped before its "
                    "first snapshot); delete the directory and start again with `gan-hpc sweep run`"
                )
        else:
            prepare_sweep_dir(spec, sweep_dir)
        # imported here: every trial's watcher actor imports this module, and scoring's
        # scikit-learn and scipy would add a second to each actor's start
        from gan_hpc.scoring import write_baselines

        write_baselines(sweep_dir / BASELINES_FILE, spec.base, emit=emit)
        _start_ray(num_cpus)
        try:
            callbacks = [SweepProgress(spec, emit, sweep_dir)]
            build_tuner(spec, sweep_dir, callbacks, restore=restore).fit()
        finally:
            ray.shutdown()
        return update_leaderboard(spec, sweep_dir)


def update_leaderboard(spec: SweepSpec, sweep_dir: Path) -> Any:
    """Rank the sweep's trials (with baselines and confirmations); rewrite ``leaderboard.csv``."""
    leaderboard = sweep_leaderboard(sweep_dir, spec.ranking)
    write_leaderboard(sweep_dir, leaderboard)
    return leaderboard


def has_tune_state(spec: SweepSpec, sweep_dir: Path) -> bool:
    """True when ``sweep_dir`` holds Ray Tune state that :func:`run_sweep` can restore."""
    return bool(tune.Tuner.can_restore(str(Path(sweep_dir).resolve() / RAY_DIR / spec.name)))


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
