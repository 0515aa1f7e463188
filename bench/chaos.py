"""Chaos: SIGKILL the sweep driver's whole process group at random moments, then resume.

Each kill lands at a moment drawn from a seeded generator (printed, so a failure can be
replayed with ``--seed``): either a random delay into the driver's life, or the instant the
next trial directory appears (the window where a trial exists on disk but in no snapshot).
After the kills, ``gan-hpc sweep resume`` finishes the sweep and the invariants are checked:

- exactly ``num_samples`` trial directories, every trial ended (finished or stopped early);
- no trial ran twice at once (local: its metrics never interleave; SLURM: its jobs in sacct
  never overlap, and no job outside its launch record);
- no trainer process and no SLURM job of the sweep left behind;
- the Optuna study in the sweep directory holds every trial, none left running.

    python bench/chaos.py --kills 20 [--launcher local|slurm] [--seed 0] [--kills-per-sweep 1]

prints, per launcher: sweeps that held / kills, the time from each resume to its first new
metrics record, and the steps trained twice over the steps trained.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from gan_hpc.launchers.base import read_launch
from gan_hpc.launchers.local import trainer_pids
from gan_hpc.launchers.slurm import parse_comment, sweep_key
from gan_hpc.trial_dir import TrialDir

ENDED_OK = {"finished", "stopped"}


def chaos_spec(
    name: str, launcher: str, *, num_samples: int = 3, num_steps: int = 80, eval_every: int = 10
) -> dict[str, Any]:
    """A toy ASHA sweep of tiny conditional FRF GANs (a trial trains in seconds)."""
    spec: dict[str, Any] = {
        "name": name,
        "seed": 0,
        "base": {
            "data": {
                "format": "synthetic_frf",
                "conditional": True,
                "synthetic": {"num_points": 64, "num_frequencies": 32},
            },
            "model": {
                "latent_dim": 8,
                "generator": {"depth": 1, "width": 16},
                "discriminator": {"depth": 1, "width": 16},
            },
            "train": {"batch_size": 16, "num_steps": num_steps, "eval_every_steps": eval_every},
        },
        "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 3.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": num_samples,
            "max_concurrent_trials": 2,
            "scheduler": "asha",
            "grace_period_steps": 2 * eval_every,
            "reduction_factor": 2,
            "max_retries_per_trial": 1,
        },
        "launcher": launcher,
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 32},
    }
    if launcher == "slurm":
        spec["resources"] = {"world_size": 1, "nodes": 1}
        spec["slurm"] = {"timeout_min": 30, "cpus_per_task": 1, "max_requeues": 3}
    return spec


@dataclass
class SweepOutcome:
    """What one chaotic sweep did, and what broke."""

    sweep_dir: Path
    kills: list[str] = field(default_factory=list)
    resume_to_report_s: list[float] = field(default_factory=list)
    steps_repeated: int = 0
    steps_total: int = 0
    problems: list[str] = field(default_factory=list)


def trial_dirs(sweep_dir: Path) -> list[TrialDir]:
    """The sweep's trial directories."""
    root = sweep_dir / "trials"
    return [TrialDir(p) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []


def record_count(sweep_dir: Path) -> int:
    """Metrics records written so far, over all trials."""
    total = 0
    for trial in trial_dirs(sweep_dir):
        try:
            total += trial.metrics_path.read_bytes().count(b"\n")
        except FileNotFoundError:
            pass
    return total


def _driver(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a CLI driver in a process group of its own (so the kill takes all of it)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gan_hpc", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def _kill_group(driver: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    driver.wait()


def chaotic_sweep(
    root: Path,
    *,
    launcher: str,
    kills: int,
    rng: random.Random,
    horizon_s: float,
    num_samples: int = 3,
    timeout_s: float = 900.0,
    say: Callable[[str], None] = print,
) -> SweepOutcome:
    """Run one sweep, SIGKILL its driver ``kills`` times at drawn moments, then finish it."""
    name = f"chaos-{launcher}-{rng.randrange(10**6):06d}"
    spec_file = root / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(chaos_spec(name, launcher, num_samples=num_samples)))
    sweep_dir = root / name
    outcome = SweepOutcome(sweep_dir)
    log = root / f"{name}.log"
    env = dict(os.environ)
    command = ["sweep", "run", str(spec_file), "--out", str(sweep_dir)]
    expected = num_samples * chaos_spec(name, launcher)["base"]["train"]["num_steps"] // 10
    fractions = sorted(rng.uniform(0.05, 0.9) for _ in range(kills))
    for kill in range(kills):
        mode = rng.choice(["delay", "new-trial", "progress"])
        delay = rng.uniform(0.0, horizon_s)
        before, started = record_count(sweep_dir), time.monotonic()
        count = len(trial_dirs(sweep_dir))
        target = int(fractions[kill] * expected)
        driver = _driver(command, log, env)
        command = ["sweep", "resume", str(sweep_dir)]
        deadline = started + (delay if mode == "delay" else 3 * horizon_s)
        first_report, fired = None, mode == "delay"
        while driver.poll() is None and time.monotonic() < deadline:
            if first_report is None and kill and record_count(sweep_dir) > before:
                first_report = time.monotonic() - started
            if mode == "new-trial" and len(trial_dirs(sweep_dir)) > count:
                fired = True
                break
            if mode == "progress" and record_count(sweep_dir) >= target:
                fired = True
                break
            time.sleep(0.02)
        if first_report is not None:
            outcome.resume_to_report_s.append(first_report)
        what = {
            "delay": f"delay {delay:.1f}s",
            "new-trial": f"as trial {count + 1} appears",
            "progress": f"at {target} records ({fractions[kill]:.0%} of the sweep)",
        }[mode] + ("" if fired else " (not reached: at the time limit)")
        if driver.poll() is not None:
            say(f"  kill {kill + 1}: {what} -> the driver had ended ({driver.poll()})")
            break
        _kill_group(driver)
        outcome.kills.append(what)
        say(f"  kill {kill + 1}: {what}, SIGKILL at {time.monotonic() - started:.1f}s")
        if len(trial_dirs(sweep_dir)) > num_samples:
            outcome.problems.append(f"{len(trial_dirs(sweep_dir))} trial dirs after a kill")
    if not (sweep_dir / "spec.yaml").exists():
        command = ["sweep", "run", str(spec_file), "--out", str(sweep_dir)]
    before, started = record_count(sweep_dir), time.monotonic()
    driver = _driver(command, log, env)
    first_report = None
    while driver.poll() is None:
        if first_report is None and record_count(sweep_dir) > before:
            first_report = time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            _kill_group(driver)
            outcome.problems.append(f"the final resume ran past {timeout_s:.0f}s")
            break
        time.sleep(0.05)
    if first_report is not None and outcome.kills:
        outcome.resume_to_report_s.append(first_report)
    if driver.returncode not in (0, None):
        outcome.problems.append(f"the final resume exited {driver.returncode}; see {log}")
    check_sweep(outcome, num_samples=num_samples, launcher=launcher)
    return outcome


def check_sweep(outcome: SweepOutcome, *, num_samples: int, launcher: str) -> None:
    """Check the exactly-once invariants of a finished sweep; problems go to ``outcome``."""
    sweep_dir = outcome.sweep_dir
    trials = trial_dirs(sweep_dir)
    problems = outcome.problems
    if len(trials) != num_samples:
        problems.append(f"{len(trials)} trial directories, expected {num_samples}")
    for trial in trials:
        status = trial.read_status()
        steps = [int(r["step"]) for r in trial.read_metrics()]
        outcome.steps_total += max(steps, default=0)
        outcome.steps_repeated += status.steps_repeated
        if status.state not in ENDED_OK:
            problems.append(f"{trial.path.name} ended {status.state}: {status.message[:200]}")
        # a run resumed from a checkpoint steps back once; more means two writers at once
        backs = sum(1 for a, b in zip(steps, steps[1:], strict=False) if b <= a)
        if backs > status.resumes:
            problems.append(f"{trial.path.name}: {backs} step-backs, {status.resumes} resumes")
    deadline = time.monotonic() + 30
    while trainer_pids(trials) and time.monotonic() < deadline:
        time.sleep(0.5)
    if trainer_pids(trials):
        problems.append(f"trainers left running: {sorted(trainer_pids(trials))}")
    if launcher == "slurm":
        _check_slurm_jobs(outcome, trials)
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal")))
    study = optuna.load_study(study_name=sweep_dir.name, storage=storage)
    running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if running:
        problems.append(f"optuna trials still running: {running}")
    if len(complete) != len(trials):
        problems.append(f"optuna: {len(complete)} complete trials for {len(trials)} directories")


def _check_slurm_jobs(outcome: SweepOutcome, trials: list[TrialDir]) -> None:
    """Every job of the sweep in sacct: none still queued, none overlapping another."""
    name = f"gan-hpc.{outcome.sweep_dir.name}"
    # only this sweep directory's jobs: accounting keeps earlier sweeps of the same name
    key = sweep_key(trials[0]) if trials else ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["squeue", "-h", f"--name={name}", "-o", "%i|%k"], capture_output=True, text=True
        ).stdout
        queued = " ".join(
            line for line in listed.splitlines() if parse_comment(line.partition("|")[2])[2] == key
        )
        if not queued:
            break
        time.sleep(1)
    if queued:
        outcome.problems.append(f"slurm jobs left behind: {queued}")
    out = subprocess.run(
        [
            "sacct",
            "-n",
            "-X",
            "-P",
            f"--name={name}",
            "-S",
            "now-1day",
            "-o",
            "JobID,Comment,Start,End,State",
        ],
        capture_output=True,
        text=True,
    ).stdout
    jobs: dict[str, list[tuple[str, str, str, str]]] = {}
    for line in out.splitlines():
        job_id, comment, start, end, state = (line.split("|") + [""] * 5)[:5]
        trial_id, _, job_key = parse_comment(comment)
        if job_key == key:
            jobs.setdefault(trial_id, []).append((job_id, start, end, state))
    for trial in trials:
        mine = sorted(j for j in jobs.get(trial.path.name, []) if j[1] != "Unknown")
        launches = read_launch(trial).launch
        if len(jobs.get(trial.path.name, [])) > launches:
            outcome.problems.append(
                f"{trial.path.name}: {len(jobs[trial.path.name])} jobs for {launches} launches"
            )
        spans = sorted((start, end, job_id) for job_id, start, end, _ in mine)
        for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:], strict=False):
            if end_a == "Unknown" or start_b < end_a:
                outcome.problems.append(f"{trial.path.name}: jobs {a} and {b} overlap")


