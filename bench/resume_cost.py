"""What a killed sweep costs: work repeated after `sweep resume`, and time until trials run again.

A local sweep is started through the CLI and SIGKILLed (the driver only) at about half of its
total steps; `gan-hpc sweep resume` then finishes it. Printed: the steps trained twice over the
total (a lower bound from the checkpoints' records, and an upper bound adding one checkpoint
interval per interrupted trial, since work after the last checkpoint is lost unseen), the time
from `resume` to the first trainer running again and to its first new record, and the
wall time of an uninterrupted copy of the same sweep for reference.

    python bench/resume_cost.py [--trials 4] [--steps 600] [--eval-every 50]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from gan_hpc.trial_dir import TrialDir


def spec(num_trials: int, num_steps: int, eval_every: int) -> dict:
    """A FIFO sweep (no early stopping), two trials at a time."""
    return {
        "name": "resume-cost",
        "seed": 0,
        "base": {
            "data": {"format": "synthetic_frf", "conditional": True},
            "model": {"latent_dim": 16, "generator": {"width": 64}, "discriminator": {"width": 64}},
            "train": {"batch_size": 64, "num_steps": num_steps, "eval_every_steps": eval_every},
        },
        "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": num_trials,
            "max_concurrent_trials": 2,
            "scheduler": "fifo",
        },
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 256},
    }


def trials(sweep_dir: Path) -> list[TrialDir]:
    """The sweep's trial directories."""
    root = sweep_dir / "trials"
    return [TrialDir(p) for p in sorted(root.iterdir())] if root.is_dir() else []


def progress(sweep_dir: Path) -> int:
    """Checkpointed steps over all trials."""
    return sum(
        max((int(r["step"]) for r in t.read_metrics()), default=0) for t in trials(sweep_dir)
    )


def cli(*args: str) -> list[str]:
    """A gan-hpc command line."""
    return [sys.executable, "-m", "gan_hpc", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--eval-every", type=int, default=50)
    args = parser.parse_args()
    total = args.trials * args.steps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec_file = root / "resume-cost.yaml"
        spec_file.write_text(yaml.safe_dump(spec(args.trials, args.steps, args.eval_every)))

        started = time.perf_counter()
        subprocess.run(
            cli("sweep", "run", str(spec_file), "--out", str(root / "clean")),
            check=True,
            capture_output=True,
        )
        clean_wall = time.perf_counter() - started

        sweep_dir = root / "killed" / "resume-cost"
        started = time.perf_counter()
        driver = subprocess.Popen(
            cli("sweep", "run", str(spec_file), "--out", str(sweep_dir)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while progress(sweep_dir) < total // 2:
            time.sleep(0.2)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        before_kill = time.perf_counter() - started
        at_kill = {t.path.name: t.read_status() for t in trials(sweep_dir)}
        interrupted = [tid for tid, status in at_kill.items() if status.state == "running"]
        records_at_kill = {t.path.name: len(t.read_metrics()) for t in trials(sweep_dir)}

        resume_started = time.time()
        t0 = time.perf_counter()
        resumed = subprocess.Popen(
            cli("sweep", "resume", str(sweep_dir)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        first_running = first_record = None
        while resumed.poll() is None:
            now = time.perf_counter() - t0
            for trial in trials(sweep_dir):
                status = trial.read_status()
                if (
                    first_running is None
                    and status.state == "running"
                    and status.updated_at > resume_started
                ):
                    first_running = now
                if first_record is None and len(trial.read_metrics()) > records_at_kill.get(
                    trial.path.name, 0
                ):
                    first_record = now
            time.sleep(0.2)
        if resumed.returncode != 0:
            raise SystemExit(f"resume failed with exit {resumed.returncode}")
        resume_wall = time.perf_counter() - t0
        repeated_low = sum(t.read_status().steps_repeated for t in trials(sweep_dir))
        repeated_high = repeated_low + len(interrupted) * args.eval_every

    print(
        f"{args.trials} trials x {args.steps} steps, checkpoint every {args.eval_every}, "
        "2 at a time; "
        f"killed at {before_kill:.0f} s with {len(interrupted)} trials running"
    )
    print(f"{'measure':56s} {'value':>10s}")
    print(f"{'steps trained twice / total steps, lower bound':56s} {repeated_low / total:10.3f}")
    print(f"{'steps trained twice / total steps, upper bound':56s} {repeated_high / total:10.3f}")
    print(
        f"{'resume -> first trainer running again (s)':56s} {first_running or float('nan'):10.1f}"
    )
    print(f"{'resume -> first new metrics record (s)':56s} {first_record or float('nan'):10.1f}")
    print(f"{'killed run + resume wall time (s)':56s} {before_kill + resume_wall:10.1f}")
    print(f"{'uninterrupted sweep wall time (s)':56s} {clean_wall:10.1f}")
    print(
        f"{'(killed + resume) / uninterrupted':56s} "
        f"{(before_kill + resume_wall) / clean_wall:10.3f}"
    )


if __name__ == "__main__":
    main()
