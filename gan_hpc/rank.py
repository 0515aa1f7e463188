"""The leaderboard: read every trial directory of a sweep and rank the trials.

A sweep directory (``SweepSpec.sweep_dir()``, i.e. ``<storage.path>/<name>``) holds::

    <sweep_dir>/spec.yaml            the resolved spec (overrides applied), written at start
    <sweep_dir>/trials/<trial_id>/   one trial directory each (see gan_hpc.trial_dir):
                                       config.json, metrics.jsonl ("step" + metric constants),
                                       status.json, result.json, checkpoints/, tensorboard/
    <sweep_dir>/ray/                 Ray Tune's own storage (experiment state, trial snapshots)
    <sweep_dir>/leaderboard.csv      the latest ranking (:func:`write_leaderboard`)
    <sweep_dir>/baselines.json       tabular reference rows: real data, independent marginals
    <sweep_dir>/confirm.json         ``gan-hpc sweep confirm``'s re-runs with new seeds

``result.json`` (written when a trial ends) carries ``best`` and ``last``, each
``{"step", "metrics", "checkpoint"}``. A trial without one (still running, preempted, failed)
is read from ``metrics.jsonl``: its last record is ``last`` and the best record by the
trainer's own rule (:func:`gan_hpc.convergence.selection_key`: gate first, then the score) is
``best``. A row of the leaderboard takes every figure from one of the two, never a mix;
the held-out quality metrics (``quality/...``) are in that same record, computed for its
checkpoint when the trial ended (:mod:`gan_hpc.scoring`).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from gan_hpc.config import ConvergenceConfig, is_quality_metric
from gan_hpc.config_validation import config_from_dict
from gan_hpc.convergence import (
    ALL_CONVERGENCE,
    CONVERGED,
    D_ACC_HELDOUT,
    FOOLING_RATE,
    STEP,
    gate_holds,
    selection_key,
)
from gan_hpc.errors import GanHpcError, SpecError, SweepError
from gan_hpc.files import atomic_write_text, read_json, read_jsonl
from gan_hpc.quality_names import (
    IMG_CLASS_COVERAGE,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    SIG_DETECTION_AUC,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    TAB_DETECTION_AUC,
    TAB_TABULAR_SCORE,
    TAB_TSTR,
)
from gan_hpc.quality_names import TAB_COLUMN_PREFIX as COLUMN_PREFIX
from gan_hpc.sweep_spec import SweepSpec, active_params, dump_sweep_spec, load_sweep_spec
from gan_hpc.trial_dir import (
    CONFIG_FILE,
    METRICS_FILE,
    METRICS_KEY,
    RESULT_FILE,
    SPEC_FILE,
    STATUS_FILE,
    TRIALS_DIR,
)

logger = logging.getLogger(__name__)

RAY_DIR = "ray"
LEADERBOARD_FILE = "leaderboard.csv"
BASELINES_FILE = "baselines.json"
CONFIRM_FILE = "confirm.json"
BASELINE_PREFIX = "baseline:"  # trial_id of a baseline row, e.g. baseline:real_data

LeaderboardFormat = Literal["table", "csv", "json", "markdown"]
FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")
# The convergence metrics shown on the leaderboard; "converged" is the trainer's gate flag,
# which the "gate" column recomputes with the ranking's thresholds.
METRIC_COLUMNS: tuple[str, ...] = tuple(m for m in ALL_CONVERGENCE if m != CONVERGED)
_LEADING_COLUMNS = (
    "rank",
    "trial_id",
    "state",
    "resumes",
    "steps_repeated",
    "step",
    "gate",
    "flags",
    "score",
)
# columns added when the sweep has been confirmed (gan-hpc sweep confirm)
CONFIRM_COLUMNS = ("confirm_seeds", "confirm_mean", "confirm_std", "confirm_gate_rate", "held_up")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRecord:
    """One evaluation of a trial: its step, its metrics and the checkpoint holding that state.

    ``checkpoint`` is relative to the trial directory, and None when the record was read from
    ``metrics.jsonl`` (the trial has not written ``result.json`` yet).
    """

    step: int
    metrics: dict[str, float]
    checkpoint: str | None = None


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


# ------------------------------------------------------------------------------- spec files


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


# ----------------------------------------------------------------------------- collecting


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
    config = _read_json_or_warn(path / CONFIG_FILE, required=True)
    if not isinstance(config, dict):
        return None
    ranking = _trial_ranking(config, path)
    status = _read_json_or_warn(path / STATUS_FILE)
    status = status if isinstance(status, dict) else {}
    result = _read_json_or_warn(path / RESULT_FILE)
    metrics = read_jsonl(path / METRICS_FILE, key=METRICS_KEY)
    restart_count = _int_or(status.get("restart_count"), 0)
    resumes = _int_or(status.get("resumes"), 0)
    steps_repeated = _int_or(status.get("steps_repeated"), 0)
    if isinstance(result, dict):
        best = _checkpoint_record(result.get("best"), path / RESULT_FILE, "best")
        last = _checkpoint_record(result.get("last"), path / RESULT_FILE, "last")
        return TrialRecord(
            trial_id=path.name,
            path=path,
            state=str(result.get("state", status.get("state", "finished"))),
            step=_int_or(result.get("step"), last.step if last else 0),
            params={},
            best=best,
            last=last,
            restart_count=restart_count,
            resumes=resumes,
            steps_repeated=steps_repeated,
            wall_time_s=_float_or_none(result.get("wall_time_s")),
            has_result=True,
            flags=_flags(result.get("flags"), path / RESULT_FILE),
            config=config,
        )
    best, last = _best_and_last(metrics, ranking)
    default_state = "running" if metrics else "pending"
    step = max(_int_or(status.get("step"), 0), last.step if last else 0)
    return TrialRecord(
        trial_id=path.name,
        path=path,
        state=str(status.get("state", default_state)),
        step=step,
        params={},
        best=best,
        last=last,
        restart_count=restart_count,
        resumes=resumes,
        steps_repeated=steps_repeated,
        wall_time_s=_float_or_none(metrics[-1].get("wall_time_s")) if metrics else None,
        has_result=False,
        config=config,
    )


def _flags(raw: Any, path: Path) -> tuple[str, ...]:
    """The guard names of ``result.json``'s ``flags`` (malformed entries are ignored)."""
    if not isinstance(raw, list):
        return ()
    names = [str(entry["guard"]) for entry in raw if isinstance(entry, dict) and "guard" in entry]
    if len(names) != len(raw):
        logger.warning("%s: ignoring malformed 'flags' entries", path)
    return tuple(names)


