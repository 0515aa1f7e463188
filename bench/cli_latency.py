"""How long the light commands take, and what a trial's watcher costs to import.

Builds a sweep directory of N ended trials with gan_hpc's own writers (spec.yaml, config.json,
params.json, metrics.jsonl, status.json, result.json), then times each command in a fresh
process, min and median of R runs, against two baselines measured in the same run: a bare
interpreter (``python -c pass``) and ``import torch`` (what every command paid before). Then the
peak RSS of a fresh interpreter importing the watcher module, ``gan_hpc.sweep.tune``, ``ray.tune``
alone, and torch.

    python bench/cli_latency.py [--trials 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gan_hpc import convergence as names
from gan_hpc.files import append_jsonl, atomic_write_json
from gan_hpc.sweep.directory import TRIALS_DIR, write_spec
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict, trial_config_for
from gan_hpc.sweep.watcher import PARAMS_FILE
from gan_hpc.trial_dir import CheckpointRecord, TrialDir, TrialResult, numeric_metrics

NUM_EVALUATIONS = 10
STEPS = 1000
HEAVY = ("torch", "sklearn", "matplotlib", "scipy", "pandas", "optuna")


def build_sweep(sweep_dir: Path, num_trials: int) -> None:
    """A sweep directory of ``num_trials`` finished trials, written the way the code writes it."""
    spec: SweepSpec = sweep_spec_from_dict(
        {
            "name": "latency",
            "seed": 0,
            "base": {
                "data": {"format": "synthetic_frf", "conditional": True},
                "train": {"num_steps": STEPS, "eval_every_steps": STEPS // NUM_EVALUATIONS},
            },
            "search": {
                "optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]},
                "model.generator.width": {"choice": [32, 64, 128]},
            },
            "tune": {"metric": names.CONDITIONAL_RMSE, "num_samples": num_trials},
            "ranking": {"score": names.CONDITIONAL_RMSE},
        }
    )
    sweep_dir.mkdir(parents=True)
    write_spec(sweep_dir, spec)
    rng = random.Random(0)
    for index in range(num_trials):
        params = {
            "optim.generator.lr": math.exp(rng.uniform(math.log(1e-4), math.log(1e-3))),
            "model.generator.width": rng.choice([32, 64, 128]),
        }
        trial = TrialDir(sweep_dir / TRIALS_DIR / f"trial_{index:04d}")
        trial.path.mkdir(parents=True)
        atomic_write_json(trial.path / PARAMS_FILE, params)
        trial.write_config(trial_config_for(spec, params))
        trial.update_status(state="running", message="")
        records = []
        for evaluation in range(1, NUM_EVALUATIONS + 1):
            step = evaluation * STEPS // NUM_EVALUATIONS
            record = {
                names.STEP: step,
                names.EPOCH: step // 50,
                names.WALL_TIME_S: step * 0.01,
                names.D_LOSS: 1.38 + rng.gauss(0, 0.05),
                names.G_LOSS: 0.69 + rng.gauss(0, 0.05),
                names.D_ACC_HELDOUT: rng.uniform(0.5, 0.9),
                names.FOOLING_RATE: rng.uniform(0.2, 0.6),
                names.D_LOSS_GAP: abs(rng.gauss(0, 0.1)),
                names.CONDITIONAL_RMSE: rng.uniform(0.1, 1.0) / evaluation,
                names.SLICED_WASSERSTEIN: rng.uniform(0.01, 0.5),
            }
            append_jsonl(trial.metrics_path, record)
            records.append(record)
        trial.update_status(state="finished", step=STEPS, message="")
        best = min(records, key=lambda r: r[names.CONDITIONAL_RMSE])
        result = TrialResult(
            state="finished",
            step=STEPS,
            wall_time_s=STEPS * 0.01,
            best=CheckpointRecord(
                step=int(best[names.STEP]),
                metrics=numeric_metrics(best),
                checkpoint="checkpoints/best.pt",
            ),
            last=CheckpointRecord(
                step=STEPS, metrics=numeric_metrics(records[-1]), checkpoint="checkpoints/last.pt"
            ),
        )
        trial.write_result(result)


def time_runs(argv: list[str], runs: int) -> tuple[float, float]:
    """Min and median wall seconds of ``argv`` over ``runs`` runs (each must exit 0)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def peak_import(module: str) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, heavy modules loaded) of a fresh ``import module``.

    The peak is VmHWM of /proc/self/status: unlike ``ru_maxrss`` it restarts at exec, so the
    bench's own memory (it imported torch) does not leak into the child's figure.
    """
    code = (
        f"import sys, time; t = time.perf_counter(); import {module}; "
        "t = time.perf_counter() - t; "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
        f"print(t, int(hwm) / 1024, ','.join(h for h in {HEAVY!r} if h in sys.modules) or '-')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds, rss, heavy = out.stdout.split()
    return float(seconds), float(rss), heavy


def main() -> None:
    """Build the sweep, time the commands, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    script = Path(sys.executable).with_name("gan-hpc")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "gan_hpc"]
    with tempfile.TemporaryDirectory() as tmp:
        sweep_dir = Path(tmp) / "sweep"
        started = time.perf_counter()
        build_sweep(sweep_dir, args.trials)
        print(f"built {args.trials} trials in {time.perf_counter() - started:.1f} s: {sweep_dir}")
        cases = [
            ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
            ("gan-hpc --help", [*cli, "--help"]),
            ("gan-hpc sweep --help", [*cli, "sweep", "--help"]),
            (
                f"gan-hpc sweep status ({args.trials} trials)",
                [*cli, "sweep", "status", str(sweep_dir)],
            ),
        ]
        rows = [(label, *time_runs(argv, args.runs)) for label, argv in cases]
    bare, torch_import = rows[0][2], rows[1][2]
    print(f"\n{'command':<36}{'min s':>8}{'median s':>10}{'÷ bare':>8}{'÷ torch':>9}")
    for label, fastest, median in rows:
        print(
            f"{label:<36}{fastest:>8.3f}{median:>10.3f}"
            f"{median / bare:>8.1f}{median / torch_import:>9.2f}"
        )
    print(f"\n{'fresh import':<24}{'s':>7}{'peak RSS MiB':>14}  heavy modules loaded")
    for module in ("gan_hpc.sweep.watcher", "gan_hpc.sweep.tune", "ray.tune", "torch"):
        seconds, rss, heavy = peak_import(module)
        print(f"{module:<24}{seconds:>7.2f}{rss:>14.0f}  {heavy}")


if __name__ == "__main__":
    main()
