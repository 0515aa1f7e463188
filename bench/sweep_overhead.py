"""Wall time of a Ray Tune sweep of N trials against the same trials trained back to back.

The sweep runs through the real CLI (`gan-hpc sweep run`, one trial at a time, FIFO scheduler,
so no trial is stopped early); the baseline then trains the very same trial configs with
``train_trial`` in one process, without Ray. Trial lengths are given in seconds: the bench first
times two short trials in this process and picks the step counts that take that long here
(``--steps`` gives step counts instead). One table prints every length with its ratio, the
driver's peak memory (the CLI process, and Ray's own processes beside it) and Ray's start-up.

Each length is measured ``--repeats`` times, a sweep and then its back-to-back run, and the
median ratio printed with the range: on a shared machine one pair can be off by a tenth.

    python bench/sweep_overhead.py [--trials 4] [--trial-seconds 10 25] [--steps N ...]
                                   [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from gan_hpc.config import TrialConfig
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import TrialDir


def sweep_spec(num_trials: int, num_steps: int) -> dict:
    """A sweep of small conditional MLP GANs on simulated FRF curves, one thread per trial."""
    return {
        "name": "overhead",
        "seed": 0,
        "base": {
            "data": {"format": "synthetic_frf", "conditional": True},
            "model": {
                "latent_dim": 16,
                "generator": {"depth": 2, "width": 64},
                "discriminator": {"depth": 2, "width": 64},
            },
            "train": {
                "batch_size": 64,
                "num_steps": num_steps,
                "eval_every_steps": num_steps // 10,
                "num_threads": 1,  # the baseline trains in this process: the same 1 thread
            },
        },
        "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": num_trials,
            "max_concurrent_trials": 1,
            "scheduler": "fifo",
        },
        "resources": {"cpus_per_trial": 1},
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 256},
    }


def run_sweep(spec_file: Path, out: Path) -> tuple[float, float, float]:
    """Run the CLI; returns (wall s, peak driver RSS GiB, peak RSS of Ray's processes GiB)."""
    started = time.perf_counter()
    driver = subprocess.Popen(
        [sys.executable, "-m", "gan_hpc", "sweep", "run", str(spec_file), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak_driver = peak_ray = 0.0
    while driver.poll() is None:
        peak_driver = max(peak_driver, _rss_bytes(driver.pid))
        ray_rss = sum(_rss_bytes(pid) for pid in _pids() if _is_ray(pid))
        peak_ray = max(peak_ray, ray_rss)
        time.sleep(0.5)
    if driver.returncode != 0:
        raise SystemExit(f"sweep failed with exit {driver.returncode}")
    return time.perf_counter() - started, peak_driver / 2**30, peak_ray / 2**30


def _pids() -> list[int]:
    """Every process id on this host (Linux /proc)."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _rss_bytes(pid: int) -> float:
    """Resident memory of a process, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 0.0


def _is_ray(pid: int) -> bool:
    """True for Ray's own processes (raylet, GCS, workers, dashboard agents)."""
    try:
        cmdline = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return False
    return any(tag in cmdline for tag in ("raylet", "gcs_server", "ray::", "dashboard"))


def ray_startup_s() -> float:
    """Seconds for ``ray.init`` in a fresh process (import excluded)."""
    code = (
        "import time, ray; t = time.perf_counter(); "
        "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False); "
        "print(time.perf_counter() - t); ray.shutdown()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Measured:
    """One trial length's sweep against the same trials back to back."""

    num_steps: int
    trial_mean_s: float
    baseline_wall_s: float
    sweep_wall_s: float
    driver_gib: float
    ray_gib: float

    @property
    def ratio(self) -> float:
        """Sweep wall time over back-to-back wall time."""
        return self.sweep_wall_s / self.baseline_wall_s


def measure(root: Path, num_trials: int, num_steps: int) -> Measured:
    """Sweep ``num_trials`` trials of ``num_steps``, then train the same ones back to back."""
    spec_file = root / "overhead.yaml"
    spec_file.write_text(yaml.safe_dump(sweep_spec(num_trials, num_steps)))
    sweep_wall, driver_gib, ray_gib = run_sweep(spec_file, root / "runs/overhead")
    configs = [TrialDir(p).read_config() for p in sorted((root / "runs/overhead/trials").iterdir())]
    started = time.perf_counter()
    for index, config in enumerate(configs):
        train_trial(config, root / "baseline" / str(index))
    baseline_wall = time.perf_counter() - started
    return Measured(
        num_steps=num_steps,
        trial_mean_s=baseline_wall / len(configs),
        baseline_wall_s=baseline_wall,
        sweep_wall_s=sweep_wall,
        driver_gib=driver_gib,
        ray_gib=ray_gib,
    )


def steps_for_seconds(root: Path, seconds: list[float]) -> list[int]:
    """Step counts whose trials take ``seconds`` here: a line through two trial lengths.

    Each length is timed twice and the faster kept: a busy moment of a shared machine would
    otherwise tilt the line.
    """
    base = sweep_spec(1, 0)["base"]

    runs = itertools.count()

    def timed(num_steps: int) -> float:
        document = {**base, "train": {**base["train"], "num_steps": num_steps}}
        document["train"]["eval_every_steps"] = num_steps // 10
        config = TrialConfig.from_dict(document, source="calibration")
        started = time.perf_counter()
        # a fresh directory each time: an existing one would resume its finished trial
        train_trial(config, root / f"calibration-{next(runs)}")
        return time.perf_counter() - started

    timed(100)  # the first trial in a process imports what the others reuse
    short, long = 400, 3000
    short_s, long_s = (min(timed(steps) for _ in range(2)) for steps in (short, long))
    per_step = (long_s - short_s) / (long - short)
    fixed = short_s - short * per_step
    return [max(100, round((s - fixed) / per_step / 10) * 10) for s in seconds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument(
        "--trial-seconds",
        type=float,
        nargs="+",
        default=[10.0, 25.0],
        help="trial lengths to measure, in seconds of training here",
    )
    parser.add_argument("--steps", type=int, nargs="+", help="generator steps per trial instead")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="sweep/back-to-back pairs per length; the median ratio is reported",
    )
    args = parser.parse_args()
    if args.steps is None:
        with tempfile.TemporaryDirectory() as tmp:
            args.steps = steps_for_seconds(Path(tmp), args.trial_seconds)
    rows: list[list[Measured]] = []
    for num_steps in args.steps:
        pairs = []
        for _ in range(args.repeats):  # each sweep right before its own back-to-back run
            with tempfile.TemporaryDirectory() as tmp:
                pairs.append(measure(Path(tmp), args.trials, num_steps))
        rows.append(pairs)
    startup = ray_startup_s()

    print(
        f"{args.trials} trials per sweep, one at a time (FIFO); the same trials back to back; "
        f"the median of {args.repeats} pairs, each pair's sweep just before its back-to-back run"
    )
    header = (
        f"{'steps':>6s} {'trial s':>8s} {'back-to-back s':>15s} {'sweep s':>8s} "
        f"{'sweep/b2b':>10s} {'range':>13s} {'s/trial':>8s} {'driver GiB':>11s} {'Ray GiB':>8s}"
    )
    print(header)
    for pairs in rows:
        ratios = sorted(pair.ratio for pair in pairs)
        row = min(pairs, key=lambda pair: abs(pair.ratio - statistics.median(ratios)))
        extra_per_trial = (row.sweep_wall_s - row.baseline_wall_s) / args.trials
        spread = f"{ratios[0]:.3f}-{ratios[-1]:.3f}"
        print(
            f"{row.num_steps:6d} {row.trial_mean_s:8.1f} {row.baseline_wall_s:15.1f} "
            f"{row.sweep_wall_s:8.1f} {statistics.median(ratios):10.3f} {spread:>13s} "
            f"{extra_per_trial:8.2f} {max(p.driver_gib for p in pairs):11.2f} "
            f"{max(p.ray_gib for p in pairs):8.2f}"
        )
    print(f"ray.init in a fresh process: {startup:.2f} s")


if __name__ == "__main__":
    main()
