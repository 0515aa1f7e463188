"""The sweep directory: its layout, its spec file, and the trial records read from it.

A sweep directory (``SweepSpec.sweep_dir()``, i.e. ``<storage.path>/<name>``, or ``--out``)
holds::

    <sweep_dir>/spec.yaml            the resolved spec (overrides applied), written at start
    <sweep_dir>/trials/<trial_id>/   one trial directory each (see gan_hpc.trial_dir):
                                       config.json, metrics.jsonl ("step" + metric constants),
                                       status.json, result.json, checkpoints/, tensorboard/
    <sweep_dir>/ray/                 Ray Tune's own storage (experiment state, trial snapshots)
    <sweep_dir>/leaderboard.csv      the latest ranking (sweep.leaderboard.write_leaderboard)
    <sweep_dir>/baselines.json       tabular reference rows: real data, independent marginals
    <sweep_dir>/confirm.json         ``gan-hpc sweep confirm``'s re-runs with new seeds

Which folder a command's directory argument names follows one rule: ``sweep run SPEC --out DIR``
makes ``DIR`` the sweep directory (no ``--out``: ``<storage.path>/<name>``), and every command
that reads a sweep (``sweep status``, ``resume``, ``extend``, ``report``, ``confirm``,
``export``) takes that directory, or a folder whose only sweep is one level below it (``runs``
for ``runs/quickstart``).

Each trial is read through the typed readers of :class:`gan_hpc.trial_dir.TrialDir`. A trial
without ``result.json`` (still running, preempted, failed) is read from ``metrics.jsonl``: its
last record is ``last`` and the best record by the trainer's own rule
(:func:`gan_hpc.trial_dir.best_record`: gate first, then the score) is ``best``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from gan_hpc.config import ConvergenceConfig, is_quality_metric
from gan_hpc.config_validation import config_from_dict
from gan_hpc.errors import GanHpcError, SpecError, SweepError
from gan_hpc.files import atomic_write_text, read_json
from gan_hpc.sweep.spec import SweepSpec, active_params, dump_sweep_spec, load_sweep_spec
from gan_hpc.trial_dir import (
    CONFIG_FILE,
    FINAL_STATES,
    WALL_TIME_KEY,
    CheckpointRecord,
    TrialDir,
    TrialStatus,
    best_record,
    numeric_metrics,
)

# <sweep>/spec.yaml and <sweep>/trials/: defined beside the trial directory (the trainer reads
# them), re-exported here with the rest of the sweep's layout
from gan_hpc.trial_dir import SPEC_FILE as SPEC_FILE
from gan_hpc.trial_dir import TRIALS_DIR as TRIALS_DIR

logger = logging.getLogger(__name__)

RAY_DIR = "ray"
LEADERBOARD_FILE = "leaderboard.csv"
BASELINES_FILE = "baselines.json"
CONFIRM_FILE = "confirm.json"
DRIVER_LOCK_FILE = "driver.lock"  # held by the one driver of the sweep (gan_hpc.locks)
DRIVER_EPOCH_FILE = "driver_epoch.json"  # the current driver's token (fences older watchers)
STOP_FILE = "stop.json"  # <trial>/stop.json: the scheduler stopped it early (driver-owned)

# How ``sweep status``/``export`` print a leaderboard (gan_hpc.sweep.leaderboard renders them).
LeaderboardFormat = Literal["table", "csv", "json", "markdown"]
LEADERBOARD_FORMATS: tuple[LeaderboardFormat, ...] = ("table", "csv", "json", "markdown")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialRecord:
    """What the leaderboard knows about one trial directory."""

    trial_id: str
    path: Path
    state: str
    step: int  # the trial's progress (generator updates), not a checkpoint's
    params: dict[str, Any]  # searched values (None where a condition left one unsampled)
    best: CheckpointRecord | None
    last: CheckpointRecord | None
    restart_count: int = 0
    resumes: int = 0  # runs that continued from a checkpoint (status.json)
    steps_repeated: int = 0  # steps trained twice across those resumes
    wall_time_s: float | None = None
    has_result: bool = False  # False: best/last were computed from metrics.jsonl
    flags: tuple[str, ...] = ()  # guards that fired (result.json), e.g. "mode_collapse"
    config: dict[str, Any] = field(default_factory=dict, repr=False)


# ------------------------------------------------------------------------------- spec file


def write_spec(sweep_dir: Path, spec: SweepSpec) -> Path:
    """Write the resolved spec to ``<sweep_dir>/spec.yaml`` atomically; return its path."""
    path = Path(sweep_dir) / SPEC_FILE
    atomic_write_text(path, dump_sweep_spec(spec))
    return path


def read_spec(sweep_dir: Path) -> SweepSpec:
    """Load and validate ``<sweep_dir>/spec.yaml``.

    Raises:
        SweepError: the directory has no spec.yaml (it is not a sweep directory).
        SpecError: the spec is invalid.

    """
    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        raise SweepError(f"{path}: missing; is {sweep_dir} a sweep directory?")
    return load_sweep_spec(path)


# ----------------------------------------------------------------------------- which folder


def _sweeps_in(path: Path) -> list[Path]:
    """The sweep directories one level below ``path``."""
    return sorted(child for child in path.iterdir() if (child / SPEC_FILE).is_file())


def check_new_sweep_dir(path: Path) -> None:
    """Refuse to start a sweep in a folder of sweeps (``--out`` as a parent, the old rule).

    Raises:
        SweepError: ``path`` holds no sweep of its own but sweep directories below it.

    """
    path = Path(path)
    if not path.is_dir() or (path / SPEC_FILE).is_file():
        return
    sweeps = _sweeps_in(path)
    if sweeps:
        raise SweepError(
            f"--out {path}: holds sweeps ({', '.join(s.name for s in sweeps)}); --out names the "
            f"sweep directory itself, e.g. --out {path / sweeps[0].name}"
        )


def find_sweep_dir(path: Path) -> Path:
    """The sweep directory that ``path`` names.

    Returns ``path`` itself when it holds ``spec.yaml``, or holds no sweep one level below (a
    trial directory, or not a sweep at all: the command then says what it expected); else the
    one sweep directory inside it.

    Raises:
        SweepError: ``path`` is not a directory, or holds several sweeps (they are listed).

    """
    path = Path(path)
    if not path.is_dir():
        raise SweepError(f"{path}: no such directory; give a sweep directory (holds {SPEC_FILE})")
    if (path / SPEC_FILE).is_file():
        return path
    sweeps = _sweeps_in(path)
    if len(sweeps) == 1:
        return sweeps[0]
    if len(sweeps) > 1:
        raise SweepError(
            f"{path}: holds {len(sweeps)} sweeps ({', '.join(s.name for s in sweeps)}); "
            f"give one of them, e.g. {sweeps[0]}"
        )
    return path


# ------------------------------------------------------------------------------ the trials


def has_ended_state(trial: TrialDir) -> bool:
    """True when ``status.json`` holds a final state."""
    return trial.read_status().state in FINAL_STATES


def trial_dirs(sweep_dir: Path) -> list[TrialDir]:
    """The sweep's trial directories, sorted by name (each counts against num_samples)."""
    root = sweep_dir / TRIALS_DIR
    if not root.is_dir():
        return []
    return [TrialDir(p) for p in sorted(root.iterdir()) if p.is_dir()]


