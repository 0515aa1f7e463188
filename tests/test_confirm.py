"""Confirmation of the top trials with new seeds: seeds, planning, the held-up rule."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from gan_hpc.config import ConvergenceConfig, TrainConfig, TrialConfig
from gan_hpc.convergence import D_ACC_BALANCED, D_ACC_HELDOUT, D_LOSS_GAP, FOOLING_RATE
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_json
from gan_hpc.sweep.confirm import (
    CONFIRM_DIR,
    ConfirmRun,
    _summary,
    confirmation_seeds,
    format_confirmations,
    plan_runs,
    summarise,
)
from gan_hpc.sweep.directory import TRIALS_DIR, collect_trials
from gan_hpc.sweep.rank import rank_trials
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict
from gan_hpc.trial_dir import CheckpointRecord, TrialDir

RANKING = ConvergenceConfig(d_acc_min=0.8, fooling_rate_min=0.4, score=D_LOSS_GAP)
MAX_RANKING = dataclasses.replace(RANKING, score=D_ACC_BALANCED, score_mode="max")


@pytest.fixture
def spec() -> SweepSpec:
    return sweep_spec_from_dict(
        {
            "name": "toy",
            "search": {"optim.generator.lr": {"loguniform": [1.0e-5, 1.0e-3]}},
            "ranking": dataclasses.asdict(RANKING),
        },
        source="toy.yaml",
    )


def evaluation(score: float, *, gate: bool = False, **extra: float) -> dict[str, float]:
    """Metrics of one evaluation: ``score`` is the d_loss_gap; the gate holds when asked."""
    return {
        D_ACC_HELDOUT: 0.9 if gate else 0.5,
        FOOLING_RATE: 0.5 if gate else 0.1,
        D_LOSS_GAP: score,
        **extra,
    }


def record(score: float, *, gate: bool = False, metric: str = D_LOSS_GAP) -> CheckpointRecord:
    values = evaluation(0.0, gate=gate)
    values[metric] = score
    return CheckpointRecord(step=100, metrics=values, checkpoint="checkpoints/best")


def result(metrics: dict[str, float]) -> dict[str, Any]:
    """A finished trial's result.json with one evaluation as both best and last."""
    entry = {"step": 100, "metrics": metrics, "checkpoint": "checkpoints/best"}
    return {"state": "finished", "step": 100, "best": entry, "last": entry}


def make_trial(
    root: Path,
    trial_id: str,
    *,
    seed: int = 0,
    lr: float = 1.0e-4,
    metrics: dict[str, float] | None = None,
) -> TrialDir:
    """A trial directory under ``root/trials``; with ``metrics`` it has finished."""
    trial = TrialDir(root / TRIALS_DIR / trial_id)
    trial.path.mkdir(parents=True)
    base = TrialConfig(convergence=RANKING, train=TrainConfig(seed=seed))
    config = dataclasses.replace(
        base,
        optim=dataclasses.replace(
            base.optim, generator=dataclasses.replace(base.optim.generator, lr=lr)
        ),
    )
    trial.write_config(config)
    if metrics is not None:
        atomic_write_json(trial.result_path, result(metrics))
    return trial


def without_seed(config: TrialConfig) -> dict[str, Any]:
    document = config.to_dict()
    del document["train"]["seed"]
    return document


# --------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("original", [0, 1, 42, 7919, 123_456])
def test_confirmation_seeds_are_distinct_new_and_deterministic(original: int) -> None:
    seeds = confirmation_seeds(original, 5)
    assert len(seeds) == len(set(seeds)) == 5
    assert original not in seeds
    assert seeds == confirmation_seeds(original, 5)
    assert confirmation_seeds(original, 2) == seeds[:2]  # more seeds extend, never reshuffle


# ------------------------------------------------------------------------------ planning


