"""Leaderboard: reading trial directories (finished, running, broken) and ranking them."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gan_hpc.config import ConvergenceConfig, TrialConfig
from gan_hpc.config_validation import ConfigValueError, config_from_dict
from gan_hpc.convergence import (
    CONVERGED,
    D_ACC_HELDOUT,
    D_LOSS_GAP,
    D_REAL_MEAN,
    FOOLING_RATE,
    STEP,
    selection_key,
)
from gan_hpc.errors import SpecError, SweepError
from gan_hpc.files import append_jsonl, atomic_write_json
from gan_hpc.sweep.directory import (
    LEADERBOARD_FILE,
    LEADERBOARD_FORMATS,
    TRIALS_DIR,
    collect_trials,
    read_spec,
    write_spec,
)
from gan_hpc.sweep.leaderboard import format_leaderboard, write_leaderboard
from gan_hpc.sweep.rank import (
    BELOW_FLOOR,
    METRIC_COLUMNS,
    pareto_fronts,
    rank_trials,
    ranking_rule,
)
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict, trial_config_for

RANKING = ConvergenceConfig(d_acc_min=0.8, fooling_rate_min=0.4, score="d_loss_gap")

SPEC_DOCUMENT: dict[str, Any] = {
    "name": "toy",
    "base": {"train": {"num_steps": 300, "eval_every_steps": 100}},
    "search": {
        "loss.name": {"choice": ["bce_logits", "hinge", "wasserstein"]},
        "loss.clip_value": {"loguniform": [0.005, 0.05], "when": {"loss.name": ["wasserstein"]}},
        "optim.generator.lr": {"loguniform": [1.0e-5, 1.0e-3]},
    },
    "tune": {"grace_period_steps": 100},
    "ranking": dataclasses.asdict(RANKING),
}


def metrics(d_acc: float, fooling: float, gap: float, **extra: float) -> dict[str, float]:
    """Evaluation metrics; the gate holds when d_acc > 0.8 and fooling > 0.4."""
    gate = d_acc > RANKING.d_acc_min and fooling > RANKING.fooling_rate_min
    return {
        D_ACC_HELDOUT: d_acc,
        FOOLING_RATE: fooling,
        D_LOSS_GAP: gap,
        D_REAL_MEAN: 0.5,
        CONVERGED: 1.0 if gate else 0.0,
        **extra,
    }


def make_trial(
    sweep_dir: Path,
    trial_id: str,
    *,
    config: TrialConfig | None = None,
    evaluations: list[tuple[int, dict[str, float]]] = (),
    result: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> Path:
    """Write a trial directory as the trainer would: config, metrics, status, result."""
    path = sweep_dir / TRIALS_DIR / trial_id
    path.mkdir(parents=True)
    atomic_write_json(path / "config.json", (config or TrialConfig(convergence=RANKING)).to_dict())
    for step, values in evaluations:
        append_jsonl(path / "metrics.jsonl", {STEP: step, "epoch": 0, "wall_time_s": 1.0, **values})
    if status is not None:
        atomic_write_json(path / "status.json", status)
    if result is not None:
        atomic_write_json(path / "result.json", result)
    return path


def finished(best: tuple[int, dict[str, float]], last: tuple[int, dict[str, float]]) -> dict:
    return {
        "state": "finished",
        "step": last[0],
        "wall_time_s": 12.5,
        "best": {"step": best[0], "metrics": best[1], "checkpoint": "checkpoints/best.pt"},
        "last": {
            "step": last[0],
            "metrics": last[1],
            "checkpoint": f"checkpoints/step-{last[0]:08d}.pt",
        },
    }


def one_eval_trial(sweep_dir: Path, trial_id: str, values: dict[str, float]) -> None:
    make_trial(
        sweep_dir,
        trial_id,
        evaluations=[(100, values)],
        result=finished((100, values), (100, values)),
    )


@pytest.fixture
def spec() -> SweepSpec:
    return sweep_spec_from_dict(SPEC_DOCUMENT, source="toy.yaml")


# ---------------------------------------------------------------------------- ranking order


def test_gate_first_then_score_min(tmp_path: Path) -> None:
    one_eval_trial(tmp_path, "a", metrics(0.9, 0.5, gap=0.5))  # gate, worse score
    one_eval_trial(tmp_path, "b", metrics(0.7, 0.5, gap=0.01))  # no gate, best score
    one_eval_trial(tmp_path, "c", metrics(0.9, 0.6, gap=0.1))  # gate, best gated score
    one_eval_trial(tmp_path, "d", metrics(0.95, 0.1, gap=0.2))  # no gate
    df = rank_trials(collect_trials(tmp_path), RANKING)
    assert list(df["trial_id"]) == ["c", "a", "b", "d"]
    assert list(df["rank"]) == [1, 2, 3, 4]
    assert list(df["gate"]) == [True, True, False, False]
    assert list(df["score"]) == [0.1, 0.5, 0.01, 0.2]


def test_gate_shown_but_not_ranked_on(tmp_path: Path) -> None:
    one_eval_trial(tmp_path, "a", metrics(0.9, 0.5, gap=0.5))  # gate, worse score
    one_eval_trial(tmp_path, "b", metrics(0.7, 0.5, gap=0.01))  # no gate, best score
    ranking = dataclasses.replace(RANKING, use_gate_first=False)
    df = rank_trials(collect_trials(tmp_path), ranking)
    assert list(df["trial_id"]) == ["b", "a"]
    assert list(df["gate"]) == [False, True]
    assert "not ranked on" in ranking_rule(ranking)
    assert "the gate first" in ranking_rule(RANKING)
    assert selection_key(metrics(0.7, 0.5, gap=0.01), ranking) > selection_key(
        metrics(0.9, 0.5, gap=0.5), ranking
    )


def test_score_max_mode(tmp_path: Path) -> None:
    one_eval_trial(tmp_path, "a", metrics(0.9, 0.5, gap=0.1))
    one_eval_trial(tmp_path, "b", metrics(0.9, 0.7, gap=0.3))
    one_eval_trial(tmp_path, "c", metrics(0.1, 0.9, gap=0.0))  # no gate: last despite its score
    ranking = dataclasses.replace(RANKING, score=FOOLING_RATE, score_mode="max")
    df = rank_trials(collect_trials(tmp_path), ranking)
    assert list(df["trial_id"]) == ["b", "a", "c"]
    assert list(df["score"]) == [0.7, 0.5, 0.9]


def test_a_validation_split_score_ranks_without_the_test_figures(tmp_path: Path) -> None:
    tstr = "quality/ml_efficacy_tstr"
    for trial_id, validation, test in (("a", 0.70, 0.80), ("b", 0.75, 0.72)):
        record = {"step": 100, "metrics": metrics(0.9, 0.5, gap=0.1, **{tstr: test})}
        make_trial(
            tmp_path,
            trial_id,
            result={
                **finished((100, record["metrics"]), (100, record["metrics"])),
                "best": {
                    **record,
                    "checkpoint": "checkpoints/best.pt",
                    "validation": {tstr: validation},
                },
            },
        )
    # a trial still running (or stopped early) has no score until it ends and is scored
    make_trial(tmp_path, "c", evaluations=[(100, metrics(0.9, 0.5, gap=0.1, **{tstr: 0.99}))])
    on_test = dataclasses.replace(
        RANKING, score=tstr, score_mode="max", use_quality_at_evaluations=True
    )
    on_validation = dataclasses.replace(on_test, score_split="validation")
    by_test = rank_trials(collect_trials(tmp_path), on_test)
    by_validation = rank_trials(collect_trials(tmp_path), on_validation)
    assert list(by_test["trial_id"]) == ["a", "b", "c"]
    assert list(by_validation["trial_id"]) == ["b", "a", "c"]
    assert list(by_validation["score"])[:2] == [0.75, 0.70]
    # the leaderboard's quality column still reports the test split
    assert list(by_validation[tstr])[:2] == [0.72, 0.80]
    assert "on the validation split" in ranking_rule(on_validation)
    assert "on the test split" in ranking_rule(on_test)


def test_a_validation_split_needs_a_quality_score_scored_at_evaluations() -> None:
    with pytest.raises(ConfigValueError, match="score_split: 'validation' reads a quality score"):
        dataclasses.replace(RANKING, score_split="validation")


def test_ties_are_broken_by_trial_id(tmp_path: Path) -> None:
    for trial_id in ("t3", "t1", "t2"):
        one_eval_trial(tmp_path, trial_id, metrics(0.9, 0.5, gap=0.2))
    records = collect_trials(tmp_path)
    forward = rank_trials(records, RANKING)
    backward = rank_trials(list(reversed(records)), RANKING)
    assert list(forward["trial_id"]) == ["t1", "t2", "t3"]
    pd.testing.assert_frame_equal(forward, backward)


def test_trial_without_evaluations_ranks_last(tmp_path: Path) -> None:
    make_trial(tmp_path, "a")  # launched, nothing reported yet
    one_eval_trial(tmp_path, "b", metrics(0.1, 0.1, gap=9.0))
    df = rank_trials(collect_trials(tmp_path), RANKING)
    assert list(df["trial_id"]) == ["b", "a"]
    row = df.iloc[1]
    assert row["state"] == "pending" and math.isnan(row["score"]) and pd.isna(row["step"])


# ---------------------------------------------------------------------- reading trial dirs


def test_running_trial_is_read_from_metrics_jsonl(tmp_path: Path) -> None:
    make_trial(
        tmp_path,
        "run",
        evaluations=[
            (100, metrics(0.5, 0.5, gap=0.01)),  # no gate, best score
            (200, metrics(0.9, 0.5, gap=0.3)),  # gate: best by the trainer's rule
            (300, metrics(0.9, 0.6, gap=0.3)),  # same key: the earliest stays best
            (400, metrics(0.6, 0.9, gap=0.2)),  # last
        ],
        status={"state": "running", "step": 430, "restart_count": 1},
    )
    (record,) = collect_trials(tmp_path)
    assert record.state == "running" and record.step == 430 and record.restart_count == 1
    assert not record.has_result
    assert record.best is not None and record.best.step == 200 and record.best.checkpoint is None
    assert record.last is not None and record.last.step == 400
    assert record.best.metrics[D_LOSS_GAP] == 0.3


def test_torn_metrics_line_is_ignored(tmp_path: Path) -> None:
    path = make_trial(tmp_path, "run", evaluations=[(100, metrics(0.9, 0.5, gap=0.3))])
    with open(path / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"step": 200, "d_loss_g')  # crash mid-append
    (record,) = collect_trials(tmp_path)
    assert record.last is not None and record.last.step == 100


def test_corrupt_result_json_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_trial(tmp_path, "broken", evaluations=[(100, metrics(0.9, 0.5, gap=0.3))])
    (path / "result.json").write_text("{not json", encoding="utf-8")
    one_eval_trial(tmp_path, "fine", metrics(0.9, 0.5, gap=0.1))
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        records = collect_trials(tmp_path)
    assert str(path / "result.json") in caplog.text
    broken = next(r for r in records if r.trial_id == "broken")
    assert not broken.has_result and broken.best is not None and broken.best.step == 100
    assert [r.trial_id for r in records] == ["broken", "fine"]


def test_malformed_entries_do_not_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = (100, metrics(0.9, 0.5, gap=0.1))
    result = finished(good, good)
    result["best"] = {"step": "x", "metrics": [1, 2]}
    path = make_trial(tmp_path, "odd", evaluations=[good], result=result, status=[1, 2])  # type: ignore[arg-type]
    append_jsonl(path / "metrics.jsonl", {"step": "late", "d_loss_gap": None})
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        (record,) = collect_trials(tmp_path)
    assert "'best' entry is malformed" in caplog.text
    assert record.best is None and record.last is not None and record.last.step == 100
    assert record.restart_count == 0


def test_missing_or_corrupt_config_skips_the_trial(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one_eval_trial(tmp_path, "good", metrics(0.9, 0.5, gap=0.1))
    (tmp_path / TRIALS_DIR / "empty").mkdir()
    corrupt = make_trial(tmp_path, "corrupt")
    (corrupt / "config.json").write_text("[1, 2", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        records = collect_trials(tmp_path)
    assert [r.trial_id for r in records] == ["good"]
    assert str(tmp_path / TRIALS_DIR / "empty" / "config.json") in caplog.text
    assert str(corrupt / "config.json") in caplog.text


def test_missing_sweep_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"no such sweep directory"):
        collect_trials(tmp_path / "nope")
    assert collect_trials(tmp_path) == []  # a sweep that has not started a trial yet


# -------------------------------------------------------------------- best vs last, params


def test_best_and_last_are_never_mixed(tmp_path: Path) -> None:
    best = (200, metrics(0.9, 0.5, gap=0.1))
    last = (300, metrics(0.6, 0.3, gap=0.8))
    make_trial(tmp_path, "t", evaluations=[best, last], result=finished(best, last))
    records = collect_trials(tmp_path)
    for which, (step, values) in (("best", best), ("last", last)):
        row = rank_trials(records, RANKING, checkpoint=which).iloc[0]
        assert row["step"] == step
        assert row["gate"] == (which == "best")
        assert row["score"] == values[D_LOSS_GAP]
        for name in METRIC_COLUMNS:
            expected = values.get(name, math.nan)
            assert row[name] == expected or (math.isnan(row[name]) and math.isnan(expected))
    best_row = rank_trials(records, RANKING, checkpoint="best").iloc[0]
    last_row = rank_trials(records, RANKING, checkpoint="last").iloc[0]
    assert best_row["checkpoint"].endswith("checkpoints/best.pt")
    assert last_row["checkpoint"].endswith("checkpoints/step-00000300.pt")


def test_params_come_from_the_spec(tmp_path: Path, spec: SweepSpec) -> None:
    write_spec(tmp_path, spec)
    assert read_spec(tmp_path) == dataclasses.replace(spec, source=str(tmp_path / "spec.yaml"))
    trials = {
        "w": {"loss.name": "wasserstein", "loss.clip_value": 0.02, "optim.generator.lr": 1e-4},
        "h": {"loss.name": "hinge", "optim.generator.lr": 3e-4},
    }
    for trial_id, params in trials.items():
        config = trial_config_for(spec, params)
        make_trial(tmp_path, trial_id, config=config, evaluations=[(100, metrics(0.9, 0.5, 0.1))])
    records = {r.trial_id: r for r in collect_trials(tmp_path)}
    assert records["w"].params == trials["w"]
    # clip_value was not sampled for hinge: shown as missing, not as base's value
    assert records["h"].params == {**trials["h"], "loss.clip_value": None}
    df = rank_trials(records.values(), RANKING)
    assert {"loss.name", "loss.clip_value", "optim.generator.lr"} <= set(df.columns)


def test_params_without_a_spec_are_the_values_that_differ(tmp_path: Path) -> None:
    for trial_id, lr in (("a", 1e-4), ("b", 2e-4)):
        config = TrialConfig.from_dict(
            {"optim": {"generator": {"lr": lr}}, "convergence": dataclasses.asdict(RANKING)}
        )
        make_trial(tmp_path, trial_id, config=config)
    assert [r.params for r in collect_trials(tmp_path)] == [
        {"optim.generator.lr": 1e-4},
        {"optim.generator.lr": 2e-4},
    ]


# ------------------------------------------------------------------------------- rendering


@pytest.fixture
def leaderboard(tmp_path: Path, spec: SweepSpec) -> pd.DataFrame:
    write_spec(tmp_path, spec)
    for trial_id, gap in (("a", 0.3), ("b", 0.1)):
        config = trial_config_for(spec, {"loss.name": "hinge"})
        make_trial(
            tmp_path,
            trial_id,
            config=config,
            evaluations=[(100, metrics(0.9, 0.5, gap))],
            result=finished((100, metrics(0.9, 0.5, gap)), (100, metrics(0.9, 0.5, gap))),
        )
    make_trial(tmp_path, "c")  # no evaluation: empty cells
    return rank_trials(collect_trials(tmp_path), RANKING)


@pytest.mark.parametrize("fmt", LEADERBOARD_FORMATS)
def test_every_format_renders(leaderboard: pd.DataFrame, fmt: str) -> None:
    text = format_leaderboard(leaderboard, fmt)  # type: ignore[arg-type]
    assert text.endswith("\n") and "b" in text
    if fmt == "csv":
        back = pd.read_csv(io.StringIO(text))
        assert list(back.columns) == list(leaderboard.columns)
        assert list(back["trial_id"]) == ["b", "a", "c"]
    elif fmt == "json":
        rows = json.loads(text)
        assert [row["trial_id"] for row in rows] == ["b", "a", "c"]
        assert rows[0]["rank"] == 1 and rows[0]["gate"] is True and rows[2]["score"] is None
    elif fmt == "markdown":
        lines = text.splitlines()
        assert lines[0].startswith(
            "| rank | trial_id | state | resumes | steps_repeated | step | gate |"
        )
        assert set(lines[1].replace("|", "").split()) == {"---"}
        assert len(lines) == 2 + 3
        assert all(line.count("|") == lines[0].count("|") for line in lines)
    else:
        lines = text.splitlines()
        assert lines[0].split()[:3] == ["rank", "trial_id", "state"]
        assert lines[1].split()[:2] == ["1", "b"]


def test_empty_leaderboard_renders(tmp_path: Path) -> None:
    df = rank_trials([], RANKING)
    for fmt in LEADERBOARD_FORMATS:
        assert "trial_id" in format_leaderboard(df, fmt) or fmt == "json"  # type: ignore[arg-type]
    assert format_leaderboard(df, "json").strip() == "[]"


def test_unknown_format_is_an_error(leaderboard: pd.DataFrame) -> None:
    with pytest.raises(SweepError, match=r"unknown leaderboard format 'html' \(valid: table"):
        format_leaderboard(leaderboard, "html")  # type: ignore[arg-type]


def test_write_leaderboard(tmp_path: Path, leaderboard: pd.DataFrame) -> None:
    path = write_leaderboard(tmp_path, leaderboard)
    assert path == tmp_path / LEADERBOARD_FILE
    back = pd.read_csv(path)
    assert list(back["trial_id"]) == list(leaderboard["trial_id"])
    assert not list(tmp_path.glob(".leaderboard.csv.*"))  # no temp file left behind


def test_pareto_fronts_rank_non_dominated_trials_first() -> None:
    points = {"a": (1.0, 1.0), "b": (2.0, 0.0), "c": (0.5, 0.5), "d": (0.0, 0.0), "e": (1.0, 1.0)}
    fronts = pareto_fronts(points)
    assert fronts == {"a": 1, "b": 1, "e": 1, "c": 2, "d": 3}


def test_ranking_by_several_metrics_orders_by_pareto_front_then_score(tmp_path: Path) -> None:
    ranking = dataclasses.replace(
        RANKING, pareto_metrics=("fooling_rate", "conditional_rmse"), pareto_modes=("max", "min")
    )
    # t0 dominates t2; t1 trades RMSE for fooling rate (front 1); t2 has the best d_loss_gap
    one_eval_trial(tmp_path, "t0", metrics(0.9, 0.6, gap=0.5, conditional_rmse=0.1))
    one_eval_trial(tmp_path, "t1", metrics(0.9, 0.9, gap=0.4, conditional_rmse=0.3))
    one_eval_trial(tmp_path, "t2", metrics(0.9, 0.5, gap=0.1, conditional_rmse=0.2))
    board = rank_trials(collect_trials(tmp_path), ranking)
    assert board["trial_id"].tolist() == ["t1", "t0", "t2"]
    assert board["pareto_front"].tolist() == [1, 1, 2]


def test_pareto_modes_must_match_the_metrics() -> None:
    with pytest.raises(SpecError, match="pareto_modes.*one mode per metric"):
        config_from_dict(ConvergenceConfig, {"pareto_metrics": ["fooling_rate"]}, source="x.yaml")


def test_a_trial_no_better_than_the_floor_baseline_is_flagged_and_ranked_after(
    tmp_path: Path,
) -> None:
    ranking = dataclasses.replace(
        RANKING,
        score="quality/frechet_distance",
        score_mode="min",
        use_gate_first=False,
        checkpoint_score=D_LOSS_GAP,
    )
    sweep_dir = tmp_path
    for trial_id, distance in (("a", 21.2), ("b", 35.0), ("c", 12.0)):
        values = metrics(0.9, 0.5, gap=0.1, **{"quality/frechet_distance": distance})
        make_trial(sweep_dir, trial_id, result=finished((100, values), (100, values)))
    make_trial(sweep_dir, "d")  # launched, nothing scored: after the flagged ones too
    floor = {"independent_pixels": {"quality/frechet_distance": 19.8}}
    board = rank_trials(collect_trials(sweep_dir), ranking, baselines=floor)
    trials = board[board["state"] != "baseline"]
    assert list(trials["trial_id"]) == ["c", "a", "b", "d"]
    assert list(trials["flags"]) == ["", BELOW_FLOOR, BELOW_FLOOR, ""]
    assert "better than the floor baseline" in ranking_rule(ranking)
    # without baselines nothing is judged against a floor
    plain = rank_trials(collect_trials(sweep_dir), ranking)
    assert list(plain["trial_id"]) == ["c", "a", "b", "d"] and not any(plain["flags"])
