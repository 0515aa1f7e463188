"""``gan-hpc sweep confirm`` end to end: real trainer subprocesses through the local launcher."""

from __future__ import annotations

import copy
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gan_hpc.sweep.confirm import CONFIRM_DIR, confirmation_seeds
from gan_hpc.sweep.directory import CONFIRM_FILE, TRIALS_DIR, collect_trials, write_spec
from gan_hpc.sweep.rank import rank_trials
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict, trial_config_for
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import TrialDir
from tests.e2e.test_sweep_local import SPEC

NUM_STEPS = 40


def _tiny_sweep(sweep_dir: Path) -> SweepSpec:
    """A sweep directory with two finished trials, trained in this process (no Ray)."""
    document = copy.deepcopy(SPEC)
    document["base"]["train"]["num_steps"] = NUM_STEPS
    spec = sweep_spec_from_dict(document, source="confirm.yaml")
    write_spec(sweep_dir, spec)
    for i, (lr, activation) in enumerate([(1e-3, "auto"), (2e-3, "sigmoid")]):
        config = trial_config_for(
            spec, {"optim.generator.lr": lr, "model.output_activation": activation}
        )
        trial = TrialDir(sweep_dir / TRIALS_DIR / f"t{i}")
        trial.path.mkdir(parents=True)
        trial.write_config(config)
        train_trial(config, trial.path)
    return spec


def _gan_hpc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gan_hpc", "sweep", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _without_seed(trial: TrialDir) -> dict:
    document = trial.read_config().to_dict()
    del document["train"]["seed"]
    return document


@pytest.mark.slow
def test_confirm_retrains_the_top_trials_with_new_seeds(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "e2e"
    spec = _tiny_sweep(sweep_dir)
    ranked = list(rank_trials(collect_trials(sweep_dir), spec.ranking)["trial_id"])

    run = _gan_hpc("confirm", str(sweep_dir), "--top", "2", "--seeds", "2", "--format", "csv")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "0 of 4 runs already done" in run.stderr
    table = pd.read_csv(io.StringIO(run.stdout))
    assert list(table["trial_id"]) == ranked
    assert list(table["confirm_seeds"]) == [2, 2]

    document = json.loads((sweep_dir / CONFIRM_FILE).read_text())
    assert document["score"] == spec.ranking.score
    assert sorted(document["trials"]) == sorted(ranked)  # a JSON object: keys stored sorted

    results = {}
    for trial_id in ranked:
        original = TrialDir(sweep_dir / TRIALS_DIR / trial_id)
        seed = original.read_config().train.seed
        scores = []
        for new_seed in confirmation_seeds(seed, 2):
            rerun = TrialDir(sweep_dir / CONFIRM_DIR / TRIALS_DIR / f"{trial_id}-seed{new_seed}")
            assert rerun.result_path.exists(), rerun.path
            assert rerun.read_config().train.seed == new_seed != seed
            assert _without_seed(rerun) == _without_seed(original)
            assert rerun.read_status().state == "finished"
            result = json.loads(rerun.result_path.read_text())
            scores.append(result["best"]["metrics"][spec.ranking.score])
            results[rerun.result_path] = rerun.result_path.read_bytes()
        summary = document["trials"][trial_id]
        assert summary["confirm_seeds"] == 2
        assert summary["confirm_mean"] == pytest.approx(statistics.fmean(scores))
        assert summary["confirm_std"] == pytest.approx(statistics.stdev(scores))
        assert isinstance(summary["held_up"], bool)

    status = _gan_hpc("status", str(sweep_dir), "--format", "csv")
    assert status.returncode == 0, status.stderr[-3000:]
    board = pd.read_csv(io.StringIO(status.stdout)).set_index("trial_id")
    assert "held_up" in board.columns
    for trial_id in ranked:
        assert board.loc[trial_id, "held_up"] == document["trials"][trial_id]["held_up"]
        assert board.loc[trial_id, "confirm_seeds"] == 2

    again = _gan_hpc("confirm", str(sweep_dir), "--top", "2", "--seeds", "2", "--format", "csv")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 of 4 runs already done" in again.stderr
    assert "started" not in again.stderr
    assert {path: path.read_bytes() for path in results} == results
    assert pd.read_csv(io.StringIO(again.stdout)).equals(table)
