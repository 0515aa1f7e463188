"""Sweep specs: every shipped file loads, bad specs fail in one line, round trips, overrides."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from gan_hpc.errors import SpecError
from gan_hpc.sweep.search_space import Choice, IntRange, LogUniform, Uniform
from gan_hpc.sweep.spec import (
    SweepSpec,
    active_params,
    dump_sweep_spec,
    load_sweep_spec,
    search_order,
    smoke_overrides,
    trial_config_for,
    validate_spec_file,
)

REPO = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((REPO / "sweeps").glob("*.yaml"))

VALID: dict[str, Any] = {
    "name": "toy",
    "seed": 3,
    "base": {
        "data": {"format": "synthetic_frf", "conditional": True},
        "model": {"latent_dim": 8},
        "train": {"num_steps": 200, "eval_every_steps": 50},
    },
    "search": {
        "loss.name": {"choice": ["bce_logits", "hinge", "wasserstein"]},
        "loss.clip_value": {"loguniform": [0.005, 0.05], "when": {"loss.name": ["wasserstein"]}},
        "optim.generator.lr": {"loguniform": ["1e-5", "1e-3"]},  # YAML 1.1 reads these as str
        "model.generator.depth": {"int": [1, 3]},
        "model.generator.width": {"int": [16, 64], "step": 16},
        "model.discriminator.dropout": {"uniform": [0.0, 0.5]},
    },
    "tune": {"num_samples": 4, "grace_period_steps": 50},
    "resources": {"world_size": 2, "nodes": 2},
    "launcher": "slurm",
    "slurm": {"partition": "debug", "additional_parameters": {"mail-user": "me@example.org"}},
    "ranking": {
        "d_acc_min": 0.7,
        "num_eval_samples": 100,
        "score": "fooling_rate",
        "score_mode": "max",
    },
    "storage": {"path": "out"},
}


def _merge(document: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(document)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict) and key != "search":
            result[key] = _merge(result[key], value)
        elif key == "search":
            result[key] = {**result.get(key, {}), **value}
        else:
            result[key] = value
    return result


def _write(tmp_path: Path, document: dict[str, Any], name: str = "bad.yaml") -> Path:
    path = tmp_path / "sweeps" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def toy_spec(tmp_path: Path) -> SweepSpec:
    return load_sweep_spec(_write(tmp_path, VALID, "toy.yaml"))


# ------------------------------------------------------------------------------ shipped files


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_every_sweep_file_is_valid(path: Path) -> None:
    spec = validate_spec_file(path)
    assert spec.name == path.stem
    assert spec.search, "every shipped sweep searches something"
    assert spec.base.convergence == spec.ranking


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_every_sweep_file_round_trips_through_yaml(path: Path, tmp_path: Path) -> None:
    spec = load_sweep_spec(path)
    copy_path = tmp_path / path.name
    copy_path.write_text(dump_sweep_spec(spec), encoding="utf-8")
    again = load_sweep_spec(copy_path)
    assert dataclasses.replace(again, source=spec.source) == spec


def test_quickstart_is_a_real_conditional_search() -> None:
    spec = load_sweep_spec(REPO / "sweeps" / "quickstart.yaml")
    assert spec.base.data.format == "synthetic_frf" and spec.base.data.conditional
    assert spec.tune.num_samples >= 8 and spec.tune.max_concurrent_trials == 2
    assert spec.resources.cpus_per_trial == 1 and spec.tune.scheduler == "asha"
    assert set(spec.search["loss.name"].values) == {"bce_logits", "hinge", "wasserstein"}
    assert spec.search["loss.clip_value"].when == {"loss.name": ("wasserstein",)}


# ---------------------------------------------------------------------------- a valid spec


def test_valid_spec_is_typed_and_normalised(toy_spec: SweepSpec) -> None:
    assert toy_spec.name == "toy" and toy_spec.seed == 3 and toy_spec.launcher == "slurm"
    assert toy_spec.search["optim.generator.lr"] == LogUniform(low=1e-5, high=1e-3)
    assert toy_spec.search["model.generator.width"] == IntRange(low=16, high=64, step=16)
    assert toy_spec.search["model.discriminator.dropout"] == Uniform(low=0.0, high=0.5)
    assert isinstance(toy_spec.search["loss.name"], Choice)
    # ranking replaces base.convergence: the trainer's best checkpoint uses the same rule
    assert toy_spec.base.convergence == toy_spec.ranking
    assert toy_spec.ranking.score == "fooling_rate" and toy_spec.ranking.d_acc_min == 0.7
    assert toy_spec.launcher_settings["slurm"].additional_parameters == {
        "mail-user": "me@example.org"
    }
    assert toy_spec.sweep_dir() == Path("out/toy")
    assert toy_spec.sweep_dir(Path("/scratch/mine")) == Path("/scratch/mine")  # --out: itself


def test_choice_values_are_coerced_to_the_field_type(tmp_path: Path) -> None:
    document = _merge(VALID, {"search": {"optim.discriminator.lr": {"choice": ["1e-4", 2e-4]}}})
    spec = load_sweep_spec(_write(tmp_path, document))
    assert spec.search["optim.discriminator.lr"].values == (1e-4, 2e-4)


def test_round_trip_of_to_dict(toy_spec: SweepSpec, tmp_path: Path) -> None:
    text = yaml.safe_dump(toy_spec.to_dict())
    assert yaml.safe_load(text) == toy_spec.to_dict()
    path = tmp_path / "again.yaml"
    path.write_text(text, encoding="utf-8")
    assert dataclasses.replace(load_sweep_spec(path), source=toy_spec.source) == toy_spec


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    document = {k: v for k, v in VALID.items() if k != "name"}
    assert load_sweep_spec(_write(tmp_path, document, "adult_mlp.yaml")).name == "adult_mlp"


# ------------------------------------------------------------------------------ bad specs

BAD_CASES = [
    ({"tunes": {}}, r"tunes: unknown key 'tunes' \(did you mean 'tune'\?\)"),
    (
        {"base": {"model": {"latent_dims": 8}}},
        r"base\.model\.latent_dims: unknown key 'latent_dims' \(did you mean 'latent_dim'\?\)",
    ),
    (
        {"search": {"optim.generator.lr": {"loguniform": [0.01, 0.001]}}},
        r"search\.optim\.generator\.lr: low 0\.01 > high 0\.001 \(swap them\)",
    ),
    (
        {"search": {"optim.generator.lr": {"loguniform": [0, 0.001]}}},
        r"search\.optim\.generator\.lr: loguniform needs low > 0, got 0",
    ),
    (
        {"search": {"loss.name": {"choice": ["hinge", "wgan"]}}},
        r"search\.loss\.name: 'wgan' is not one of 'bce', 'bce_logits', 'hinge', .*'wgan_gp'",
    ),
    (
        {"search": {"model.generator.depth": {"int": [1.5, 3]}}},
        r"search\.model\.generator\.depth: int bounds must be integers, got 1\.5",
    ),
    (
        {"search": {"loss.clip_value": {"uniform": [0.01, 0.1], "when": {"loss.nam": ["hinge"]}}}},
        r"search\.loss\.clip_value\.when: unknown key 'loss\.nam' \(did you mean 'loss\.name'\?\)",
    ),
    ({"tune": {"num_samples": "many"}}, r"tune\.num_samples: expected int, got 'many'"),
    (
        {"tune": {"metric": "fooling_rates"}},
        r"tune\.metric: unknown metric 'fooling_rates' \(did you mean 'fooling_rate'\?\)",
    ),
    (
        {"slurm": {"partitions": "gpu"}},
        r"slurm\.partitions: unknown key 'partitions' \(did you mean 'partition'\?\)",
    ),
    (
        {"slurm": {"additional_parameters": {"--mail-user": "me"}}},
        r"slurm\.additional_parameters\.--mail-user: not an sbatch option name",
    ),
    (
        {"slurm": {"additional_parameters": {"time": "10"}}},
        r"slurm\.additional_parameters\.time: use slurm\.timeout_min instead",
    ),
    (
        {"slurm": {"additional_parameters": {"array": "0-3"}}},
        r"slurm\.additional_parameters\.array: use tune\.max_concurrent_trials \(each trial is "
        r"one job",
    ),
    (
        {"resources": {"world_size": 3, "nodes": 2}},
        r"resources\.world_size: 3 ranks do not divide evenly over 2 nodes",
    ),
    (
        {"search": {"optim.generator.lrr": {"uniform": [0.001, 0.01]}}},
        r"search\.optim\.generator\.lrr: unknown key .*did you mean 'optim\.generator\.lr'",
    ),
    (
        {"search": {"optim.generator.lr": {"logunifrom": [1e-5, 1e-3]}}},
        r"search\.optim\.generator\.lr: unknown key 'logunifrom' \(did you mean 'loguniform'\?\)",
    ),
    (
        {"search": {"optim.generator.lr": {"uniform": [1e-5, 1e-3], "choice": [1e-4]}}},
        r"search\.optim\.generator\.lr: needs exactly one of uniform, loguniform, int, choice",
    ),
    (
        {"search": {"optim.generator.lr": 0.001}},
        r"search\.optim\.generator\.lr: expected a distribution .*set it in base",
    ),
    (
        {"search": {"train.batch_size": {"uniform": [16, 64]}}},
        r"search\.train\.batch_size: uniform samples floats but train\.batch_size is int; use "
        r"\{int: \[low, high\]\}",
    ),
    (
        {"search": {"optim.generator.lr": {"uniform": [0.0, 0.1]}}},
        r"search\.optim\.generator\.lr: must be in \(0, 1\), got 0\.0",
    ),
    (
        {"search": {"loss.name": {"choice": ["hinge", "hinge"]}}},
        r"search\.loss\.name: choice lists 'hinge' twice",
    ),
    (
        {"search": {"model.generator.width": {"int": [16, 60], "step": 16}}},
        r"search\.model\.generator\.width: step 16 must be >= 1 and divide high - low = 44",
    ),
    (
        {"search": {"loss.clip_value": {"uniform": [0.01, 0.1], "when": {"loss.name": ["wgan"]}}}},
        r"search\.loss\.clip_value\.when\.loss\.name: .*'wgan'",
    ),
    (
        {"search": {"loss.clip_value": {"uniform": [0.01, 0.1], "when": {"loss.name": ["bce"]}}}},
        r"search\.loss\.clip_value\.when\.loss\.name: 'bce' is never sampled",
    ),
    (
        {
            "search": {
                "loss.gp_lambda": {"uniform": [1.0, 5.0], "when": {"loss.n_critic": [2]}},
                "loss.n_critic": {"int": [1, 5], "when": {"loss.gp_lambda": [1.0]}},
            }
        },
        r"search\.loss\.gp_lambda\.when: conditions form a cycle \(loss\.gp_lambda -> loss",
    ),
    (
        {"search": {"convergence.d_acc_min": {"uniform": [0.5, 0.9]}}},
        r"search\.convergence\.d_acc_min: the ranking rule is shared by every trial",
    ),
    (
        {"base": {"convergence": {"d_acc_min": 0.5}}},
        r"base\.convergence: the sweep's ranking block replaces it",
    ),
    (
        {"ranking": {"score": "d_los_gap"}},
        r"ranking\.score: unknown metric 'd_los_gap' \(did you mean 'd_loss_gap'\?\)",
    ),
    (
        {"tune": {"grace_period_steps": 500}},
        r"tune\.grace_period_steps: 500 > the longest trial's train\.num_steps 200 \(lower it\)",
    ),
    (
        {"tune": {"multi_objective_metrics": ["d_loss_gap", "fooling_rate"]}},
        r"tune\.multi_objective_modes: needs one mode per metric \(2\), got 0",
    ),
    ({"launcher": "pbs"}, r"launcher: 'pbs' is not one of 'local', 'slurm'"),
    ({"slurm": {"signal_delay_s": 600, "timeout_min": 5}}, r"slurm\.signal_delay_s: must be"),
]


@pytest.mark.parametrize(("patch", "pattern"), BAD_CASES)
def test_bad_spec_fails_in_one_line(tmp_path: Path, patch: dict[str, Any], pattern: str) -> None:
    path = _write(tmp_path, _merge(VALID, patch))
    with pytest.raises(SpecError) as info:
        load_sweep_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(re.escape(str(path)) + ": " + pattern, message), message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsearch: {loss.name: [\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken\.yaml: line \d+: invalid YAML"):
        load_sweep_spec(path)


def test_condition_on_a_fixed_base_value_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    document = _merge(VALID, {})
    del document["search"]["loss.name"]  # loss.name stays at base's bce_logits
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        spec = load_sweep_spec(_write(tmp_path, document))
    assert "search.loss.clip_value is never sampled" in caplog.text
    assert active_params(spec, {"loss.clip_value": 0.01}) == {}


# ------------------------------------------------------------------------------- overrides


def test_overrides_route_to_base_and_to_blocks(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID, "toy.yaml")
    spec = load_sweep_spec(path, ["train.num_steps=500", "tune.num_samples=3", "seed=7"])
    assert spec.base.train.num_steps == 500
    assert spec.tune.num_samples == 3 and spec.seed == 7


def test_overrides_create_missing_blocks(tmp_path: Path) -> None:
    document = {k: v for k, v in VALID.items() if k not in ("tune", "slurm")}
    spec = load_sweep_spec(
        _write(tmp_path, document), ["tune.num_samples=3", "slurm.timeout_min=30"]
    )
    assert spec.tune.num_samples == 3 and spec.launcher_settings["slurm"].timeout_min == 30


def test_overrides_set_and_remove_search_entries(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID, "toy.yaml")
    spec = load_sweep_spec(
        path,
        [
            "search.loss.name={'choice': ['hinge', 'wasserstein']}",
            "search.model.generator.depth=null",
        ],
    )
    assert spec.search["loss.name"] == Choice(values=("hinge", "wasserstein"))
    assert "model.generator.depth" not in spec.search


def test_bad_override_is_validated_like_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID, "toy.yaml")
    with pytest.raises(SpecError, match=r"toy\.yaml: base\.train\.num_steps: must be >= 1"):
        load_sweep_spec(path, ["train.num_steps=0"])


# --------------------------------------------------------------------- trials from params


def test_trial_config_for_applies_params(toy_spec: SweepSpec) -> None:
    config = trial_config_for(
        toy_spec,
        {
            "loss.name": "wasserstein",
            "loss.clip_value": 0.02,
            "optim.generator.lr": 3e-4,
            "model.generator.depth": np.int64(3),  # as Ray's samplers return
        },
    )
    assert config.loss.name == "wasserstein" and config.loss.clip_value == 0.02
    assert config.optim.generator.lr == 3e-4 and config.model.generator.depth == 3
    assert config.model.latent_dim == 8  # from base
    assert config.convergence == toy_spec.ranking


def test_trial_config_for_ignores_inactive_conditionals(toy_spec: SweepSpec) -> None:
    config = trial_config_for(toy_spec, {"loss.name": "hinge", "loss.clip_value": 0.02})
    assert config.loss.name == "hinge"
    assert config.loss.clip_value == toy_spec.base.loss.clip_value


def test_the_sweep_seed_shifts_every_trial_seed(toy_spec: SweepSpec) -> None:
    reseeded = dataclasses.replace(toy_spec, seed=toy_spec.seed + 5)
    params = {"loss.name": "hinge"}
    base_seed = toy_spec.base.train.seed
    assert trial_config_for(toy_spec, params).train.seed == base_seed + toy_spec.seed
    assert trial_config_for(reseeded, params).train.seed == base_seed + toy_spec.seed + 5
    searched = dataclasses.replace(
        reseeded, search={**reseeded.search, "train.seed": IntRange(low=0, high=100)}
    )
    assert trial_config_for(searched, {"train.seed": 42}).train.seed == 42


def test_trial_config_for_names_bad_params(toy_spec: SweepSpec) -> None:
    with pytest.raises(SpecError, match=r"trial params loss\.nme: not search keys"):
        trial_config_for(toy_spec, {"loss.nme": "hinge"})
    with pytest.raises(SpecError, match=r"\[trial model\.generator\.depth=99\]: .*depth"):
        trial_config_for(toy_spec, {"model.generator.depth": 99})


def test_search_order_puts_parents_first(tmp_path: Path) -> None:
    document = copy.deepcopy(VALID)
    clip = document["search"].pop("loss.clip_value")
    document["search"] = {"loss.clip_value": clip, **document["search"]}  # child declared first
    spec = load_sweep_spec(_write(tmp_path, document))
    order = search_order(spec)
    assert order.index("loss.name") < order.index("loss.clip_value")
    assert sorted(order) == sorted(spec.search)


def test_smoke_overrides(toy_spec: SweepSpec) -> None:
    smoke = smoke_overrides(toy_spec)
    assert smoke.name == "toy-smoke"
    assert smoke.tune.num_samples == 2 and smoke.tune.max_concurrent_trials <= 2
    assert smoke.base.train.num_steps == 20 and smoke.base.train.eval_every_steps == 10
    assert smoke.tune.grace_period_steps <= smoke.base.train.num_steps
    assert smoke.base.data.max_rows == 500
    assert smoke.ranking.num_eval_samples <= 64 and smoke.base.convergence == smoke.ranking
    assert smoke.search == toy_spec.search


@pytest.mark.parametrize(
    ("num_steps", "expected"),
    [
        (None, 200),  # not searched: the base's
        ({"int": [100, 700], "step": 200}, 700),
        ({"choice": [150, 900, 300]}, 900),
        ({"choice": [50, 100], "when": {"loss.name": ["hinge"]}}, 200),  # base elsewhere
    ],
)
def test_asha_max_t_is_the_longest_trial_the_search_can_draw(
    tmp_path: Path, num_steps: dict[str, Any] | None, expected: int
) -> None:
    document = _merge(VALID, {"tune": {"scheduler": "asha", "grace_period_steps": 150}})
    if num_steps is not None:
        document = _merge(document, {"search": {"train.num_steps": num_steps}})
    spec = load_sweep_spec(_write(tmp_path, document))
    assert spec.max_num_steps == expected
    # the grace period is judged against the longest trial, not the base
    too_long = _merge(document, {"tune": {"grace_period_steps": expected + 1}})
    with pytest.raises(SpecError, match=f"grace_period_steps: {expected + 1} > the longest"):
        load_sweep_spec(_write(tmp_path, too_long))


def test_smoke_drops_searched_budgets(tmp_path: Path) -> None:
    document = _merge(VALID, {"search": {"train.num_steps": {"int": [100, 300]}}})
    smoke = smoke_overrides(load_sweep_spec(_write(tmp_path, document)))
    assert "train.num_steps" not in smoke.search and smoke.base.train.num_steps == 20


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: p.name)
def test_smoke_of_every_sweep_file_is_valid(path: Path) -> None:
    smoke = smoke_overrides(load_sweep_spec(path))
    assert smoke.tune.num_samples == 2 and smoke.base.train.num_steps <= 20


def test_spec_pickles(toy_spec: SweepSpec) -> None:
    # Ray and submitit ship the spec to workers.
    assert pickle.loads(pickle.dumps(toy_spec)) == toy_spec


# ------------------------------------------------------------- ranking by held-out quality

QUALITY_RANKING = {
    "score": "quality/tabular_score",
    "score_mode": "max",
    "checkpoint_score": "d_loss_gap",
}


def test_ranking_by_a_quality_metric_picks_checkpoints_by_another(tmp_path: Path) -> None:
    spec = load_sweep_spec(_write(tmp_path, _merge(VALID, {"ranking": QUALITY_RANKING})))
    assert spec.ranking.score == "quality/tabular_score" and spec.ranking.score_mode == "max"
    assert spec.ranking.selection_metric == ("d_loss_gap", "min")
    # every trial picks its best checkpoint by the evaluation metric, ranked later by quality
    config = trial_config_for(spec, {"loss.name": "hinge"})
    assert config.convergence == spec.ranking


def test_a_per_column_quality_score_ranks_higher_first(tmp_path: Path) -> None:
    ranking = {**QUALITY_RANKING, "score": "quality/column/age"}
    spec = load_sweep_spec(_write(tmp_path, _merge(VALID, {"ranking": ranking})))
    assert spec.ranking.score == "quality/column/age"


QUALITY_BAD_CASES = [
    (
        {"ranking": {"score": "quality/tabular_score", "score_mode": "max"}},
        r"ranking\.checkpoint_score: 'quality/tabular_score' is computed when a trial ends; "
        r".*checkpoint_score: d_loss_gap",
    ),
    (
        {"ranking": {**QUALITY_RANKING, "score_mode": "min"}},
        r"ranking\.score_mode: 'quality/tabular_score' is better when higher; "
        r"set ranking\.score_mode: max",
    ),
    (
        {"ranking": {**QUALITY_RANKING, "score": "quality/log_spectral_error"}},
        r"ranking\.score_mode: 'quality/log_spectral_error' is better when lower; "
        r"set ranking\.score_mode: min",
    ),
    (
        {"ranking": {**QUALITY_RANKING, "checkpoint_score": "quality/detection_auc"}},
        r"ranking\.checkpoint_score: 'quality/detection_auc' is computed when a trial ends",
    ),
    (
        {"ranking": {**QUALITY_RANKING, "checkpoint_score": "d_los_gap"}},
        r"ranking\.checkpoint_score: unknown metric 'd_los_gap' \(did you mean 'd_loss_gap'\?\)",
    ),
    (
        {"tune": {"metric": "quality/tabular_score"}},
        r"tune\.metric: 'quality/tabular_score' is computed when a trial ends.*"
        r"rank by it with ranking\.score instead",
    ),
    (
        {"ranking": {**QUALITY_RANKING, "score": "quality/tabular_scor"}},
        r".*unknown metric 'quality/tabular_scor' \(did you mean 'quality/tabular_score'\?\)",
    ),
]


@pytest.mark.parametrize(("patch", "pattern"), QUALITY_BAD_CASES)
def test_bad_quality_ranking_fails_in_one_line(
    tmp_path: Path, patch: dict[str, Any], pattern: str
) -> None:
    path = _write(tmp_path, _merge(VALID, patch))
    with pytest.raises(SpecError) as info:
        load_sweep_spec(path)
    message = str(info.value)
    assert "\n" not in message
    assert re.match(re.escape(str(path)) + ": " + pattern, message), message


def test_a_stored_spec_with_array_parallelism_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """slurm.array_parallelism was never used: an old spec.yaml drops it with a notice."""
    document = {**VALID, "slurm": {**VALID["slurm"], "array_parallelism": 8}}
    with caplog.at_level("WARNING", logger="gan_hpc"):
        spec = load_sweep_spec(_write(tmp_path, document))
    assert "array_parallelism" not in spec.to_dict()["slurm"]
    (notice,) = [r.getMessage() for r in caplog.records if "array_parallelism" in r.getMessage()]
    assert "slurm.array_parallelism is ignored" in notice and "\n" not in notice