def collect_trials(sweep_dir: Path) -> list[TrialRecord]:
    """Read every ``<sweep_dir>/trials/*/`` into a :class:`TrialRecord`, sorted by trial id.

    Never fails on one trial: a missing or corrupt ``config.json`` skips the trial, a corrupt
    ``result.json`` or ``status.json`` is ignored, each with a warning naming the file.
    Searched parameters come from ``spec.yaml`` when it can be read; otherwise every config
    value that differs between trials is shown.

    Raises:
        SweepError: ``sweep_dir`` does not exist.

    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SweepError(f"{sweep_dir}: no such sweep directory; check the path or --out")
    spec = _spec_or_none(sweep_dir)
    trials_dir = sweep_dir / TRIALS_DIR
    directories = (
        sorted(p for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    )
    records = [record for path in directories if (record := _read_trial(path)) is not None]
    if spec is not None:
        return [replace(r, params=_searched_params(spec, r.config)) for r in records]
    flats = [_flatten(r.config) for r in records]
    varying = _varying_keys(flats)
    return [
        replace(r, params={k: flat.get(k) for k in varying})
        for r, flat in zip(records, flats, strict=True)
    ]


def _spec_or_none(sweep_dir: Path) -> SweepSpec | None:
    """Load the sweep's spec, or return None (with a warning) when it is missing or unreadable."""
    if not (sweep_dir / SPEC_FILE).is_file():
        return None
    try:
        return read_spec(sweep_dir)
    except GanHpcError as exc:
        logger.warning("%s; showing the config values that differ between trials instead", exc)
        return None


