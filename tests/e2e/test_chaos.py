"""Chaos: SIGKILL the driver's whole process group at random moments, resume, check exactly once.

The moments come from a seeded generator whose seed is printed (shown when a test fails);
replay one with ``GAN_HPC_CHAOS_SEED=<seed> pytest tests/e2e/test_chaos.py``. The harness is
``bench/chaos.py`` (which runs 20 kills and prints a table); these are its CI-sized runs.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

from tests.e2e.test_slurm import needs_slurm, slurm_conf  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("GAN_HPC_CHAOS_SEED", "20261202"))


def _harness():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "gan_hpc_bench_chaos", REPO / "bench" / "chaos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _run(tmp_path: Path, launcher: str, kills: int, horizon_s: float, seed: int) -> None:
    chaos = _harness()
    print(f"chaos seed {seed} (replay: GAN_HPC_CHAOS_SEED={seed}), launcher {launcher}")
    outcomes = chaos.run_kills(
        tmp_path,
        launcher=launcher,
        kills=kills,
        kills_per_sweep=kills,
        rng=random.Random(seed),
        horizon_s=horizon_s,
    )
    assert sum(len(o.kills) for o in outcomes) >= kills
    problems = [f"{o.sweep_dir.name}: {p}" for o in outcomes for p in o.problems]
    assert not problems, f"seed {seed}: " + "; ".join(problems)


@pytest.mark.ray
@pytest.mark.slow
def test_local_driver_killed_at_random_moments_runs_each_trial_once(tmp_path: Path) -> None:
    _run(tmp_path, "local", kills=5, horizon_s=15.0, seed=SEED)


@needs_slurm
@pytest.mark.ray
def test_slurm_driver_killed_at_random_moments_runs_each_job_once(
    tmp_path: Path,
    slurm_conf: str,  # noqa: F811
) -> None:
    _run(tmp_path, "slurm", kills=2, horizon_s=30.0, seed=SEED + 1)
