"""What a SLURM sweep's driver costs as it watches more trials: scheduler calls and memory.

For each size N, a real sweep (`gan-hpc sweep run`, launcher slurm, FIFO) of N tiny concurrent
trials runs on the test cluster (`slurm/cluster.sh start`). Once all N jobs run and report, it is
watched for ``--window-s`` seconds, then interrupted (its jobs are cancelled). Printed per N:

- squeue+sacct calls per minute over the window: *after* = the sweep's poller's own counters
  (``<sweep_dir>/slurm_poll/<token>/states.json``); *before* = the old rule, every watcher asking
  squeue every 5 s while its job runs (N x 12 per minute); and sdiag's squeue RPCs from every
  client of the controller (other users included: an upper bound);
- the driver's memory in all: the `gan-hpc sweep run` process and every process under it (Ray's
  gcs_server, raylet, workers and actors), summed RSS and summed PSS (``/proc/PID/smaps_rollup``;
  PSS counts shared pages once, closer to what a job's cgroup is charged), peak over the window,
  and per watched trial;
- where the PSS goes at the peak: the driver process, the watchers (Tune's trial actors, forked
  by the sweep's fork server, each with the small client process Ray started for it), the fork
  server, Ray's idle workers and Ray's own processes (gcs_server, raylet, agents...);
- the floor under one watcher, measured in the same run: a bare Ray actor, and one that has
  imported ``ray.tune`` (what any Tune trial's actor loads: pandas, pyarrow, ray.data, ray.train),
  and the watcher's mean PSS (with the client Ray started for it) as a ratio of the latter;
- after the rows, the least-squares line through them, projected to ``--project`` trials. Each
  tiny trainer holds about 0.44 GiB, so 100 of them do not fit on the 24-GiB test node: that
  figure is a projection, and is printed as one.

The test node has 2 CPUs: the partition is oversubscribed for the run (``scontrol update
PartitionName=... OverSubscribe=FORCE:K``) and restored to its setting afterwards.

    python bench/driver_scale.py [--trials 2 8 32] [--window-s 60] [--partition debug]
        [--project 100]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from gan_hpc.sweep import worker_forkserver as forkserver

OLD_REFRESH_S = 5.0  # the per-watcher rule this replaces: one squeue per job every 5 s
START_TIMEOUT_S = 900.0
PROCESS_KINDS = ("driver", "watcher", "client", "server", "idle", "ray")
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # Ray's own, titled like actors


def sweep_spec(name: str, num_trials: int) -> dict:
    """N tiny trials that train far longer than the window (the bench stops them)."""
    return {
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
            "train": {"batch_size": 16, "num_steps": 1_000_000, "eval_every_steps": 500},
        },
        "search": {"optim.generator.lr": {"loguniform": [5.0e-4, 3.0e-3]}},
        "tune": {
            "metric": "conditional_rmse",
            "num_samples": num_trials,
            "max_concurrent_trials": num_trials,
            "scheduler": "fifo",
        },
        "launcher": "slurm",
        "slurm": {"timeout_min": 60, "cpus_per_task": 1, "mem_gb": 0.25, "driver_cpus": 1},
        "ranking": {"score": "conditional_rmse", "num_eval_samples": 32},
    }


@contextmanager
def oversubscribed(partition: str, jobs_per_cpu: int) -> Iterator[None]:
    """Let ``jobs_per_cpu`` jobs share each CPU of ``partition``; restore its setting after."""
    shown = subprocess.run(
        ["scontrol", "show", "partition", partition], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"OverSubscribe=(\S+)", shown)
    before = match.group(1) if match else "NO"
    subprocess.run(
        ["scontrol", "update", f"PartitionName={partition}", f"OverSubscribe=FORCE:{jobs_per_cpu}"],
        check=True,
    )
    try:
        yield
    finally:
        subprocess.run(
            ["scontrol", "update", f"PartitionName={partition}", f"OverSubscribe={before}"],
            check=True,
        )


def descendants(root: int) -> list[int]:
    """``root`` and every process under it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB from smaps_rollup; (0, 0) when it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def process_kind(pid: int, driver_pid: int) -> str:
    """Which of PROCESS_KINDS a process is.

    driver; watcher (a Tune trial's actor, forked by the fork server); client (the process Ray
    started for that watcher, which waits for it); server (the fork server); idle (Ray's idle
    workers) or ray (Ray's own processes).
    """
    if pid == driver_pid:
        return "driver"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "ray"
    title = argv[0].decode(errors="replace")
    if argv[1:3] == [b"-m", forkserver.MODULE.encode()]:
        return "server" if argv[3:4] == [b"serve"] else "client"
    if argv[2:3] == [forkserver.WAITER.encode()]:
        return "client"
    if title.startswith("ray::IDLE"):
        return "idle"
    if not title.startswith("ray::") or title.startswith(RAY_AGENTS):
        return "ray"
    return "watcher"  # Tune's trial actors: ray::ResourceTrainable (with_resources' wrapper)