def _read_trial(path: Path) -> TrialRecord | None:
    """Read one trial directory, or None (with a warning) when its config.json is unusable."""
    trial = TrialDir(path)
    try:
        config = trial.read_config_dict()
    except GanHpcError as exc:
        logger.warning("%s (skipping this trial)", exc)
        return None
    status = _status_or_none(trial)
    counts = status or TrialStatus()  # restarts, resumes and repeated steps: 0 when unknown
    result = trial.read_result()
    if result is not None:
        return TrialRecord(
            trial_id=path.name,
            path=path,
            state=result.state,
            step=result.step,
            params={},
            best=result.best,
            last=result.last,
            wall_time_s=result.wall_time_s,
            has_result=True,
            flags=result.guard_names,
            restart_count=counts.restart_count,
            resumes=counts.resumes,
            steps_repeated=counts.steps_repeated,
            config=config,
        )
    evaluations = trial.read_evaluations()
    best = best_record(evaluations, _trial_ranking(config, path))
    last = evaluations[-1] if evaluations else None
    default_state = "running" if evaluations else "pending"
    return TrialRecord(
        trial_id=path.name,
        path=path,
        state=status.state if status else default_state,
        step=max(status.step if status else 0, last.step if last else 0),
        params={},
        best=_without_quality(best),
        last=_without_quality(last),
        wall_time_s=last.metrics.get(WALL_TIME_KEY) if last else None,
        has_result=False,
        restart_count=counts.restart_count,
        resumes=counts.resumes,
        steps_repeated=counts.steps_repeated,
        config=config,
    )


def _status_or_none(trial: TrialDir) -> TrialStatus | None:
    """``status.json``, or None when absent or unusable (with a warning)."""
    if not trial.status_path.exists():
        return None
    try:
        return trial.read_status()
    except GanHpcError as exc:
        logger.warning("%s (ignoring the file)", exc)
        return None


def _trial_ranking(config: Mapping[str, Any], path: Path) -> ConvergenceConfig:
    """Read the trial's own best-checkpoint rule (its config's convergence block)."""
    try:
        return config_from_dict(
            ConvergenceConfig,
            config.get("convergence"),
            source=str(path / CONFIG_FILE),
            prefix="convergence",
        )
    except SpecError as exc:
        logger.warning("%s; using the default ranking rule for this trial", exc)
        return ConvergenceConfig()


def _without_quality(record: CheckpointRecord | None) -> CheckpointRecord | None:
    """The record without the validation-split quality scores of ``metrics.jsonl``.

    Leaderboard quality figures are the test split's, computed when a trial ends; a trial
    without them (running, stopped early) must not rank by validation scores beside them.
    """
    if record is None:
        return None
    metrics = {k: v for k, v in record.metrics.items() if not is_quality_metric(k)}
    return replace(record, metrics=metrics)


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to ``{"a.b.c": value}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _searched_params(spec: SweepSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the trial's value of each search key; None where a condition left it out."""
    flat = _flatten(config)
    values = {key: flat.get(key) for key in spec.search}
    active = active_params(spec, {k: v for k, v in values.items() if v is not None})
    return {key: active.get(key) for key in spec.search}


def _varying_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """List the dotted keys whose values are not the same in every config (in first-seen order)."""
    keys: dict[str, None] = {}
    for flat in configs:
        keys.update(dict.fromkeys(flat))
    return [
        key
        for key in keys
        if len({json.dumps(flat.get(key), sort_keys=True) for flat in configs}) > 1
    ]


# ----------------------------------------------------------- the sweep's other records


def read_baselines(sweep_dir: Path) -> dict[str, dict[str, float]]:
    """``{name: metrics}`` of ``<sweep_dir>/baselines.json``; empty when absent or unreadable."""
    document = _read_json_or_warn(Path(sweep_dir) / BASELINES_FILE)
    reports = document.get("reports") if isinstance(document, dict) else None
    if not isinstance(reports, dict):
        return {}
    return {
        str(name): numeric_metrics(report.get("metrics") or {})
        for name, report in reports.items()
        if isinstance(report, dict)
    }


def read_confirmations(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """``{trial_id: summary}`` of ``<sweep_dir>/confirm.json``; empty when absent."""
    document = _read_json_or_warn(Path(sweep_dir) / CONFIRM_FILE)
    trials = document.get("trials") if isinstance(document, dict) else None
    if not isinstance(trials, dict):
        return {}
    return {str(k): dict(v) for k, v in trials.items() if isinstance(v, dict)}


def _read_json_or_warn(path: Path) -> Any:
    """Read a JSON file; None when absent, or corrupt (with a warning)."""
    if not path.exists():
        return None
    try:
        return read_json(path)
    except GanHpcError as exc:
        logger.warning("%s (ignoring the file)", exc)
        return None