def run_kills(
    root: Path,
    *,
    launcher: str,
    kills: int,
    kills_per_sweep: int,
    rng: random.Random,
    horizon_s: float,
    say: Callable[[str], None] = print,
) -> list[SweepOutcome]:
    """Chaotic sweeps until ``kills`` kills have landed (a sweep may end before its kills)."""
    outcomes: list[SweepOutcome] = []
    done = 0
    while done < kills:
        outcome = chaotic_sweep(
            root,
            launcher=launcher,
            kills=min(kills_per_sweep, kills - done),
            rng=rng,
            horizon_s=horizon_s,
            say=say,
        )
        done += len(outcome.kills)
        outcomes.append(outcome)
        verdict = "held" if not outcome.problems else "BROKEN: " + "; ".join(outcome.problems)
        say(f"{outcome.sweep_dir.name}: {len(outcome.kills)} kill(s), {verdict}")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Run the kills and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills-per-sweep", type=int, default=1)
    parser.add_argument("--horizon", type=float, default=None, help="latest kill moment, s")
    parser.add_argument("--keep", type=Path, default=None, help="keep the sweeps here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    horizon = args.horizon or (40.0 if args.launcher == "local" else 60.0)
    print(f"chaos: seed {args.seed}, {args.kills} kills, launcher {args.launcher}")
    with tempfile.TemporaryDirectory(prefix="gan-hpc-chaos-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        outcomes = run_kills(
            root,
            launcher=args.launcher,
            kills=args.kills,
            kills_per_sweep=args.kills_per_sweep,
            rng=rng,
            horizon_s=horizon,
        )
    kills = [o for o in outcomes if o.kills]
    held = sum(len(o.kills) for o in kills if not o.problems)
    total = sum(len(o.kills) for o in kills)
    waits = sorted(w for o in outcomes for w in o.resume_to_report_s)
    repeated = sum(o.steps_repeated for o in outcomes)
    trained = sum(o.steps_total for o in outcomes)
    median = waits[len(waits) // 2] if waits else float("nan")
    print()
    print(
        "| launcher | held / kills | resume to first new report (median, max) "
        "| steps trained twice / total |"
    )
    print("| --- | --- | --- | --- |")
    print(
        f"| {args.launcher} | {held} / {total} | {median:.1f} s, "
        f"{(waits[-1] if waits else float('nan')):.1f} s | {repeated} / {trained} |"
    )
    return 0 if held == total else 1


if __name__ == "__main__":
    sys.exit(main())
