"""Held-out quality on UCI Adult: the best generator of a fixed-budget sweep, ceiling and floor.

Runs ``gan-hpc sweep run sweeps/adult_mlp.yaml`` (train on adult.arff, score on
adult.test.arff) with a fixed budget, then prints the leaderboard's best trial beside the two
baselines the sweep scored on the same held-out half: ``real data`` (a second real sample:
the ceiling) and ``independent marginals`` (every column drawn on its own: the floor).
``position`` is (GAN - floor) / (ceiling - floor) per metric: 1 is the ceiling and 0 the
floor, whichever way the metric points. Wall times: the whole sweep, and per trial the
training and the end-of-trial scoring of its best and last checkpoints.

    python bench/quality_adult.py [--trials 6] [--steps 3000] [--data ../shared/datasets/adult]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "adult_mlp.yaml"
METRICS = (
    "quality/tabular_score",
    "quality/column_similarity",
    "quality/trend_similarity",
    "quality/detection_auc",
    "quality/ml_efficacy_tstr",
    "quality/ml_efficacy_ratio",
    "quality/dcr_ratio",
    "quality/privacy_ok",
)
ROWS = (
    ("real data (ceiling)", "baseline:real_data"),
    ("best GAN", None),
    ("independent marginals (floor)", "baseline:independent_marginals"),
)


def run_sweep(out: Path, data: Path, num_trials: int, num_steps: int) -> float:
    """Run the fixed-budget sweep through the CLI; return its wall time in seconds."""
    overrides = [
        f"data.path={data / 'adult.arff'}",
        f"data.test_path={data / 'adult.test.arff'}",
        f"tune.num_samples={num_trials}",
        f"train.num_steps={num_steps}",
        f"tune.grace_period_steps={min(500, num_steps)}",
    ]
    command = [sys.executable, "-m", "gan_hpc", "sweep", "run", str(SPEC), "--out", str(out)]
    for item in overrides:
        command += ["--set", item]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def leaderboard(sweep_dir: Path) -> list[dict]:
    """The sweep's leaderboard rows (trials ranked, then the baseline rows)."""
    command = [sys.executable, "-m", "gan_hpc", "sweep", "status", str(sweep_dir)]
    output = subprocess.run(
        [*command, "--format", "json"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output)


def trial_times(sweep_dir: Path) -> tuple[list[float], list[float]]:
    """Per finished trial: training wall time and end-of-trial scoring time (seconds)."""
    train, scoring = [], []
    for result_path in sorted((sweep_dir / "trials").glob("*/result.json")):
        result = json.loads(result_path.read_text())
        seconds = {
            json.dumps(record.get("checkpoint")): record.get("quality", {}).get("seconds", 0.0)
            for record in (result.get("best"), result.get("last"))
            if record
        }
        train.append(result["wall_time_s"] - sum(seconds.values()))
        scoring.append(sum(seconds.values()))
    return train, scoring


def position(value: float, floor: float, ceiling: float) -> str:
    """Where ``value`` lies between the floor (0) and the ceiling (1).

    Empty where the two baselines agree (within 0.02): independent marginals match every
    single column by construction, so per-column similarity has no floor to measure from.
    """
    if any(v is None for v in (value, floor, ceiling)) or abs(ceiling - floor) < 0.02:
        return ""
    return f"{(value - floor) / (ceiling - floor):.2f}"


def main() -> None:
    """Run the sweep and print the quality and wall-time tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials in the sweep")
    parser.add_argument("--steps", type=int, default=3000, help="generator steps per trial")
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/adult"))
    parser.add_argument("--out", type=Path, help="sweep output folder (default: a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="quality-adult-"))
    wall = run_sweep(out, args.data.resolve(), args.trials, args.steps)
    rows = leaderboard(out / "adult_mlp")
    best = next(r for r in rows if r.get("rank") == 1)
    by_id = {r["trial_id"]: r for r in rows}
    picked = {label: by_id[key] if key else best for label, key in ROWS}
    ceiling, floor = picked[ROWS[0][0]], picked[ROWS[2][0]]

    print(
        f"Adult, {args.trials} trials x {args.steps} steps; best = {best['trial_id']} "
        f"(gate {best['gate']}, state {best['state']}, step {best['step']})\n"
    )
    header = ["row", *(name.removeprefix("quality/") for name in METRICS)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, _ in ROWS:
        row = picked[label]
        cells = [f"{row[name]:.3f}" if row.get(name) is not None else "" for name in METRICS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    gan = picked[ROWS[1][0]]
    cells = [position(gan.get(name), floor.get(name), ceiling.get(name)) for name in METRICS]
    print("| best GAN position (floor 0, ceiling 1) | " + " | ".join(cells) + " |")

    train, scoring = trial_times(out / "adult_mlp")
    print("\n| wall time | seconds |\n|---|---|")
    print(f"| whole sweep ({args.trials} trials, 2 at a time) | {wall:.1f} |")
    if train:
        mean_train = statistics.fmean(train)
        print(f"| training per finished trial (mean of {len(train)}) | {mean_train:.1f} |")
        print(f"| end-of-trial scoring per trial (best + last) | {statistics.fmean(scoring):.1f} |")
        share = sum(scoring) / (sum(train) + sum(scoring))
        print(f"| scoring / trial wall time | {share:.3f} |")
    print(f"\nsweep directory: {out / 'adult_mlp'}")


if __name__ == "__main__":
    main()
