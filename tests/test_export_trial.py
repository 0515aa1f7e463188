"""Export a single trained trial (`gan-hpc train --out DIR`) and sample it to Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gan_hpc.bundle.load import METRICS_FILE, load_generator
from gan_hpc.cli import main
from gan_hpc.sweep.export import is_trial_dir
from tests.test_export import TINY_MODEL, write_people


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trial directory left by `gan-hpc train CONFIG --out DIR` on a small table."""
    root = tmp_path_factory.mktemp("train")
    people = write_people(root / "people.csv")
    config = {
        "data": {
            "format": "csv",
            "path": str(people),
            "conditional": True,
            "condition_column": "y",
            "use_cache": False,
        },
        "model": TINY_MODEL,
        "train": {"batch_size": 16, "num_steps": 10, "eval_every_steps": 5},
        "convergence": {"num_eval_samples": 32},
    }
    path = root / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path), "--out", str(root / "run")]) == 0
    return root / "run"


def test_export_of_a_trial_directory(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert is_trial_dir(trained) and not is_trial_dir(trained.parent)
    capsys.readouterr()
    assert main(["export", str(trained), "--out", str(tmp_path / "bundle")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'bundle'}\n"
    info = json.loads((tmp_path / "bundle" / METRICS_FILE).read_text())
    assert info["trial_id"] == "run" and info["checkpoint"] == "best"
    assert len(load_generator(tmp_path / "bundle").sample(5, seed=0)) == 5
    # again: refused without --force, replaced with it
    assert main(["export", str(trained), "--out", str(tmp_path / "bundle")]) == 2
    assert "--force" in capsys.readouterr().err
    args = ["export", str(trained), "--out", str(tmp_path / "bundle"), "--force"]
    assert main([*args, "--checkpoint", "last"]) == 0
    assert json.loads((tmp_path / "bundle" / METRICS_FILE).read_text())["checkpoint"] == "last"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top", "2"], "a trial directory is exported alone; drop --top"),
        (["--by", "fooling_rate"], "drop --by"),
    ],
)
def test_ranking_options_are_refused_for_a_trial(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["export", str(trained), "--out", str(tmp_path / "b"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_neither_sweep_nor_trial_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a sweep directory (spec.yaml) nor a trial" in err[0]
    assert main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_sample_to_parquet_keeps_dtypes_and_categories(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    assert main(["export", str(trained), "--out", str(bundle)]) == 0
    out = tmp_path / "rows.parquet"
    assert main(["sample", str(bundle), "-n", "50", "--seed", "0", "--out", str(out)]) == 0
    back = pd.read_parquet(out)
    expected = load_generator(bundle).sample(50, seed=0)
    pd.testing.assert_frame_equal(back, expected)
    assert back["age"].dtype == np.int64 and isinstance(back["job"].dtype, pd.CategoricalDtype)
    assert tuple(back["y"].cat.categories) == ("no", "yes")
    assert main(["sample", str(bundle), "-n", "5", "--out", str(tmp_path / "rows.xlsx")]) == 2
    assert ".parquet" in capsys.readouterr().err
