"""The sweep's searcher: an Optuna study in the sweep directory, and the trials it creates.

:class:`SweepSearcher` is Tune's searcher. It asks the study (``<sweep_dir>/optuna.journal``,
:func:`open_study`) for a point, drawn through :class:`OptunaSpace`, and creates the trial's
directory with its config before Tune runs it; a restarted driver first adopts every trial
directory that has not ended. :mod:`gan_hpc.sweep.search_space` declares what may be drawn and
imports no Optuna; this module is where that space becomes Optuna suggestions.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState
from ray.tune.search import Searcher

from gan_hpc._logging import get_logger
from gan_hpc.errors import GanHpcError, SweepError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.sweep.directory import STOP_FILE, TRIALS_DIR, trial_dirs
from gan_hpc.sweep.search_space import Choice, Distribution, IntRange, LogUniform, Uniform
from gan_hpc.sweep.spec import SweepSpec, conditions_hold, search_order, trial_config_for
from gan_hpc.sweep.watcher import PARAMS_FILE, TRIAL_KEY
from gan_hpc.trial_dir import CONFIG_FILE, FINAL_STATES, TrialDir

logger = get_logger(__name__)

STUDY_FILE = "optuna.journal"  # the Optuna study: JournalStorage, no server, any shared FS
NEW_TRIALS_DIR = ".new-trials"  # trial directories are built here, then renamed into trials/
SEARCH_FILE = "search.json"  # <trial>/search.json: the Optuna trial number behind the trial
JOURNAL_LOCK_GRACE_S = 5  # a killed driver's journal lock is broken after this (one driver runs)


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
    """The last reported value of each metric (what Tune saw last), or None.

    A metric written as null was NaN when reported (``metrics.jsonl`` is strict JSON).
    """
    for record in reversed(trial.read_metrics()):
        values = [math.nan if m in record and record[m] is None else record.get(m) for m in metrics]
        if all(isinstance(v, (int, float)) for v in values):
            return [float(v) for v in values]
    return None


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
