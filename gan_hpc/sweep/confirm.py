"""``gan-hpc sweep confirm``: retrain the top trials with new seeds and see which held up.

A sweep's winner may owe its rank to a lucky seed. Confirmation retrains each of the top K
trials' configs with S new training seeds, through the sweep's own launcher (local or slurm,
the same ``python -m gan_hpc.trial.train`` path), scores every run on the held-out split when it
ends, and summarises the score's mean and spread::

    <sweep_dir>/confirm/trials/<trial_id>-seed<seed>/   one trial directory per re-run
    <sweep_dir>/confirm.json                            the summary per original trial

A trial **held up** when (1) the gate held in at least half of its re-runs, if it held for the
original, and (2) the original score is not better than the re-runs' mean by more than
``max(2 * std, 10 % of |original|)``: the original was not an outlier of its own seeds.
Runs already finished are kept, so an interrupted confirmation continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gan_hpc._logging import get_logger
from gan_hpc.config import ConvergenceConfig, TrialConfig
from gan_hpc.convergence import gate_holds
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_json
from gan_hpc.launchers.base import TrialJob
from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.locks import DriverLock, exit_driver
from gan_hpc.sweep.directory import (
    CONFIRM_FILE,
    TRIALS_DIR,
    TrialRecord,
    collect_trials,
    read_baselines,
    read_spec,
)
from gan_hpc.sweep.rank import rank_trials
from gan_hpc.sweep.spec import SweepSpec
from gan_hpc.trial_dir import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REQUEUE,
    CheckpointKind,
    CheckpointRecord,
    TrialDir,
)

logger = get_logger(__name__)

CONFIRM_DIR = "confirm"
CONFIRM_LOCK_FILE = "confirm.lock"
POLL_INTERVAL_S = 1.0
SEED_STRIDE = 7919  # new seeds: the original's plus multiples of a prime, never the original
RELATIVE_TOLERANCE = 0.10  # an original may beat its re-runs' mean by this much and hold up


@dataclass(frozen=True, slots=True)
class ConfirmRun:
    """One re-run: the original trial, the new seed and its trial directory."""

    trial_id: str
    seed: int
    trial: TrialDir


def confirmation_seeds(original_seed: int, num_seeds: int) -> list[int]:
    """``num_seeds`` new training seeds derived from the original (deterministic, distinct)."""
    return [original_seed + SEED_STRIDE * (i + 1) for i in range(num_seeds)]


def plan_runs(
    sweep_dir: Path, spec: SweepSpec, *, top_k: int, num_seeds: int, checkpoint: CheckpointKind
) -> list[ConfirmRun]:
    """Pick the top ``top_k`` evaluated trials and write one config per new seed.

    Each re-run's ``config.json`` is the original's with only ``train.seed`` changed; one
    that exists already is left as it is (the run resumes).

    Raises:
        SweepError: no trial of the sweep has been evaluated yet.

    """
    if top_k < 1 or num_seeds < 1:
        raise SweepError(f"--top and --seeds must be >= 1, got {top_k} and {num_seeds}")
    records = collect_trials(sweep_dir)
    board = rank_trials(
        records, spec.ranking, checkpoint=checkpoint, baselines=read_baselines(sweep_dir)
    )
    top = [row["trial_id"] for row in board.to_dict(orient="records") if not pd.isna(row["step"])]
    if not top:
        raise SweepError(f"{sweep_dir}: no trial has been evaluated yet; nothing to confirm")
    by_id = {record.trial_id: record for record in records}
    runs = []
    for trial_id in top[:top_k]:
        original = TrialDir(by_id[trial_id].path).read_config()
        for seed in confirmation_seeds(original.train.seed, num_seeds):
            trial = TrialDir(sweep_dir / CONFIRM_DIR / TRIALS_DIR / f"{trial_id}-seed{seed}")
            if not trial.config_path.exists():
                trial.path.mkdir(parents=True, exist_ok=True)
                trial.write_config(_with_seed(original, seed))
            runs.append(ConfirmRun(trial_id=trial_id, seed=seed, trial=trial))
    return runs


def _with_seed(config: TrialConfig, seed: int) -> TrialConfig:
    """The same trial config with another training seed."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))


def run_confirmations(
    runs: Sequence[ConfirmRun], spec: SweepSpec, *, emit: Callable[[str], None] = logger.info
) -> None:
    """Train every unfinished run, ``spec.tune.max_concurrent_trials`` at a time.

    A run that exits for a requeue (SIGTERM) is started again; one that fails is retried up to
    ``spec.tune.max_retries_per_trial`` times (bad input: never) and then left failed (the
    others go on).
    """
    launcher = get_launcher(spec.launcher)
    launch_spec = launch_spec_for(spec)
    launcher.check(launch_spec)
    pending = [run for run in runs if not run.trial.result_path.exists()]
    emit(f"confirm: {len(runs) - len(pending)} of {len(runs)} runs already done")
    running: dict[ConfirmRun, TrialJob] = {}
    retries: dict[ConfirmRun, int] = {}
    done = len(runs) - len(pending)
    while pending or running:
        while pending and len(running) < spec.tune.max_concurrent_trials:
            run = pending.pop(0)
            job = launcher.attach(run.trial, launch_spec) or launcher.start(run.trial, launch_spec)
            running[run] = job
            emit(f"confirm: {run.trial.path.name} started (job {job.job_id})")
        time.sleep(POLL_INTERVAL_S)
        for run, job in list(running.items()):
            code = job.poll()
            if code is None:
                continue
            del running[run]
            if code == EXIT_OK:
                done += 1
                state = run.trial.read_status().state
                emit(f"confirm: {run.trial.path.name} {state} ({done} of {len(runs)} done)")
            elif code == EXIT_REQUEUE or (
                code != EXIT_BAD_INPUT and retries.get(run, 0) < spec.tune.max_retries_per_trial
            ):
                retries[run] = retries.get(run, 0) + (code != EXIT_REQUEUE)
                logger.warning("confirm: %s exited %s; starting it again", run.trial.path, code)
                pending.insert(0, run)
            else:
                done += 1
                summary = job.failure_summary()
                run.trial.update_status(state="failed", message=summary[-500:])
                emit(f"confirm: {run.trial.path.name} failed (exit {code}): {summary}")