def _read_json_or_warn(path: Path, *, required: bool = False) -> Any:
    """Read a JSON file; None when absent (warning if required) or corrupt (warning)."""
    if not path.exists():
        if required:
            logger.warning("%s: missing; skipping this trial directory", path)
        return None
    try:
        return read_json(path)
    except GanHpcError as exc:
        what = "skipping this trial" if required else "ignoring the file"
        logger.warning("%s (%s)", exc, what)
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


def _checkpoint_record(raw: Any, path: Path, which: str) -> CheckpointRecord | None:
    """``result.json``'s ``best``/``last`` entry, or None when absent or malformed."""
    if raw is None:
        return None
    try:
        return CheckpointRecord(
            step=int(raw["step"]),
            metrics=_numeric(raw["metrics"]),
            checkpoint=str(raw["checkpoint"]) if raw.get("checkpoint") else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("%s: '%s' entry is malformed (%s); ignoring it", path, which, exc)
        return None


def _best_and_last(
    records: Sequence[Mapping[str, Any]], ranking: ConvergenceConfig
) -> tuple[CheckpointRecord | None, CheckpointRecord | None]:
    """Best-so-far and last evaluation from metrics.jsonl, by the trainer's selection rule."""
    evaluations = [
        _record_from_metrics(r)
        for r in records
        if isinstance(r, dict) and _int_or(r.get(STEP), -1) >= 0
    ]
    if not evaluations:
        return None, None
    best, last = best_record(evaluations, ranking), evaluations[-1]
    return _without_quality(best), _without_quality(last)


def _without_quality(record: CheckpointRecord | None) -> CheckpointRecord | None:
    """The record without the validation-split quality scores of ``metrics.jsonl``.

    Leaderboard quality figures are the test split's, computed when a trial ends; a trial
    without them (running, stopped early) must not rank by validation scores beside them.
    """
    if record is None:
        return None
    metrics = {k: v for k, v in record.metrics.items() if not is_quality_metric(k)}
    return replace(record, metrics=metrics)


def best_record(
    records: Sequence[CheckpointRecord], ranking: ConvergenceConfig
) -> CheckpointRecord | None:
    """Pick the best evaluation as the trainer does: gate first, then the score.

    Only a strictly better record replaces the best so far, so the earliest wins a tie.
    """
    best: CheckpointRecord | None = None
    for candidate in records:
        if best is None or selection_key(candidate.metrics, ranking) > selection_key(
            best.metrics, ranking
        ):
            best = candidate
    return best


def _record_from_metrics(record: Mapping[str, Any]) -> CheckpointRecord:
    """Turn a metrics.jsonl line into an evaluation record (numeric values only)."""
    return CheckpointRecord(step=int(record[STEP]), metrics=_numeric(record))


def _numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """Keep the numeric entries of a metrics mapping, as floats."""
    return {
        str(k): float(v)
        for k, v in dict(values).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _int_or(value: Any, default: int) -> int:
    """Return ``value`` if it is an int, else ``default``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return default


def _float_or_none(value: Any) -> float | None:
    """Return a float, or None for anything that is not a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


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


# -------------------------------------------------------------------------------- ranking


def rank_trials(
    records: Iterable[TrialRecord],
    ranking: ConvergenceConfig,
    *,
    checkpoint: Literal["best", "last"] = "best",
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    confirmations: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Rank trials: gate holders first, then unflagged ones, then by the score; ties by id.

    With ``ranking.pareto_metrics``, trials are ranked by Pareto front before the score (the
    ``pareto_front`` column: 1 when no trial of the same gate group beats it on every metric).

    Args:
        records: from :func:`collect_trials`.
        ranking: the gate thresholds and the score (the spec's ``ranking``).
        checkpoint: rank every trial by its ``best`` or by its ``last`` evaluation; every
            figure of a row comes from that one record, quality metrics included.
        baselines: ``{name: metrics}`` reference rows (:func:`read_baselines`), appended
            unranked after the trials with ``state`` "baseline".
        confirmations: ``{trial_id: summary}`` from ``gan-hpc sweep confirm``
            (:func:`read_confirmations`); adds the :data:`CONFIRM_COLUMNS`.

    Returns:
        One row per trial: rank, trial_id, state, step (of the record), gate, flags (guards
        that fired), score, the convergence metrics, the quality metrics (per-column
        similarities left out), the searched parameters (by dotted key) and the checkpoint
        path. A trial without an evaluation has no score and ranks last.

    """
    records = list(records)
    param_keys: dict[str, None] = {}
    for record in records:
        param_keys.update(dict.fromkeys(record.params))
    chosen_records = {
        record.trial_id: record.best if checkpoint == "best" else record.last for record in records
    }
    quality_keys = _quality_columns(
        [c.metrics for c in chosen_records.values() if c is not None],
        list((baselines or {}).values()),
    )
    rows = []
    for record in records:
        chosen = chosen_records[record.trial_id]
        metrics = chosen.metrics if chosen is not None else {}
        rows.append(
            {
                "trial_id": record.trial_id,
                "state": record.state,
                "resumes": record.resumes,
                "steps_repeated": record.steps_repeated,
                "step": chosen.step if chosen is not None else None,
                "gate": bool(chosen is not None and gate_holds(metrics, ranking)),
                "flags": ",".join(record.flags),
                "score": metrics.get(ranking.score, math.nan),
                **{name: metrics.get(name, math.nan) for name in METRIC_COLUMNS},
                **{name: metrics.get(name, math.nan) for name in quality_keys},
                **{key: record.params.get(key) for key in param_keys},
                "checkpoint": _checkpoint_path(record, chosen),
            }
        )
    if ranking.pareto_metrics:
        _assign_pareto_fronts(rows, chosen_records, ranking)
    rows.sort(key=lambda row: _sort_key(row, ranking))
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
    for name, reference in (baselines or {}).items():
        rows.append(
            {
                "trial_id": f"{BASELINE_PREFIX}{name}",
                "state": "baseline",
                "score": reference.get(ranking.score, math.nan),
                **{key: reference.get(key, math.nan) for key in quality_keys},
            }
        )
    extra = list(CONFIRM_COLUMNS) if confirmations else []
    if ranking.pareto_metrics:
        extra.insert(0, "pareto_front")
    for row in rows:
        summary = (confirmations or {}).get(str(row["trial_id"]), {})
        row.update({column: summary.get(column) for column in CONFIRM_COLUMNS if column in extra})
    columns = [
        *_LEADING_COLUMNS,
        *extra,
        *METRIC_COLUMNS,
        *quality_keys,
        *param_keys,
        "checkpoint",
    ]
    df = pd.DataFrame(rows, columns=columns)
    # Nullable ints: a trial without an evaluation has no step, and the others stay integers.
    integers = {"rank": "Int64", "step": "Int64"}
    integers.update(
        {column: "Int64" for column in ("confirm_seeds", "pareto_front") if column in extra}
    )
    return df.astype(integers)


def _quality_columns(*groups: Sequence[Mapping[str, float]]) -> list[str]:
    """The quality metrics any row reports, in first-seen order (per-column ones left out)."""
    keys: dict[str, None] = {}
    for group in groups:
        for metrics in group:
            keys.update(
                dict.fromkeys(
                    k for k in metrics if is_quality_metric(k) and not k.startswith(COLUMN_PREFIX)
                )
            )
    return list(keys)


def _sort_key(row: Mapping[str, Any], ranking: ConvergenceConfig) -> tuple[Any, ...]:
    """Sort key: gate, no flags, Pareto front, score (missing last), trial id.

    The Pareto front counts only when the ranking names ``pareto_metrics``.
    """
    score = row["score"]
    missing = score is None or math.isnan(score)
    oriented = 0.0 if missing else (-score if ranking.score_mode == "max" else score)
    front = row.get("pareto_front", 0)
    gate_first = ranking.use_gate_first and bool(row["gate"])
    return (not gate_first, bool(row["flags"]), front, missing, oriented, row["trial_id"])


def _assign_pareto_fronts(
    rows: list[dict[str, Any]],
    chosen: Mapping[str, CheckpointRecord | None],
    ranking: ConvergenceConfig,
) -> None:
    """Set each row's ``pareto_front`` (1: no other trial of its gate group dominates it).

    Non-dominated sorting over ``ranking.pareto_metrics`` within each (gate, flagged) group;
    a trial missing any of the metrics goes after every front of its group.
    """
    groups: dict[tuple[bool, bool], list[dict[str, Any]]] = {}
    for row in rows:
        gate_first = ranking.use_gate_first and bool(row["gate"])
        groups.setdefault((gate_first, bool(row["flags"])), []).append(row)
    signs = [1.0 if mode == "max" else -1.0 for mode in ranking.pareto_modes]
    for members in groups.values():
        points: dict[str, tuple[float, ...]] = {}
        for row in members:
            record = chosen[row["trial_id"]]
            values = [
                record.metrics.get(m, math.nan) if record else math.nan
                for m in ranking.pareto_metrics
            ]
            if all(math.isfinite(v) for v in values):
                points[row["trial_id"]] = tuple(s * v for s, v in zip(signs, values, strict=True))
        fronts = pareto_fronts(points)
        for row in members:
            row["pareto_front"] = fronts.get(row["trial_id"], len(points) + 1)


def pareto_fronts(points: Mapping[str, Sequence[float]]) -> dict[str, int]:
    """Front number of each point (1 = non-dominated), every coordinate to be maximised."""

    def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and any(
            x > y for x, y in zip(a, b, strict=True)
        )

    remaining = dict(points)
    fronts: dict[str, int] = {}
    front = 1
    while remaining:
        current = [
            key
            for key, point in remaining.items()
            if not any(dominates(other, point) for k, other in remaining.items() if k != key)
        ]
        for key in current:
            fronts[key] = front
            del remaining[key]
        front += 1
    return fronts


def ranking_rule(ranking: ConvergenceConfig) -> str:
    """One line saying how the leaderboard is ordered, for the people reading it."""
    direction = "higher" if ranking.score_mode == "max" else "lower"
    keys = []
    if ranking.use_gate_first:
        keys.append(
            f"the gate first ({D_ACC_HELDOUT} > {ranking.d_acc_min:g} and "
            f"{FOOLING_RATE} > {ranking.fooling_rate_min:g})"
        )
    keys.append("trials no guard flagged")
    if ranking.pareto_metrics:
        keys.append(f"Pareto front of {', '.join(ranking.pareto_metrics)}")
    keys.append(f"{ranking.score} ({direction} is better)")
    shown = "" if ranking.use_gate_first else "; the gate is shown, not ranked on"
    return f"ranked by {', then '.join(keys)}{shown}; baseline rows are unranked references"


def read_baselines(sweep_dir: Path) -> dict[str, dict[str, float]]:
    """``{name: metrics}`` of ``<sweep_dir>/baselines.json``; empty when absent or unreadable."""
    document = _read_json_or_warn(Path(sweep_dir) / BASELINES_FILE)
    reports = document.get("reports") if isinstance(document, dict) else None
    if not isinstance(reports, dict):
        return {}
    return {
        str(name): _numeric(report.get("metrics") or {})
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


def sweep_leaderboard(
    sweep_dir: Path, ranking: ConvergenceConfig, *, checkpoint: Literal["best", "last"] = "best"
) -> pd.DataFrame:
    """The sweep's full leaderboard: ranked trials, confirmations and baseline rows."""
    return rank_trials(
        collect_trials(sweep_dir),
        ranking,
        checkpoint=checkpoint,
        baselines=read_baselines(sweep_dir),
        confirmations=read_confirmations(sweep_dir),
    )


def _checkpoint_path(record: TrialRecord, chosen: CheckpointRecord | None) -> str | None:
    """Return the chosen record's checkpoint file as a path string, when there is one."""
    if chosen is None or chosen.checkpoint is None:
        return None
    return str(record.path / chosen.checkpoint)


# ------------------------------------------------------------------------------ rendering


def format_leaderboard(df: pd.DataFrame, fmt: LeaderboardFormat = "table") -> str:
    """Render a leaderboard as an aligned text table, CSV, JSON records or a Markdown table.

    Raises:
        SweepError: ``fmt`` is not one of :data:`FORMATS`.

    """
    if fmt == "csv":
        return str(df.to_csv(index=False))
    if fmt == "json":
        records = [
            {key: _json_value(value) for key, value in row.items()}
            for row in df.to_dict(orient="records")
        ]
        return json.dumps(records, indent=2) + "\n"
    if fmt == "markdown":
        header = [str(c) for c in df.columns]
        lines = [
            "| " + " | ".join(header) + " |",
            "| " + " | ".join("---" for _ in header) + " |",
        ]
        for row in df.itertuples(index=False):
            cells = [_cell(value).replace("|", "\\|") for value in row]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    if fmt == "table":
        table = [[str(c) for c in df.columns]]
        table += [[_cell(value) for value in row] for row in df.itertuples(index=False)]
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        return (
            "\n".join(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(line, widths, strict=True)
                ).rstrip()
                for line in table
            )
            + "\n"
        )
    raise SweepError(f"unknown leaderboard format '{fmt}' (valid: {', '.join(FORMATS)})")


# Headline quality metrics per data kind, in display order: the kind whose names the
# leaderboard holds most of is the sweep's (no data needs to be read to tell).
HEADLINE_COLUMNS: dict[str, tuple[str, ...]] = {
    "tabular": (TAB_TSTR, TAB_DETECTION_AUC, TAB_TABULAR_SCORE),
    "image": (IMG_FD, IMG_CONDITIONAL_ACCURACY, IMG_CLASS_COVERAGE),
    "signal": (SIG_SPECTRAL_ERROR, SIG_RESONANCE_ERROR, SIG_DETECTION_AUC),
}
DEFAULT_TABLE_WIDTH = 120  # when stdout is not a terminal
_TABLE_LEADING = ("rank", "trial_id", "state", "step", "gate", "score")
_TABLE_OPTIONAL = ("flags", "pareto_front", "confirm_mean", "held_up")  # shown when not empty
_SHORT_NAMES = {
    "trial_id": "trial",
    "pareto_front": "front",
    TAB_TSTR: "tstr",
    TAB_DETECTION_AUC: "detect_auc",
    TAB_TABULAR_SCORE: "tab_score",
    IMG_FD: "fd",
    IMG_CONDITIONAL_ACCURACY: "cond_acc",
    IMG_CLASS_COVERAGE: "coverage",
    SIG_SPECTRAL_ERROR: "spec_err_db",
    SIG_RESONANCE_ERROR: "reson_err",
}
_SEPARATOR = "  "


def table_columns(df: pd.DataFrame) -> list[str]:
    """The columns a terminal leaderboard shows by default, most important first.

    Rank, trial, state, step, gate and score; flags, Pareto front and confirmation figures when
    any row has them; the headline quality metrics of the sweep's data kind (but the one that
    is the score); the searched parameters.
    """
    present = set(df.columns)
    kind = max(HEADLINE_COLUMNS, key=lambda k: sum(name in present for name in HEADLINE_COLUMNS[k]))
    # a headline metric the sweep ranks by is the score column already
    headline = [
        name
        for name in HEADLINE_COLUMNS[kind]
        if name in present and not _same_values(df[name], df["score"])
    ]
    optional = [c for c in _TABLE_OPTIONAL if c in present and _has_values(df[c])]
    return [
        *(c for c in _TABLE_LEADING if c in present),
        *optional,
        *headline,
        *param_columns(df),
    ]


def param_columns(df: pd.DataFrame) -> list[str]:
    """The searched-parameter columns of a leaderboard (those after the quality metrics)."""
    known = {*_LEADING_COLUMNS, *CONFIRM_COLUMNS, *METRIC_COLUMNS, "pareto_front", "checkpoint"}
    return [str(c) for c in df.columns if c not in known and not is_quality_metric(str(c))]


def _same_values(column: pd.Series, other: pd.Series) -> bool:
    """True when two columns hold the same values (missing ones included) in every row."""
    return len(column) > 0 and all(_cell(a) == _cell(b) for a, b in zip(column, other, strict=True))


def _has_values(column: pd.Series) -> bool:
    """True when some cell of the column is neither missing nor empty."""
    return any(_cell(value) for value in column)


def short_headers(columns: Sequence[str]) -> dict[str, str]:
    """Short header of each column: ``quality/`` stripped, dotted keys cut to their last part.

    The headline metrics have fixed abbreviations (``tstr``, ``fd``, ``spec_err_db``...), and
    a dotted key keeps as many trailing parts as make it unique among ``columns``.
    """
    names = {c: _SHORT_NAMES.get(c, c.removeprefix("quality/")) for c in columns}
    short = {}
    for column, name in names.items():
        # "loss.name" says which loss: the parent is the better header
        parts = name.removesuffix(".name").split(".")
        for keep in range(1, len(parts) + 1):
            tail = ".".join(parts[-keep:])
            others = (other for c, other in names.items() if c != column)
            if not any(other == tail or other.endswith(f".{tail}") for other in others):
                break
        short[column] = tail
    return short


def select_columns(df: pd.DataFrame, names: Sequence[str]) -> list[str]:
    """Resolve ``--columns`` names (full or short headers) to leaderboard columns.

    Raises:
        SweepError: a name matches no column; the message lists close matches or the valid ones.

    """
    short = short_headers([str(c) for c in df.columns])
    lookup = {str(c): str(c) for c in df.columns}
    lookup.update({name: column for column, name in short.items()})
    chosen = []
    for name in names:
        if name not in lookup:
            close = difflib.get_close_matches(name, list(lookup), n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"valid: {', '.join(short.values())}"
            )
            raise SweepError(f"--columns: no column '{name}' ({hint})")
        chosen.append(lookup[name])
    return chosen


def format_table(
    df: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    width: int | None = DEFAULT_TABLE_WIDTH,
) -> str:
    """Render a leaderboard for a terminal: chosen columns, short headers, within ``width``.

    Args:
        df: a leaderboard (:func:`rank_trials`).
        columns: the columns to show, in order (default :func:`table_columns`).
        width: the widest a line may be; columns that do not fit are left out (empty ones
            first, then from the last; the first two always stay), and a last line names
            them. None: no limit.

    Returns:
        The aligned table, ending with a newline.

    """
    chosen = list(columns) if columns is not None else table_columns(df)
    headers = short_headers(chosen)
    cells = {
        column: [headers[column], *(_cell(value) for value in df[column])] for column in chosen
    }
    widths = {column: max(len(cell) for cell in cells[column]) for column in chosen}
    shown = list(chosen)
    while width is not None and len(shown) > 2 and _line_width(shown, widths) > width:
        # columns without a value (a parameter no trial sampled) go first, then the last one
        empty = [c for c in shown[2:] if not any(cells[c][1:])]
        shown.remove(empty[-1] if empty else shown[-1])
    lines = [
        _SEPARATOR.join(cells[c][i].ljust(widths[c]) for c in shown).rstrip()
        for i in range(len(df) + 1)
    ]
    hidden = [headers[c] for c in chosen if c not in shown]
    if hidden:
        lines.append(f"(left out to fit: {', '.join(hidden)}; see --columns, --all)")
    return "\n".join(lines) + "\n"


def _line_width(columns: Sequence[str], widths: Mapping[str, int]) -> int:
    """Width of a table line with these columns."""
    return sum(widths[c] for c in columns) + len(_SEPARATOR) * (len(columns) - 1)


def _cell(value: Any) -> str:
    """Format one value as short text: floats to 4 significant digits, missing values empty."""
    if _is_missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_value(value: Any) -> Any:
    """Convert a DataFrame cell to a JSON value (NaN -> null, numpy scalars -> Python)."""
    if _is_missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def write_leaderboard(sweep_dir: Path, df: pd.DataFrame) -> Path:
    """Write ``<sweep_dir>/leaderboard.csv`` atomically; return its path."""
    path = Path(sweep_dir) / LEADERBOARD_FILE
    atomic_write_text(path, format_leaderboard(df, "csv"))
    return path