def test_plan_runs_takes_the_top_k_in_leaderboard_order(tmp_path: Path, spec: SweepSpec) -> None:
    make_trial(tmp_path, "a", lr=1e-4, metrics=evaluation(0.5, gate=True))
    make_trial(tmp_path, "b", lr=2e-4, metrics=evaluation(0.01))  # best score, no gate
    make_trial(tmp_path, "c", lr=3e-4, seed=5, metrics=evaluation(0.1, gate=True))
    make_trial(tmp_path, "d", lr=4e-4)  # never evaluated
    board = rank_trials(collect_trials(tmp_path), spec.ranking)
    assert list(board["trial_id"]) == ["c", "a", "b", "d"]

    runs = plan_runs(tmp_path, spec, top_k=2, num_seeds=3, checkpoint="best")
    assert [run.trial_id for run in runs] == ["c"] * 3 + ["a"] * 3
    assert [run.seed for run in runs] == confirmation_seeds(5, 3) + confirmation_seeds(0, 3)
    for run in runs:
        assert run.trial.path == (
            tmp_path / CONFIRM_DIR / TRIALS_DIR / f"{run.trial_id}-seed{run.seed}"
        )
        original = TrialDir(tmp_path / TRIALS_DIR / run.trial_id).read_config()
        rerun = run.trial.read_config()
        assert rerun.train.seed == run.seed != original.train.seed
        assert without_seed(rerun) == without_seed(original)
        assert not run.trial.result_path.exists()


def test_plan_runs_skips_unevaluated_trials_when_k_is_large(
    tmp_path: Path, spec: SweepSpec
) -> None:
    make_trial(tmp_path, "a", metrics=evaluation(0.3))
    make_trial(tmp_path, "b")  # config only
    runs = plan_runs(tmp_path, spec, top_k=5, num_seeds=1, checkpoint="last")
    assert [run.trial_id for run in runs] == ["a"]
    assert not (tmp_path / CONFIRM_DIR / TRIALS_DIR / "b-seed7919").exists()


def test_plan_runs_leaves_an_existing_config_alone(tmp_path: Path, spec: SweepSpec) -> None:
    make_trial(tmp_path, "a", metrics=evaluation(0.3))
    first = plan_runs(tmp_path, spec, top_k=1, num_seeds=2, checkpoint="best")
    kept = first[0].trial.config_path
    # a run already under way keeps the config it started with, even an edited one
    document = first[0].trial.read_config().to_dict()
    document["train"]["num_steps"] = 7
    atomic_write_json(kept, document)
    before = kept.read_bytes()
    again = plan_runs(tmp_path, spec, top_k=1, num_seeds=2, checkpoint="best")
    assert [(r.trial_id, r.seed) for r in again] == [(r.trial_id, r.seed) for r in first]
    assert kept.read_bytes() == before
    assert again[0].trial.read_config().train.num_steps == 7


@pytest.mark.parametrize("with_trials", [False, True])
def test_plan_runs_refuses_a_sweep_with_no_evaluation(
    tmp_path: Path, spec: SweepSpec, with_trials: bool
) -> None:
    if with_trials:
        make_trial(tmp_path, "a")
        make_trial(tmp_path, "b")
    with pytest.raises(SweepError, match="no trial has been evaluated"):
        plan_runs(tmp_path, spec, top_k=2, num_seeds=2, checkpoint="best")
    assert not (tmp_path / CONFIRM_DIR).exists()


@pytest.mark.parametrize(("top_k", "num_seeds"), [(0, 2), (2, 0)])
def test_plan_runs_rejects_non_positive_counts(
    tmp_path: Path, spec: SweepSpec, top_k: int, num_seeds: int
) -> None:
    make_trial(tmp_path, "a", metrics=evaluation(0.3))
    with pytest.raises(SweepError, match="must be >= 1"):
        plan_runs(tmp_path, spec, top_k=top_k, num_seeds=num_seeds, checkpoint="best")


# ------------------------------------------------------------------------- held-up rule


def test_summary_statistics() -> None:
    reruns = [record(0.2), record(0.3, gate=True), record(0.4)]
    summary = _summary(record(0.25), reruns, RANKING)
    assert summary["original_score"] == 0.25
    assert summary["confirm_seeds"] == 3
    assert summary["confirm_mean"] == pytest.approx(0.3)
    assert summary["confirm_std"] == pytest.approx(statistics.stdev([0.2, 0.3, 0.4]))
    assert summary["confirm_gate_rate"] == pytest.approx(1 / 3)
    assert summary["held_up"] is True


