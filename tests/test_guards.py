"""Guards: streaks and firing rules, halting or flagging a real trial, resume, ranking."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gan_hpc import convergence as names
from gan_hpc.config import ConvergenceConfig, GuardAction, GuardConfig, TrialConfig
from gan_hpc.errors import SpecError
from gan_hpc.files import atomic_write_json
from gan_hpc.sweep.directory import TRIALS_DIR, collect_trials
from gan_hpc.sweep.rank import rank_trials
from gan_hpc.trial.checkpoint import list_step_checkpoints, load_checkpoint
from gan_hpc.trial.guards import (
    D_LOSS_COLLAPSE,
    EXPLODING_GRADIENTS,
    MODE_COLLAPSE,
    SYMPTOMS,
    GuardState,
)
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import TrialDir
from tests.helpers import small_frf_config

CONFIG = GuardConfig(warmup_steps=0, patience_evals=2)
HEALTHY = {
    names.D_LOSS: 0.7,
    names.D_GRAD_NORM: 1.0,
    names.G_GRAD_NORM: 2.0,
    names.DIVERSITY_RATIO: 0.8,
}
SICK: dict[str, tuple[str, dict[str, float]]] = {  # case -> (guard, metrics that trigger it)
    "d_loss": (D_LOSS_COLLAPSE, {names.D_LOSS: 1e-5}),
    "d_grad": (EXPLODING_GRADIENTS, {names.D_GRAD_NORM: 1e5}),
    "g_grad": (EXPLODING_GRADIENTS, {names.G_GRAD_NORM: 1e5}),
    "diversity": (MODE_COLLAPSE, {names.DIVERSITY_RATIO: 0.01}),
}


def sick(case: str) -> dict[str, float]:
    """Healthy metrics except the one that triggers ``case``."""
    return {**HEALTHY, **SICK[case][1]}


def run(
    state: GuardState,
    evaluations: list[tuple[int, dict[str, float]]],
    config: GuardConfig = CONFIG,
    *,
    has_floor: bool = True,
) -> list[list[dict[str, Any]]]:
    """Feed evaluations to ``state``; return what fired at each."""
    return [state.update(m, step, config, has_floor=has_floor) for step, m in evaluations]


# ------------------------------------------------------------------------------ GuardState


def test_symptoms_cover_every_guard() -> None:
    assert set(SYMPTOMS) == {D_LOSS_COLLAPSE, EXPLODING_GRADIENTS, MODE_COLLAPSE}


@pytest.mark.parametrize("case", SICK)
def test_symptom_fires_after_patience_evaluations(case: str) -> None:
    guard = SICK[case][0]
    state = GuardState()
    fired = run(state, [(5, HEALTHY), (10, sick(case)), (15, sick(case))])
    assert fired[:2] == [[], []]
    (entry,) = fired[2]
    assert entry["guard"] == guard and entry["step"] == 15
    assert entry["detail"].endswith("for 2 evaluations")
    assert state.fired == [entry]


def test_exploding_gradients_names_the_network() -> None:
    for case, key in (("d_grad", names.D_GRAD_NORM), ("g_grad", names.G_GRAD_NORM)):
        (_, [entry]) = run(GuardState(), [(5, sick(case)), (10, sick(case))])
        assert entry["detail"].startswith(f"{key} 1e+05 > 10000 ")


def test_healthy_evaluation_resets_the_streak() -> None:
    config = dataclasses.replace(CONFIG, patience_evals=3)
    state = GuardState()
    bad = sick("diversity")
    fired = run(state, [(1, bad), (2, bad), (3, HEALTHY), (4, bad), (5, bad)], config)
    assert fired == [[]] * 5 and state.streaks[MODE_COLLAPSE] == 2
    (entry,) = state.update(bad, 6, config, has_floor=True)
    assert entry["step"] == 6 and entry["detail"].endswith("for 3 evaluations")


def test_nothing_is_checked_until_after_warmup() -> None:
    config = dataclasses.replace(CONFIG, warmup_steps=100)
    state = GuardState()
    bad = sick("diversity")
    fired = run(state, [(50, bad), (100, bad), (150, bad), (200, bad)], config)
    assert fired[:3] == [[], [], []]  # steps 50 and 100 do not count towards the streak
    assert [e["step"] for e in fired[3]] == [200]


def test_each_guard_fires_once() -> None:
    state = GuardState()
    bad = sick("diversity")
    evaluations = [(s, bad) for s in (1, 2, 3, 4)] + [(5, HEALTHY), (6, bad), (7, bad)]
    fired = run(state, evaluations)
    assert [len(f) for f in fired] == [0, 1, 0, 0, 0, 0, 0]
    assert [e["guard"] for e in state.fired] == [MODE_COLLAPSE]
    assert state.streaks[MODE_COLLAPSE] == 2  # the streak is still tracked


def test_several_guards_fire_together_in_a_fixed_order() -> None:
    everything = {**HEALTHY, **SICK["d_loss"][1], **SICK["d_grad"][1], **SICK["diversity"][1]}
    (_, fired) = run(GuardState(), [(1, everything), (2, everything)])
    assert [e["guard"] for e in fired] == [D_LOSS_COLLAPSE, EXPLODING_GRADIENTS, MODE_COLLAPSE]


def test_d_loss_collapse_needs_a_loss_with_a_floor() -> None:
    # a Wasserstein critic's loss has no floor: a very negative d_loss is not a collapse
    for d_loss in (1e-5, 0.0, -50.0):
        metrics = {**HEALTHY, names.D_LOSS: d_loss}
        state = GuardState()
        assert run(state, [(s, metrics) for s in (1, 2, 3)], has_floor=False) == [[]] * 3
        assert state.fired == []
    state = GuardState()
    assert [e["guard"] for e in run(state, [(1, sick("d_loss")), (2, sick("d_loss"))])[1]] == [
        D_LOSS_COLLAPSE
    ]


def test_missing_metrics_are_not_symptoms() -> None:
    state = GuardState()
    assert run(state, [(s, {}) for s in (1, 2, 3)]) == [[]] * 3
    assert state.fired == []


def test_state_round_trips_through_json() -> None:
    state = GuardState()
    run(state, [(1, sick("diversity")), (2, sick("diversity")), (3, sick("g_grad"))])
    back = GuardState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state
    # the copy carries on exactly as the original
    later = [(4, sick("g_grad")), (5, sick("g_grad"))]
    assert run(back, later) == run(state, later)
    assert back == state and [e["guard"] for e in back.fired] == [
        MODE_COLLAPSE,
        EXPLODING_GRADIENTS,
    ]


def test_from_dict_of_nothing_starts_afresh() -> None:
    assert GuardState.from_dict(None) == GuardState()
    assert GuardState.from_dict({}) == GuardState()


@pytest.mark.parametrize(
    ("guards", "message"),
    [
        ({"action": "halt"}, r"guards\.action: 'halt' is not one of 'stop', 'flag'"),
        ({"patience_evals": 0}, r"guards\.patience_evals: must be >= 1"),
        ({"min_diversity_ratio": 1.0}, r"guards\.min_diversity_ratio: must be in \[0, 1\)"),
    ],
)
def test_bad_guard_config_is_a_spec_error(guards: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=rf"^x\.yaml: {message}"):
        TrialConfig.from_dict({"guards": guards}, source="x.yaml")


# ------------------------------------------------------------------------ real trials


def collapsing_config(action: GuardAction, **train: object) -> TrialConfig:
    """The small FRF trial, with a diversity threshold no fresh generator reaches."""
    config = small_frf_config(**train)
    guards = GuardConfig(action=action, warmup_steps=0, patience_evals=2, min_diversity_ratio=0.99)
    return dataclasses.replace(config, guards=guards)


def test_stop_action_halts_the_trial(tmp_path: Path) -> None:
    config = collapsing_config("stop")
    result = train_trial(config, tmp_path)
    trial = TrialDir(tmp_path)
    assert result.state == "halted" and result.step == 10 < config.train.num_steps
    assert [(f["guard"], f["step"]) for f in result.flags] == [(MODE_COLLAPSE, 10)]
    assert trial.read_status().state == "halted"
    assert "mode_collapse at step 10" in trial.read_status().message
    saved = json.loads(trial.result_path.read_text())
    assert saved["state"] == "halted" and saved["step"] == 10
    (flag,) = saved["flags"]
    assert set(flag) == {"guard", "step", "detail"}
    assert flag["guard"] == MODE_COLLAPSE and flag["step"] == 10
    assert flag["detail"].startswith(names.DIVERSITY_RATIO)
    assert [r[names.STEP] for r in trial.read_metrics()] == [5, 10]  # no training after it
    assert (trial.checkpoints / "best.pt").exists()
    assert saved["best"]["checkpoint"] == "checkpoints/best.pt"
    assert any(key.startswith("quality/") for key in saved["best"]["metrics"])


def test_flag_action_trains_on(tmp_path: Path) -> None:
    config = collapsing_config("flag")
    result = train_trial(config, tmp_path)
    assert result.state == "finished" and result.step == config.train.num_steps
    saved = json.loads(TrialDir(tmp_path).result_path.read_text())
    assert saved["state"] == "finished" and saved["last"]["step"] == config.train.num_steps
    assert [(f["guard"], f["step"]) for f in saved["flags"]] == [(MODE_COLLAPSE, 10)]
    assert TrialDir(tmp_path).read_status().state == "finished"


def test_resume_continues_the_streak(tmp_path: Path) -> None:
    config = collapsing_config("stop", num_steps=30)
    config = dataclasses.replace(
        config, guards=dataclasses.replace(config.guards, patience_evals=3)
    )
    straight = train_trial(config, tmp_path / "straight")
    assert straight.state == "halted" and straight.step == 15

    interrupted = tmp_path / "interrupted"
    paused = train_trial(config, interrupted, stop_after_step=10)
    assert paused.step == 10 and paused.flags == ()
    newest = list_step_checkpoints(interrupted / "checkpoints")[-1][1]
    assert load_checkpoint(newest)["guards"]["streaks"][MODE_COLLAPSE] == 2
    resumed = train_trial(config, interrupted)
    # a lost streak would fire at step 25 instead
    assert resumed.state == "halted" and resumed.step == 15
    assert resumed.flags == straight.flags


# --------------------------------------------------------------------------------- ranking

RANKING = ConvergenceConfig(d_acc_min=0.8, fooling_rate_min=0.4, score="d_loss_gap")


def fake_trial(
    sweep_dir: Path, trial_id: str, *, d_acc: float, gap: float, flags: list[str]
) -> None:
    """A finished trial directory with one evaluation and the given guard flags."""
    trial = TrialDir(sweep_dir / TRIALS_DIR / trial_id)
    trial.path.mkdir(parents=True)
    trial.write_config(TrialConfig(convergence=RANKING))
    gate = d_acc > RANKING.d_acc_min
    metrics = {
        names.D_ACC_HELDOUT: d_acc,
        names.FOOLING_RATE: 0.5,
        names.D_LOSS_GAP: gap,
        names.CONVERGED: 1.0 if gate else 0.0,
    }
    record = {"step": 100, "metrics": metrics}
    result = {
        "state": "halted" if flags else "finished",
        "step": 100,
        "wall_time_s": 1.0,
        "best": {**record, "checkpoint": "checkpoints/best.pt"},
        "last": {**record, "checkpoint": "checkpoints/step-00000100.pt"},
        "flags": [{"guard": g, "step": 100, "detail": "test"} for g in flags],
    }
    atomic_write_json(trial.result_path, result)


def test_flagged_trials_rank_after_unflagged_ones_with_the_same_gate(tmp_path: Path) -> None:
    fake_trial(tmp_path, "a", d_acc=0.9, gap=0.01, flags=[MODE_COLLAPSE, EXPLODING_GRADIENTS])
    fake_trial(tmp_path, "b", d_acc=0.9, gap=0.5, flags=[])
    fake_trial(tmp_path, "c", d_acc=0.5, gap=0.0, flags=[])  # no gate: last despite its score
    records = collect_trials(tmp_path)
    assert [r.flags for r in records] == [(MODE_COLLAPSE, EXPLODING_GRADIENTS), (), ()]
    df = rank_trials(records, RANKING)
    assert list(df["trial_id"]) == ["b", "a", "c"]
    assert list(df["gate"]) == [True, True, False]
    assert list(df["flags"]) == ["", "mode_collapse,exploding_gradients", ""]
    assert list(df["state"]) == ["finished", "halted", "finished"]
