"""Metric names and directions: one home each, and the spec validator checks every direction."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from gan_hpc import convergence
from gan_hpc.convergence import CONVERGENCE_MODES, better_mode
from gan_hpc.errors import SpecError
from gan_hpc.quality_names import METRIC_MODES, TAB_COLUMN_PREFIX
from gan_hpc.sweep.spec import sweep_spec_from_dict

METRIC_CONSTANTS = {
    value for name, value in vars(convergence).items() if name.isupper() and isinstance(value, str)
}


def _spec(ranking: dict[str, Any]) -> None:
    document = {"name": "toy", "base": {"data": {"path": "toy.csv"}}, "ranking": ranking}
    sweep_spec_from_dict(document, source="toy.yaml")


@pytest.mark.parametrize(("metric", "mode"), sorted(CONVERGENCE_MODES.items()))
def test_every_directed_convergence_metric_is_a_reported_name(metric: str, mode: str) -> None:
    assert metric in METRIC_CONSTANTS and better_mode(metric) == mode


def test_better_mode_covers_quality_metrics_and_leaves_undirected_ones_open() -> None:
    for metric, mode in METRIC_MODES.items():
        assert better_mode(metric) == mode
    assert better_mode(f"{TAB_COLUMN_PREFIX}age") == "max"
    assert better_mode(convergence.D_ACC_HELDOUT) is None  # the gate wants it high, not max
    with pytest.raises(SpecError, match="did you mean 'quality/tabular_score'"):
        better_mode("quality/tabular_scor")


@pytest.mark.parametrize(
    ("ranking", "message"),
    [
        (
            {"score": "fooling_rate", "score_mode": "min"},
            r"toy\.yaml: ranking\.score_mode: 'fooling_rate' is better when higher; "
            r"set ranking\.score_mode: max",
        ),
        (
            {"checkpoint_score": "d_loss_gap", "checkpoint_score_mode": "max"},
            r"ranking\.checkpoint_score_mode: 'd_loss_gap' is better when lower",
        ),
        (
            {"pareto_metrics": ["fooling_rate", "sliced_wasserstein"], "pareto_modes": ["max"] * 2},
            r"ranking\.pareto_modes\[1\]: 'sliced_wasserstein' is better when lower",
        ),
    ],
)
def test_a_convergence_metric_ranked_the_wrong_way_is_one_line(
    ranking: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message) as error:
        _spec(ranking)
    assert "\n" not in str(error.value)


def test_undirected_metrics_rank_either_way() -> None:
    for mode in ("min", "max"):
        _spec({"score": convergence.D_ACC_HELDOUT, "score_mode": mode})


def test_the_vocabulary_and_the_records_import_without_torch_or_pandas() -> None:
    """What the CLI, the validator and the watchers read: names, directions, trial records."""
    modules = (
        "gan_hpc.convergence, gan_hpc.quality_names, gan_hpc.trial_dir, gan_hpc.sweep.directory"
    )
    code = (
        f"import sys, {modules}; "
        "print(sorted(m for m in ('torch', 'pandas', 'ray', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
