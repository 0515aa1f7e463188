"""A trial's watcher stays light: no torch, scikit-learn or matplotlib, and few Ray processes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ray import tune

from gan_hpc.launchers.registry import get_launcher
from gan_hpc.sweep.directory import TRIALS_DIR, write_spec
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict
from gan_hpc.sweep.watcher import TRIAL_KEY, SweepContext, TrialWatcher, tune_result
from gan_hpc.trial_dir import TrialDir, parse_metrics_line

HEAVY_MODULES = ("torch", "sklearn", "matplotlib", "scipy", "optuna")

# What a watcher actor runs at setup and while it polls, in a fresh interpreter.
WATCHER_SETUP = """
import sys
from pathlib import Path

from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.sweep.spec import trial_config_for
from gan_hpc.trial_dir import TrialDir, parse_metrics_line
from gan_hpc.sweep.watcher import SweepContext, TrialWatcher, after_job_end

context = SweepContext(sweep_dir=sys.argv[1])
spec = context.spec()
assert context.is_current()
launch_spec = launch_spec_for(spec)
get_launcher("slurm")
local = get_launcher("local")
trial = TrialDir(Path(sys.argv[1]) / "trials" / "trial_0000")
trial.path.mkdir(parents=True)
trial.write_config(trial_config_for(spec, {}))
assert local.attach(trial, launch_spec, include_ended=True) is None
assert parse_metrics_line('{"step": 10, "d_loss": 0.7}\\n') == {"step": 10, "d_loss": 0.7}
print(",".join(sorted(m for m in sys.argv[2].split(",") if m in sys.modules)))
"""


def _sweep_dir(tmp_path: Path) -> Path:
    spec: SweepSpec = sweep_spec_from_dict(
        {
            "name": "light",
            "base": {"data": {"format": "synthetic_frf", "conditional": True}},
            "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
            "tune": {"metric": "conditional_rmse", "num_samples": 1},
            "ranking": {"score": "conditional_rmse"},
        }
    )
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    write_spec(sweep_dir, spec)
    return sweep_dir


def test_watcher_setup_imports_no_torch(tmp_path: Path) -> None:
    sweep_dir = _sweep_dir(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", WATCHER_SETUP, str(sweep_dir), ",".join(HEAVY_MODULES)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
    assert (sweep_dir / TRIALS_DIR / "trial_0000" / "config.json").is_file()


class _ModulesProbe(TrialWatcher):
    """The real watcher's setup; its one step reports which heavy modules its actor holds."""

    def step(self) -> dict[str, Any]:
        return {"heavy": ",".join(m for m in HEAVY_MODULES if m in sys.modules), "done": True}


@pytest.mark.ray
@pytest.mark.slow
def test_watcher_actor_imports_no_torch(tmp_path: Path) -> None:
    import ray

    sweep_dir = _sweep_dir(tmp_path)
    context = SweepContext(sweep_dir=str(sweep_dir))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            tune.with_parameters(_ModulesProbe, context=context),
            param_space={TRIAL_KEY: "trial_0000"},
            run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    assert results.errors == []
    assert results[0].metrics["heavy"] == ""
    assert (sweep_dir / TRIALS_DIR / "trial_0000" / "config.json").is_file()


def _idle_workers() -> list[int]:
    """The idle Ray workers under this process (the local Ray runtime it started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::IDLE"):
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_launcher_whose_watchers_hold_no_real_cpus_declares_only_their_share() -> None:
    slurm = get_launcher("slurm")
    assert slurm.watcher_cpus == 0.01
    assert [slurm.ray_cpus(n) for n in (1, 32, 100, 101)] == [1, 1, 1, 2]
    assert get_launcher("local").ray_cpus(32) is None  # local ranks run on this machine's CPUs


@pytest.mark.ray
@pytest.mark.slow
def test_the_drivers_ray_holds_32_slurm_watchers_and_keeps_no_idle_worker() -> None:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from gan_hpc.sweep.tune import start_ray

    slurm = get_launcher("slurm")
    start_ray(slurm.ray_cpus(32))
    try:
        assert ray.cluster_resources()["CPU"] == 1
        # Tune reserves each trial's watcher as a placement group of one bundle: all 32 fit
        groups = [placement_group([{"CPU": slurm.watcher_cpus}]) for _ in range(32)]
        ray.get([group.ready() for group in groups], timeout=60)
        for group in groups:
            remove_placement_group(group)
        # Ray would prestart an idle worker per declared CPU, which Tune's actors never use
        # (they carry a runtime env): the driver asks for none
        time.sleep(5)  # a prestarted worker would be up by now
        assert _idle_workers() == []
    finally:
        ray.shutdown()


def test_a_nan_metric_reaches_tune_as_nan_not_as_a_missing_key(tmp_path: Path) -> None:
    # metrics.jsonl writes NaN as null; Tune's strict metric check stops a sweep whose result
    # lacks the metric, so the watcher must hand the NaN back
    trial = TrialDir(tmp_path)
    metrics = {"quality/tabular_score": math.nan, "d_loss_gap": 0.25}
    trial.append_metrics(step=10, epoch=0, wall_time_s=1.0, metrics=metrics)
    (line,) = trial.metrics_path.read_text(encoding="utf-8").splitlines()
    record = parse_metrics_line(line)
    assert record is not None and record["quality/tabular_score"] is None
    result = tune_result({**record, "note": "text is left out"})
    assert math.isnan(result["quality/tabular_score"]) and result["d_loss_gap"] == 0.25
    assert result["step"] == 10 and "note" not in result


def test_a_watcher_whose_driver_died_is_no_longer_current(tmp_path: Path) -> None:
    # a killed driver's watchers outlive it by a moment: they must start and judge nothing
    (tmp_path / "driver_epoch.json").write_text('{"token": "t"}')
    driver = subprocess.Popen(["sleep", "300"])
    context = SweepContext(sweep_dir=str(tmp_path), driver_token="t", driver_pid=driver.pid)
    assert context.is_current() and not context.driver_has_exited()
    driver.kill()
    driver.wait()
    assert context.driver_has_exited() and not context.is_current()
    assert SweepContext(sweep_dir=str(tmp_path), driver_token="t").is_current()  # pid not known
