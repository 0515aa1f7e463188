"""The one --set declaration: several key=value pairs per flag, repeatable, one-line errors."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pytest

from gan_hpc import cli
from gan_hpc.arguments import build_train_parser
from gan_hpc.config_validation import add_override_argument, parse_override

REPO = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prog")
    parser.add_argument("spec")
    add_override_argument(parser, "override a value")
    return parser


def test_set_takes_several_pairs_and_repeats() -> None:
    args = _parser().parse_args(["s.yaml", "--set", "a=1", "b.c=x", "--set", "d=[1, 2]"])
    assert args.overrides == ["a=1", "b.c=x", "d=[1, 2]"]
    assert _parser().parse_args(["s.yaml"]).overrides == []
    # a positional argument may come first or after `--`
    assert _parser().parse_args(["--set", "a=1", "--", "s.yaml"]).spec == "s.yaml"


@pytest.mark.parametrize(
    "parser", [_parser(), build_train_parser(), cli.build_parser()], ids=["any", "train", "cli"]
)
def test_a_pair_without_equals_is_one_line(
    parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "validate"] if parser.prog == "gan-hpc" else []
    with pytest.raises(SystemExit) as exc:
        parser.parse_args([*argv, "x.yaml", "--set", "a=1", "train.num_steps"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "error: --set: 'train.num_steps' is not key=value" in err[0]


def test_validate_with_several_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    spec = str(REPO / "sweeps" / "adult_mlp.yaml")  # validation does not read the data file
    pairs = ["tune.num_samples=128", "tune.max_concurrent_trials=32"]
    assert cli.main(["sweep", "validate", spec, "--set", *pairs, "--set", "seed=3"]) == 0
    assert "ok (128 trials" in capsys.readouterr().out


def test_train_module_takes_several_pairs() -> None:
    args = build_train_parser().parse_args(
        ["c.yaml", "--out", "o", "--set", "train.num_steps=5", "train.batch_size=8"]
    )
    assert args.overrides == ["train.num_steps=5", "train.batch_size=8"]


def test_a_value_with_an_invalid_escape_is_kept_without_a_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Python warns about "\\e" in a string literal
        assert parse_override("data.path='a\\e.csv'") == ("data.path", "a\\e.csv")
        assert parse_override("data.path=a\\e.csv") == ("data.path", "a\\e.csv")
    assert [str(w.message) for w in caught] == []