@pytest.mark.parametrize(
    ("original", "reruns", "held_up"),
    [
        (0.1, [0.5, 0.52], False),  # far better (lower) than every re-run: a lucky seed
        (0.46, [0.49, 0.50], True),  # better, but within 10 % of the original score
        (0.5, [0.48, 0.50], True),  # worse than its re-runs
        (0.1, [0.05, 0.5], True),  # better than the mean, but within 2 std
    ],
)
def test_held_up_min_mode(original: float, reruns: list[float], held_up: bool) -> None:
    summary = _summary(record(original), [record(s) for s in reruns], RANKING)
    assert summary["held_up"] is held_up


@pytest.mark.parametrize(
    ("original", "reruns", "held_up"),
    [
        (0.9, [0.5, 0.52], False),  # far better (higher) than every re-run
        (0.9, [0.84, 0.85], True),  # within 10 %
        (0.5, [0.55, 0.6], True),  # worse than its re-runs
        (0.1, [0.5, 0.52], True),  # far worse: that is no outlier in its favour
        (0.9, [0.3, 0.9], True),  # within 2 std
    ],
)
def test_held_up_max_mode(original: float, reruns: list[float], held_up: bool) -> None:
    summary = _summary(
        record(original, metric=D_ACC_BALANCED),
        [record(s, metric=D_ACC_BALANCED) for s in reruns],
        MAX_RANKING,
    )
    assert summary["original_score"] == original
    assert summary["held_up"] is held_up


@pytest.mark.parametrize(
    ("original_gate", "rerun_gates", "held_up"),
    [
        (True, [True, False, False], False),  # the gate held in 1 of 3 re-runs
        (True, [True, False], True),  # exactly half
        (True, [True, True], True),
        (False, [False, False], True),  # the original never passed: nothing to hold
    ],
)
def test_held_up_needs_the_gate_in_half_the_reruns(
    original_gate: bool, rerun_gates: list[bool], held_up: bool
) -> None:
    reruns = [record(0.3, gate=gate) for gate in rerun_gates]
    summary = _summary(record(0.3, gate=original_gate), reruns, RANKING)
    assert summary["confirm_gate_rate"] == pytest.approx(sum(rerun_gates) / len(rerun_gates))
    assert summary["held_up"] is held_up


def test_no_finished_rerun_leaves_held_up_open() -> None:
    summary = _summary(record(0.3, gate=True), [], RANKING)
    assert summary["held_up"] is None
    assert summary["confirm_seeds"] == 0
    assert math.isnan(summary["confirm_mean"])
    assert math.isnan(summary["confirm_gate_rate"])
    assert summary["original_score"] == 0.3


def test_missing_original_leaves_held_up_open() -> None:
    summary = _summary(None, [record(0.3)], RANKING)
    assert summary["held_up"] is None
    assert math.isnan(summary["original_score"])
    assert summary["confirm_mean"] == 0.3
    assert summary["confirm_std"] == 0.0  # one re-run has no spread


# ----------------------------------------------------------------------------- summarise


def test_summarise_counts_finished_reruns_only(tmp_path: Path, spec: SweepSpec) -> None:
    make_trial(tmp_path, "a", metrics=evaluation(0.2, gate=True))
    make_trial(tmp_path, "b", metrics=evaluation(0.4, gate=True))
    runs = plan_runs(tmp_path, spec, top_k=2, num_seeds=3, checkpoint="best")
    finished: dict[ConfirmRun, float] = {runs[0]: 0.25, runs[1]: 0.35, runs[3]: 0.9}
    for run, score in finished.items():
        atomic_write_json(run.trial.result_path, result(evaluation(score, gate=True)))

    summaries = summarise(tmp_path, runs, spec.ranking, checkpoint="best")
    assert list(summaries) == ["a", "b"]  # rank order
    a, b = summaries["a"], summaries["b"]
    assert a["confirm_seeds"] == 2 and a["confirm_mean"] == pytest.approx(0.3)
    assert a["original_score"] == 0.2 and a["held_up"] is True  # 0.1 short, within 2 std
    assert b["confirm_seeds"] == 1 and b["confirm_mean"] == pytest.approx(0.9)
    assert b["confirm_gate_rate"] == 1.0 and b["held_up"] is False  # its one re-run: far worse

    table = format_confirmations(summaries)
    assert list(table["trial_id"]) == ["a", "b"]
    assert list(table.columns) == [
        "trial_id",
        "original_score",
        "confirm_seeds",
        "confirm_mean",
        "confirm_std",
        "confirm_gate_rate",
        "held_up",
    ]
