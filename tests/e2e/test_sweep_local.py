"""A real Ray Tune + OptunaSearch + ASHA sweep with the local launcher, end to end, on CPU."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gan_hpc import convergence as names
from gan_hpc.trial_dir import TrialDir

SPEC = {
    "name": "e2e",
    "seed": 0,
    "base": {
        "data": {
            "format": "synthetic_frf",
            "conditional": True,
            "synthetic": {"num_points": 64, "num_frequencies": 32},
        },
        "model": {
            "latent_dim": 8,
            "generator": {"depth": 1, "width": 32},
            "discriminator": {"depth": 1, "width": 32},
        },
        "train": {"batch_size": 16, "num_steps": 60, "eval_every_steps": 10},
    },
    "search": {
        "optim.generator.lr": {"loguniform": [5.0e-4, 3.0e-3]},
        # a sigmoid output cannot reach the negative half of the [-1, 1] data: a bad trial
        "model.output_activation": {"choice": ["auto", "sigmoid"]},
    },
    "tune": {
        "metric": "conditional_rmse",
        "mode": "min",
        "num_samples": 4,
        "max_concurrent_trials": 2,
        "grace_period_steps": 20,
        "reduction_factor": 2,
        "initial_points": [
            {"model.output_activation": "auto"},
            {"model.output_activation": "auto"},
            {"model.output_activation": "sigmoid"},
        ],
    },
    "resources": {"cpus_per_trial": 1},
    "ranking": {"score": "conditional_rmse", "score_mode": "min", "num_eval_samples": 32},
}


@pytest.mark.ray
@pytest.mark.slow
def test_local_sweep_end_to_end(tmp_path: Path) -> None:
    spec_file = tmp_path / "e2e.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    run = subprocess.run(
        [sys.executable, "-m", "gan_hpc", "sweep", "run", str(spec_file)]
        + ["--out", str(tmp_path / "e2e")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    sweep_dir = tmp_path / "e2e"
    assert "best" in run.stderr  # the live view names the best trial so far

    status = subprocess.run(
        [sys.executable, "-m", "gan_hpc", "sweep", "status", str(sweep_dir), "--format", "csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    board = pd.read_csv(io.StringIO(status.stdout))
    baselines = board[board["state"] == "baseline"]
    assert set(baselines["trial_id"]) == {"baseline:mean_curve", "baseline:real_data"}
    board = board[board["state"] != "baseline"]
    assert len(board) == 4 and board["trial_id"].nunique() == 4
    # gate first, then the score ascending inside each gate group
    gates = board["gate"].astype(bool).tolist()
    assert gates == sorted(gates, reverse=True)
    for _, group in board.groupby("gate"):
        assert group["score"].is_monotonic_increasing

    trials = {
        row.trial_id: TrialDir(sweep_dir / "trials" / row.trial_id) for row in board.itertuples()
    }
    for trial in trials.values():
        config = trial.read_config()
        assert trial.read_metrics() and list(trial.tensorboard.glob("events.*"))
        assert config.data.synthetic.num_points == 64
    # every trial is a fork of the driver's warm trainer, which imported while Ray started
    logs = {tid: (t.logs / "rank-0.log").read_text() for tid, t in trials.items()}
    assert all("forked from the sweep's warm trainer" in log for log in logs.values()), logs

    by_activation = {tid: t.read_config().model.output_activation for tid, t in trials.items()}
    bad = [tid for tid, act in by_activation.items() if act == "sigmoid"]
    assert bad, by_activation
    for tid in bad:  # ASHA stopped the deliberately bad trial before its budget
        steps = [r[names.STEP] for r in trials[tid].read_metrics()]
        assert max(steps) < 60
        assert trials[tid].read_status().state == "stopped"
    finished = [t for t in trials.values() if t.read_status().state == "finished"]
    assert finished and all(max(r[names.STEP] for r in t.read_metrics()) == 60 for t in finished)
    assert (sweep_dir / "leaderboard.csv").exists()
