"""The terminal leaderboard: default columns, short headers, the terminal's width, --columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from gan_hpc.cli import main
from gan_hpc.errors import SweepError
from gan_hpc.files import atomic_write_json
from gan_hpc.sweep.directory import collect_trials, read_baselines, write_spec
from gan_hpc.sweep.leaderboard import (
    format_leaderboard,
    format_table,
    select_columns,
    short_headers,
    table_columns,
)
from gan_hpc.sweep.rank import rank_trials
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict, trial_config_for
from tests.test_rank import RANKING, SPEC_DOCUMENT, finished, make_trial, metrics

TABULAR = {
    "quality/ml_efficacy_tstr": 0.71,
    "quality/detection_auc": 0.9,
    "quality/tabular_score": 0.6,
    "quality/column_similarity": 0.8,
    "quality/trend_similarity": 0.7,
    "quality/dcr_median": 0.3,
}


def toy_sweep(sweep_dir: Path, num_trials: int = 3) -> SweepSpec:
    """A finished tabular sweep of ``num_trials`` trials with a real-data baseline row."""
    spec = sweep_spec_from_dict(SPEC_DOCUMENT, source="toy.yaml")
    write_spec(sweep_dir, spec)
    for index in range(num_trials):
        values = metrics(0.9, 0.5, 0.1 * (index + 1), **TABULAR)
        params = {"loss.name": "hinge", "optim.generator.lr": 10 ** -(3 + index / 7)}
        make_trial(
            sweep_dir,
            f"trial_{index:05d}",
            config=trial_config_for(spec, params),
            evaluations=[(100, values)],
            result=finished((100, values), (100, values)),
        )
    real = {"quality/ml_efficacy_tstr": 0.8, "quality/detection_auc": 0.5}
    atomic_write_json(sweep_dir / "baselines.json", {"reports": {"real_data": {"metrics": real}}})
    return spec


def leaderboard(sweep_dir: Path):  # noqa: ANN201
    return rank_trials(collect_trials(sweep_dir), RANKING, baselines=read_baselines(sweep_dir))


def test_default_columns_are_the_headline_ones(tmp_path: Path) -> None:
    toy_sweep(tmp_path)
    df = leaderboard(tmp_path)
    assert len(df.columns) > 25
    assert table_columns(df) == [
        "rank",
        "trial_id",
        "state",
        "step",
        "gate",
        "score",
        "quality/ml_efficacy_tstr",
        "quality/detection_auc",
        "quality/tabular_score",
        "loss.name",
        "loss.clip_value",
        "optim.generator.lr",
    ]


def test_headers_are_short_and_unique() -> None:
    columns = [
        "trial_id",
        "quality/detection_auc",
        "optim.generator.lr",
        "optim.discriminator.lr",
        "model.generator.hidden",
        "loss.name",
        "quality/ml_efficacy_tstr",
    ]
    assert short_headers(columns) == {
        "trial_id": "trial",
        "quality/detection_auc": "detect_auc",
        "optim.generator.lr": "generator.lr",
        "optim.discriminator.lr": "discriminator.lr",
        "model.generator.hidden": "hidden",
        "loss.name": "loss",
        "quality/ml_efficacy_tstr": "tstr",
    }


def test_table_fits_the_width_and_keeps_baselines(tmp_path: Path) -> None:
    toy_sweep(tmp_path)
    df = leaderboard(tmp_path)
    assert max(len(line) for line in format_leaderboard(df, "table").splitlines()) > 250
    text = format_table(df, width=120)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert lines[0].split() == [
        "rank",
        "trial",
        "state",
        "step",
        "gate",
        "score",
        "tstr",
        "detect_auc",
        "tab_score",
        "loss",
        "clip_value",
        "lr",
    ]
    assert "baseline:real_data" in text
    narrow = format_table(df, width=85).splitlines()
    assert all(len(line) <= 85 for line in narrow[:-1])
    assert narrow[-1] == "(left out to fit: loss, clip_value, lr; see --columns, --all)"


def test_columns_by_short_or_full_name(tmp_path: Path) -> None:
    toy_sweep(tmp_path)
    df = leaderboard(tmp_path)
    chosen = select_columns(df, ["trial", "quality/detection_auc", "lr", "d_acc_heldout"])
    assert chosen == ["trial_id", "quality/detection_auc", "optim.generator.lr", "d_acc_heldout"]
    with pytest.raises(SweepError, match=r"--columns: no column 'scroe' \(did you mean score"):
        select_columns(df, ["scroe"])


def test_status_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toy_sweep(tmp_path)
    assert main(["sweep", "status", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 120 for line in out[:-1])
    assert out[-1].startswith("ranked by") and out[0].startswith("rank  trial")
    assert main(["sweep", "status", str(tmp_path), "--columns", "trial,score,lr"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["trial", "score", "lr"]
    assert main(["sweep", "status", str(tmp_path), "--all"]) == 0
    assert "d_acc_heldout" in capsys.readouterr().out
    assert main(["sweep", "status", str(tmp_path), "--format", "csv"]) == 0
    assert "quality/dcr_median" in capsys.readouterr().out.splitlines()[0]
    assert main(["sweep", "status", str(tmp_path), "--columns", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--columns: no column 'nope'" in err[0]


def test_a_sweep_without_trials_renders_the_headers() -> None:
    assert format_table(rank_trials([], RANKING)) == "rank  trial  state  step  gate  score\n"
