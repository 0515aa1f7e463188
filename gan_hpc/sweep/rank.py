"""Ranking: order a sweep's trials into a leaderboard (gates, flags, Pareto fronts, the score).

The trials come from the sweep directory (:func:`gan_hpc.sweep.directory.collect_trials`); a row of
the leaderboard takes every figure from one record of its trial, ``best`` or ``last``, never a
mix; the held-out quality metrics (``quality/...``) are in that same record, computed for its
checkpoint when the trial ended (:mod:`gan_hpc.bundle.scoring`).
:mod:`gan_hpc.sweep.leaderboard` renders the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gan_hpc.config import ConvergenceConfig, is_quality_metric
from gan_hpc.convergence import ALL_CONVERGENCE, CONVERGED, D_ACC_HELDOUT, FOOLING_RATE, gate_holds
from gan_hpc.quality_names import FLOOR_BASELINES
from gan_hpc.quality_names import TAB_COLUMN_PREFIX as COLUMN_PREFIX
from gan_hpc.sweep.directory import (
    TrialRecord,
    collect_trials,
    read_baselines,
    read_confirmations,
)
from gan_hpc.trial_dir import CheckpointKind, CheckpointRecord

BASELINE_PREFIX = "baseline:"  # trial_id of a baseline row, e.g. baseline:real_data
# the flag of a trial whose score is no better than the trivial baseline's (the floor)
BELOW_FLOOR = "below_floor"
# The convergence metrics shown on the leaderboard; "converged" is the trainer's gate flag,
# which the "gate" column recomputes with the ranking's thresholds.
METRIC_COLUMNS: tuple[str, ...] = tuple(m for m in ALL_CONVERGENCE if m != CONVERGED)
LEADING_COLUMNS = (
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


def rank_trials(
    records: Iterable[TrialRecord],
    ranking: ConvergenceConfig,
    *,
    checkpoint: CheckpointKind = "best",
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
        that fired, and :data:`BELOW_FLOOR` when ``baselines`` has a floor the score does not
        beat), score, the convergence metrics, the quality metrics (per-column
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
    floor = floor_score(baselines or {}, ranking)
    rows = []
    for record in records:
        chosen = chosen_records[record.trial_id]
        metrics = chosen.metrics if chosen is not None else {}
        score = chosen.score(ranking) if chosen is not None else math.nan
        flags = list(record.flags)
        if floor is not None and not _beats(score, floor, ranking):
            flags.append(BELOW_FLOOR)
        rows.append(
            {
                "trial_id": record.trial_id,
                "state": record.state,
                "resumes": record.resumes,
                "steps_repeated": record.steps_repeated,
                "step": chosen.step if chosen is not None else None,
                "gate": bool(chosen is not None and gate_holds(metrics, ranking)),
                "flags": ",".join(flags),
                "score": score,
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
        *LEADING_COLUMNS,
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


def floor_score(
    baselines: Mapping[str, Mapping[str, float]], ranking: ConvergenceConfig
) -> float | None:
    """The ranking score of the sweep's floor baseline, or None when there is none.

    The floor is the trivial generator of the data kind: independent columns, the mean curve
    or independent pixels (``baselines.json``, scored on the test split).
    """
    for name in FLOOR_BASELINES:
        value = baselines.get(name, {}).get(ranking.score, math.nan)
        if math.isfinite(value):
            return value
    return None


def _beats(score: float, floor: float, ranking: ConvergenceConfig) -> bool:
    """True when ``score`` is strictly better than ``floor``; a missing score is not judged."""
    if not math.isfinite(score):
        return True
    return score > floor if ranking.score_mode == "max" else score < floor


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
    """Sort key: gate, scored, no flags, Pareto front, score, trial id.

    A trial without a score ranks after every scored one, flagged ones included: there is
    nothing to judge or export yet. The Pareto front counts only when the ranking names
    ``pareto_metrics``.
    """
    score = row["score"]
    missing = score is None or math.isnan(score)
    oriented = 0.0 if missing else (-score if ranking.score_mode == "max" else score)
    front = row.get("pareto_front", 0)
    gate_first = ranking.use_gate_first and bool(row["gate"])
    return (not gate_first, missing, bool(row["flags"]), front, oriented, row["trial_id"])


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
    keys.append(
        f"scored trials, then those no guard flagged and better than the floor baseline "
        f"({BELOW_FLOOR})"
    )
    if ranking.pareto_metrics:
        keys.append(f"Pareto front of {', '.join(ranking.pareto_metrics)}")
    split = f" on the {ranking.score_split} split" if is_quality_metric(ranking.score) else ""
    keys.append(f"{ranking.score}{split} ({direction} is better)")
    shown = "" if ranking.use_gate_first else "; the gate is shown, not ranked on"
    return f"ranked by {', then '.join(keys)}{shown}; baseline rows are unranked references"


def sweep_leaderboard(
    sweep_dir: Path, ranking: ConvergenceConfig, *, checkpoint: CheckpointKind = "best"
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
