"""The command line: help on every command, one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gan_hpc.cli import COMMANDS, Command, main

REPO = Path(__file__).resolve().parents[1]


def _all_commands() -> list[list[str]]:
    paths: list[list[str]] = []
    for name, entry in COMMANDS.items():
        if isinstance(entry, Command):
            paths.append([name])
        else:
            paths.append([name])
            paths.extend([name, sub] for sub in entry)
    return paths


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gan-hpc" in capsys.readouterr().out


def test_help_imports_no_torch_or_pandas() -> None:
    code = (
        "import sys, gan_hpc.cli; gan_hpc.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'pandas', 'ray', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("spec", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_validates(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "validate", str(spec)]) == 0
    assert ": ok (" in capsys.readouterr().out


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gan-hpc: error: ")
    return err[0]


def test_bad_spec_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("base:\n  model:\n    latent_dims: 4\n")
    assert main(["sweep", "validate", str(spec)]) == 2
    line = _one_line_error(capsys)
    assert "bad.yaml" in line and "base.model.latent_dims" in line and "'latent_dim'" in line


def test_impossible_range_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "range.yaml"
    spec.write_text("search:\n  optim.generator.lr: {loguniform: [1.0e-2, 1.0e-3]}\n")
    assert main(["sweep", "validate", str(spec)]) == 2
    line = _one_line_error(capsys)
    assert "search.optim.generator.lr" in line and "swap" in line


def test_data_inspect_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "people.csv"
    table.write_text('age;job;income\n39;"admin.";1.5\n50;"blue-collar";\n28;"admin.";2.0\n')
    assert main(["data", "inspect", str(table)]) == 0
    out = capsys.readouterr().out
    assert "3 rows x 3 columns" in out
    assert "blue-collar" in out and "categorical" in out
    assert "income" in out


def test_data_inspect_synthetic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", "--synthetic-frf"]) == 0
    out = capsys.readouterr().out
    assert "signal data" in out and "frequency_hz" in out and "x_m" in out


def test_missing_data_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "inspect", str(tmp_path / "nowhere.arff")]) == 2
    assert "nowhere.arff" in _one_line_error(capsys)


def test_malformed_arff_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.arff"
    bad.write_text("@relation r\n@attribute a numeric\n@attribute b {x,y}\n@data\n1,x\n2,z\n")
    assert main(["data", "inspect", str(bad)]) == 2
    line = _one_line_error(capsys)
    assert "bad.arff:6" in line


def test_status_of_a_missing_sweep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "status", str(tmp_path / "nope")]) == 2
    assert "nope" in _one_line_error(capsys)


def test_train_with_unknown_key_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text("train:\n  num_step: 3\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    line = _one_line_error(capsys)
    assert "train.num_step" in line and "num_steps" in line


def test_group_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep"]) == 2
    assert "validate" in capsys.readouterr().out


def test_a_sweep_in_which_no_trial_trained_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    from gan_hpc.cli import _print_summary
    from gan_hpc.sweep.spec import load_sweep_spec

    spec = load_sweep_spec(REPO / "sweeps" / "quickstart.yaml")
    failed = pd.DataFrame(
        {
            "rank": [None, None, None],
            "trial_id": ["trial_0000", "trial_0001", "baseline:mean_curve"],
            "state": ["failed", "failed", "baseline"],
            "step": [None, None, None],
        }
    )
    assert _print_summary(failed, tmp_path, spec) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no trial trained a step (2 failed)" in error
    trained = failed.assign(state=["finished", "failed", "baseline"], step=[40, None, None])
    assert _print_summary(trained, tmp_path, spec) == 0
    assert "trial_0000" in capsys.readouterr().out


def test_one_trial_of_a_spec_picks_its_checkpoint_by_the_specs_ranking() -> None:
    from gan_hpc.config import load_trial_config
    from gan_hpc.sweep.spec import load_sweep_spec

    spec_path = REPO / "sweeps" / "adult_mlp.yaml"
    spec = load_sweep_spec(spec_path)
    trial = load_trial_config(spec_path)
    assert trial.convergence == spec.ranking == spec.base.convergence
    assert trial.convergence.checkpoint_score == "quality/tabular_score"
    changed = load_trial_config(spec_path, ["convergence.checkpoint_score=d_loss_gap"])
    assert changed.convergence.checkpoint_score == "d_loss_gap"