def summarise(
    sweep_dir: Path,
    runs: Sequence[ConfirmRun],
    ranking: ConvergenceConfig,
    *,
    checkpoint: CheckpointKind,
) -> dict[str, dict[str, Any]]:
    """Score statistics per original trial over its finished re-runs (see the module doc)."""
    originals = {r.trial_id: r for r in collect_trials(sweep_dir)}
    reruns = {r.path.name: r for r in collect_trials(sweep_dir / CONFIRM_DIR)}
    summaries: dict[str, dict[str, Any]] = {}
    for trial_id in dict.fromkeys(run.trial_id for run in runs):
        chosen = [
            _chosen(reruns.get(run.trial.path.name), checkpoint)
            for run in runs
            if run.trial_id == trial_id
        ]
        finished = [c for c in chosen if c is not None and _has_score(c, ranking)]
        original = _chosen(originals.get(trial_id), checkpoint)
        summaries[trial_id] = _summary(original, finished, ranking)
    return summaries


def _chosen(record: TrialRecord | None, checkpoint: CheckpointKind) -> CheckpointRecord | None:
    """The ranked checkpoint record of a finished trial (None while it has no result.json)."""
    if record is None or not record.has_result:
        return None
    return record.best if checkpoint == "best" else record.last


def _has_score(record: CheckpointRecord, ranking: ConvergenceConfig) -> bool:
    """True when the record holds a finite ranking score."""
    return math.isfinite(record.score(ranking))


def _summary(
    original: CheckpointRecord | None,
    reruns: Sequence[CheckpointRecord],
    ranking: ConvergenceConfig,
) -> dict[str, Any]:
    """Mean, spread and gate rate of the re-runs, and whether the original held up."""
    scores = [r.score(ranking) for r in reruns]
    original_score = original.score(ranking) if original else math.nan
    summary: dict[str, Any] = {
        "original_score": original_score,
        "confirm_seeds": len(scores),
        "confirm_mean": statistics.fmean(scores) if scores else math.nan,
        "confirm_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "confirm_gate_rate": (
            sum(gate_holds(r.metrics, ranking) for r in reruns) / len(reruns)
            if reruns
            else math.nan
        ),
        "held_up": None,
    }
    if not scores or not math.isfinite(original_score):
        return summary
    sign = 1.0 if ranking.score_mode == "max" else -1.0
    shortfall = sign * (original_score - summary["confirm_mean"])  # > 0: the original was better
    tolerance = max(2.0 * summary["confirm_std"], RELATIVE_TOLERANCE * abs(original_score))
    gate_ok = not (original and gate_holds(original.metrics, ranking)) or (
        summary["confirm_gate_rate"] >= 0.5
    )
    summary["held_up"] = bool(gate_ok and shortfall <= tolerance)
    return summary


def confirm_sweep(
    sweep_dir: Path,
    *,
    top_k: int,
    num_seeds: int,
    checkpoint: CheckpointKind = "best",
    emit: Callable[[str], None] = logger.info,
) -> dict[str, dict[str, Any]]:
    """Retrain the top ``top_k`` trials with ``num_seeds`` new seeds; write ``confirm.json``.

    Returns:
        ``{trial_id: summary}`` (also in ``<sweep_dir>/confirm.json``), in rank order.

    Raises:
        SweepError: not a sweep directory, nothing evaluated, or another confirm is running.
        LaunchError: the launcher cannot start the runs (e.g. a rejected sbatch option).

    """
    sweep_dir = Path(sweep_dir).resolve()
    spec = read_spec(sweep_dir)
    with DriverLock(sweep_dir / CONFIRM_LOCK_FILE, on_lost=exit_driver):
        runs = plan_runs(sweep_dir, spec, top_k=top_k, num_seeds=num_seeds, checkpoint=checkpoint)
        try:
            run_confirmations(runs, spec, emit=emit)
        finally:  # what finished is summarised even when the rest fails
            summaries = summarise(sweep_dir, runs, spec.ranking, checkpoint=checkpoint)
            atomic_write_json(
                sweep_dir / CONFIRM_FILE,
                {
                    "top_k": top_k,
                    "num_seeds": num_seeds,
                    "checkpoint": checkpoint,
                    "score": spec.ranking.score,
                    "score_mode": spec.ranking.score_mode,
                    "trials": summaries,
                },
            )
    return summaries


def format_confirmations(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The confirmation table: one row per original trial, in rank order."""
    rows = [{"trial_id": trial_id, **summary} for trial_id, summary in summaries.items()]
    return pd.DataFrame(
        rows,
        columns=[
            "trial_id",
            "original_score",
            "confirm_seeds",
            "confirm_mean",
            "confirm_std",
            "confirm_gate_rate",
            "held_up",
        ],
    )