def tune_floor_pss_mib() -> tuple[float, float]:
    """PSS (MiB) of a bare Ray actor and of one that imported ``ray.tune``, side by side."""
    import ray  # here only: the sweeps under test start their own Ray runtimes

    @ray.remote(num_cpus=0)
    class Probe:
        def pid(self, module: str) -> int:
            if module:
                __import__(module)
            return os.getpid()

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        bare, tune = Probe.remote(), Probe.remote()
        pids = ray.get([bare.pid.remote(""), tune.pid.remote("ray.tune")])
        time.sleep(2.0)
        return memory_kib(pids[0])[1] / 1024, memory_kib(pids[1])[1] / 1024
    finally:
        ray.shutdown()


def job_states(job_name: str) -> list[str]:
    """The states of the queued and running jobs named ``job_name``."""
    out = subprocess.run(
        ["squeue", "-h", f"--name={job_name}", "-o", "%T"], capture_output=True, text=True
    ).stdout
    return out.split()


def squeue_rpcs() -> int:
    """The controller's count of job-info RPCs (squeue's), from every client."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True).stdout
    return sum(int(m) for m in re.findall(r"REQUEST_JOB_INFO\S*\s+\(\s*\d+\)\s+count:(\d+)", out))


def poll_counts(sweep_dir: Path) -> tuple[int, float]:
    """(squeue + sacct calls so far, when) from the sweep's poller; (0, now) before it writes."""
    total = 0
    for states in sweep_dir.glob("slurm_poll/*/states.json"):
        try:
            answer = json.loads(states.read_text())
        except (OSError, ValueError):
            continue
        total += int(answer.get("num_squeue_calls", 0)) + int(answer.get("num_sacct_calls", 0))
    return total, time.monotonic()


