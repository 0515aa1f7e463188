"""The driver job: a sweep's Ray Tune driver submitted to SLURM as a small CPU job of its own.

``gan-hpc sweep submit`` renders the job's sbatch script from the spec's ``slurm:`` block
(:func:`render_driver_script`; ``slurm/driver.sbatch`` is the rendering for the defaults),
keeps it as ``<sweep_dir>/driver/driver.sbatch`` and submits it (:func:`submit_driver`). The
script runs ``gan-hpc sweep run SPEC --resume``, so a requeued driver restores its sweep and
re-attaches to the trial jobs it had submitted; on preemption or at the time limit its trap
asks SLURM to requeue it. Its memory grows with the trials it watches at once. Cheap to import:
no submitit; the trial jobs are :mod:`gan_hpc.launchers.slurm`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from gan_hpc.launchers.base import LaunchSpec
from gan_hpc.launchers.slurm_commands import sbatch
from gan_hpc.launchers.slurm_config import SlurmConfig, slurm_settings

DRIVER_DIR = "driver"  # <sweep_dir>/driver/: the driver job's script and logs
DRIVER_HEADER = """
# gan-hpc sweep driver: the Ray Tune driver of one sweep as a small CPU job; every trial is a
# SLURM job of its own that this driver submits and watches (launcher: slurm).
#
#   sbatch [OPTIONS] driver.sbatch SPEC [--out DIR] [--set KEY=VALUE ...]
#
# `gan-hpc sweep submit SPEC` writes a copy with these options taken from the spec's slurm:
# block to <sweep_dir>/driver/driver.sbatch and submits it.
#
# Restore-or-start: it runs `gan-hpc sweep run SPEC --resume`, which starts the sweep or, when
# the sweep directory already holds one, restores it; trial jobs still queued or running are
# re-attached through the job ids in their trial directories, never submitted twice.
#
# Preemption and the time limit: SLURM sends USR2 to this script (--signal=B:USR2@SECONDS); the
# trap asks SLURM to requeue the job, and SLURM then stops the driver (the trial jobs keep
# running). The requeued job starts this script again, which restores the sweep.
#
# Memory: 1 GB plus 0.05 GB per trial watched at once (tune.max_concurrent_trials; each is a
# Ray worker forked by the sweep's fork server); slurm.driver_mem_gb sets it outright.
"""
DRIVER_BODY = """
job=${SLURM_JOB_ID:?run this script with sbatch}
requeue() {
  echo "gan-hpc driver: preemption or time-limit signal; requeueing job $job" >&2
  scontrol requeue "$job"
}
trap requeue USR2
echo "gan-hpc driver: job $job (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname)" >&2
"$PYTHON" -m gan_hpc sweep run "$@" --resume &
driver=$!
# a trapped signal interrupts `wait`: wait again until the driver itself has exited
while wait "$driver"; status=$?; kill -0 "$driver" 2>/dev/null; do :; done
exit "$status"
"""


def render_driver_script(
    slurm: SlurmConfig,
    *,
    watched_trials: int,
    job_name: str,
    log_path: str,
    python: str = "python3",
) -> str:
    """The sbatch script of a sweep driver job (``slurm/driver.sbatch`` is one rendering).

    Args:
        slurm: the sweep's ``slurm:`` block (driver_* resources, partition, account, qos).
        watched_trials: the most trials the driver watches at once (sizes its memory).
        job_name: the job's name.
        log_path: the job's output file (``%j`` is the job id).
        python: the interpreter with gan-hpc installed (``$GAN_HPC_PYTHON`` overrides it).

    """
    options: dict[str, Any] = {
        "job-name": job_name,
        "comment": "driver",  # trial jobs carry their trial id here
        "ntasks": 1,
        "cpus-per-task": slurm.driver_cpus,
        "mem": _sbatch_memory(slurm.driver_memory_gb(watched_trials)),
        "time": slurm.driver_timeout_min,
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
        "requeue": True,
        # B: signals the batch shell only; its trap requeues the job
        "signal": f"B:USR2@{slurm.signal_delay_s}",
        "open-mode": "append",
        "output": log_path,
    }
    lines = ["#!/bin/bash", DRIVER_HEADER.rstrip("\n")]
    if slurm.driver_mem_gb is None:
        lines.append(f"# This script's --mem is sized for {watched_trials} concurrent trials.")
    for key, value in options.items():
        if value is True:
            lines.append(f"#SBATCH --{key}")
        elif value is not None:
            lines.append(f"#SBATCH --{key}={shlex.quote(str(value))}")
    lines += ["", "set -uo pipefail", f"PYTHON=${{GAN_HPC_PYTHON:-{shlex.quote(python)}}}"]
    if slurm.setup:
        lines += ["", "# slurm.setup", *slurm.setup]
    return "\n".join(lines) + "\n" + DRIVER_BODY


def submit_driver(
    spec_path: Path, sweep_dir: Path, spec: LaunchSpec, *, watched_trials: int
) -> str:
    """Submit the driver of the sweep in ``sweep_dir`` as a SLURM job; returns its job id.

    The script is kept as ``<sweep_dir>/driver/driver.sbatch`` and logs to
    ``<sweep_dir>/driver/<job_id>.log``; it runs ``gan-hpc sweep run SPEC --resume``.
    """
    driver_dir = sweep_dir / DRIVER_DIR
    driver_dir.mkdir(parents=True, exist_ok=True)
    script = driver_dir / "driver.sbatch"
    script.write_text(
        render_driver_script(
            slurm_settings(spec),
            watched_trials=watched_trials,
            job_name=spec.job_name,
            log_path=str(driver_dir / "%j.log"),
            python=sys.executable,
        )
    )
    output = sbatch(
        ["--parsable", str(script), str(spec_path), "--out", str(sweep_dir)],
        what="the driver job",
    )
    return output.split(";")[0].strip()


def _sbatch_memory(mem_gb: float) -> str:
    """Return sbatch's --mem value, as submitit writes it."""
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"