def measure(num_trials: int, window_s: float, root: Path) -> dict[str, float]:
    """Run one sweep of ``num_trials``; the window's call rates and peak memory."""
    name = f"driver-scale-{num_trials}-{os.getpid()}"
    spec_file = root / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(sweep_spec(name, num_trials)))
    sweep_dir = root / "runs" / name
    job_name = f"gan-hpc.{name}"
    log = open(root / f"{name}.log", "w")  # noqa: SIM115 (open for the driver's lifetime)
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gan_hpc",
            "sweep",
            "run",
            str(spec_file),
            "--out",
            str(sweep_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if driver.poll() is not None:
                raise SystemExit(f"the sweep exited {driver.returncode}; see {log.name}")
            running = job_states(job_name).count("RUNNING")
            trials = list((sweep_dir / "trials").glob("*/metrics.jsonl"))
            if running == num_trials and len(trials) == num_trials:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {running}/{num_trials} jobs ran after {START_TIMEOUT_S} s")
            time.sleep(2.0)
        calls_start, start = poll_counts(sweep_dir)
        rpcs_start = squeue_rpcs()
        peak_rss = peak_pss = 0
        parts: dict[str, int] = {}  # PSS KiB by process_kind at the peak
        num_watchers = 0
        while time.monotonic() - start < window_s:
            sample: dict[str, int] = {}
            rss = watchers = 0
            for pid in descendants(driver.pid):
                pid_rss, pid_pss = memory_kib(pid)
                kind = process_kind(pid, driver.pid)
                sample[kind] = sample.get(kind, 0) + pid_pss
                watchers += kind == "watcher" and pid_pss > 0
                rss += pid_rss
            peak_rss = max(peak_rss, rss)
            if sum(sample.values()) > peak_pss:
                peak_pss, parts, num_watchers = sum(sample.values()), sample, watchers
            time.sleep(2.0)
        calls_end, end = poll_counts(sweep_dir)
        rpcs = squeue_rpcs() - rpcs_start
        still_running = job_states(job_name).count("RUNNING")
    finally:
        driver.send_signal(signal.SIGINT)  # Tune stops its trials; the watchers cancel the jobs
        try:
            driver.wait(timeout=180)
        except subprocess.TimeoutExpired:
            for pid in reversed(descendants(driver.pid)):
                os.kill(pid, signal.SIGKILL)
            driver.wait()
        subprocess.run(["scancel", f"--name={job_name}"])
        log.close()
    minutes = (end - start) / 60
    return {
        "running": still_running,
        "before": num_trials * 60 / OLD_REFRESH_S,
        "after": (calls_end - calls_start) / minutes,
        "sdiag": rpcs / minutes,
        "rss_gib": peak_rss / 2**20,
        "pss_gib": peak_pss / 2**20,
        "num_watchers": num_watchers,
        **{f"{kind}_mib": parts.get(kind, 0) / 1024 for kind in PROCESS_KINDS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[2, 8, 32])
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--partition", default="debug")
    parser.add_argument(
        "--project",
        type=int,
        default=100,
        help="trials to project the memory line to (100 tiny trainers need ~45 GB on one node)",
    )
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    bare_mib, tune_mib = tune_floor_pss_mib()
    print(
        f"floor, same run: a bare Ray actor {bare_mib:.0f} MiB PSS; one that imported ray.tune "
        f"(any Tune trial's actor) {tune_mib:.0f} MiB"
    )
    print(f"window {args.window_s:.0f} s with all trials running; calls = squeue + sacct per min")
    print("memory: summed over the driver and every process under it, at the peak; the last six")
    print("columns split the PSS (MiB): the driver, each watcher with the client Ray started for")
    print("it (and as a ratio of the floor), the fork server, idle workers and Ray's own")
    print("processes. Each row is printed once measured.")
    print(
        f"{'trials':>6s} {'calls before':>12s} {'calls after':>11s} {'ratio':>6s} "
        f"{'sdiag squeue':>12s} {'RSS GiB':>8s} {'PSS GiB':>8s} {'PSS/trial':>9s} "
        f"{'driver':>7s} {'each':>6s} {'vs floor':>8s} {'server':>6s} {'idle':>6s} {'ray':>6s}",
        flush=True,
    )
    with (
        # ignore_cleanup_errors: a cancelled job may still be writing its last files
        tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp,
        oversubscribed(args.partition, math.ceil(max(args.trials) / cpus) + 1),
    ):
        measured: list[tuple[int, float]] = []  # (trials, PSS GiB)
        for num_trials in args.trials:
            row = measure(num_trials, args.window_s, Path(tmp))
            measured.append((num_trials, row["pss_gib"]))
            ratio = row["before"] / row["after"] if row["after"] else math.inf
            # a watcher and the client Ray started for it
            each = (row["watcher_mib"] + row["client_mib"]) / max(row["num_watchers"], 1)
            print(
                f"{num_trials:6d} {row['before']:12.1f} {row['after']:11.1f} {ratio:6.1f} "
                f"{row['sdiag']:12.1f} {row['rss_gib']:8.2f} {row['pss_gib']:8.2f} "
                f"{row['pss_gib'] * 1024 / num_trials:7.0f}MB "
                f"{row['driver_mib']:7.0f} {each:6.0f} {each / tune_mib:8.2f} "
                f"{row['server_mib']:6.0f} {row['idle_mib']:6.0f} {row['ray_mib']:6.0f}",
                flush=True,
            )
    if len(measured) >= 2:
        fixed, per_trial = fit_line(measured)
        print(
            f"least-squares line through the rows: {fixed:.2f} GiB + {per_trial * 1024:.1f} MiB "
            f"per trial; at {args.project} trials: {fixed + per_trial * args.project:.2f} GiB "
            "(projected, not measured)"
        )
    print("targets: 32 trials within 2 GiB of driver memory in all, 100 within 4 GiB")


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line through ``points``."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum(
        (x - mean_x) ** 2 for x, _ in points
    )
    return mean_y - slope * mean_x, slope


if __name__ == "__main__":
    main()
