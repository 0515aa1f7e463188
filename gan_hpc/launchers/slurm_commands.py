"""Thin wrappers around SLURM's command-line tools: sbatch, squeue, sacct, scontrol, scancel.

Each call runs the tool as a subprocess and turns what it prints into what the launcher needs:
a job's state and exit status (:func:`slurm_outcome`, :func:`slurm_state`), a job id from
sbatch, or a refusal as one :class:`~gan_hpc.errors.LaunchError` line with the fix. sbatch
runs without the SLURM_* variables of a job this process may itself run in (a driver job), so
the trial jobs it submits get only their own. With no SLURM client reachable, errors end with
:data:`NO_SLURM_HINT`. Cheap to import: no submitit; the trial and driver jobs are
:mod:`gan_hpc.launchers.slurm` and :mod:`gan_hpc.launchers.slurm_driver`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from gan_hpc.errors import LaunchError
from gan_hpc.launchers.slurm_poll import (
    ACTIVE_STATES,
    SACCT_OUTCOMES,
    SQUEUE_STATES,
    parse_sacct,
    parse_squeue,
)

NO_SLURM_HINT = "run the sweep with --launcher local, or from a machine where SLURM works"


def slurm_outcome(job_id: str) -> tuple[str, int | None]:
    """The job's state word and exit status: the controller's view first, then accounting.

    Returns:
        (state, exit status or None); ("UNKNOWN", None) when neither knows the job.

    """
    queued = _queued_state(job_id)
    if queued in ACTIVE_STATES:
        return queued, None
    return _accounted_outcome(job_id) or (queued or "UNKNOWN", None)


def slurm_state(job_id: str) -> str:
    """The job's state word from sacct, else squeue; "UNKNOWN" when neither can tell."""
    accounted = _accounted_outcome(job_id)
    if accounted is not None and accounted[0] != "UNKNOWN":
        return accounted[0]
    # accounting may lag a new job by a few seconds; squeue asks the controller itself
    return _queued_state(job_id) or "UNKNOWN"


def _queued_state(job_id: str) -> str:
    """The job's state word in squeue, or "" when the controller does not list it."""
    out = run_slurm_command([*SQUEUE_STATES, "-j", job_id], check=False)
    return parse_squeue(out).get(job_id, "")


def _accounted_outcome(job_id: str) -> tuple[str, int | None] | None:
    """The job's (state word, exit status) in sacct, or None when accounting has no record."""
    out = run_slurm_command([*SACCT_OUTCOMES, "-j", job_id], check=False)
    return parse_sacct(out).get(job_id)


def require_sbatch() -> None:
    """Fail fast when no SLURM client can work here (sbatch would retry a missing conf 60 s)."""
    if shutil.which("sbatch") is None:
        raise LaunchError(f"slurm launcher: sbatch is not on PATH; {NO_SLURM_HINT}")
    conf = os.environ.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        raise LaunchError(f"SLURM_CONF={conf} does not exist; fix SLURM_CONF, or {NO_SLURM_HINT}")


def sbatch(args: Sequence[str], *, what: str) -> str:
    """Run sbatch; a refusal becomes one LaunchError line with sbatch's own words."""
    require_sbatch()
    result = subprocess.run(
        ["sbatch", *args], capture_output=True, text=True, env=_environment_outside_jobs()
    )
    if result.returncode != 0:
        raise LaunchError(sbatch_message(result.stderr, what))
    return result.stdout.strip()


def sbatch_message(stderr: str, what: str) -> str:
    """One line from sbatch's error output, with the fix."""
    errors = [m.strip() for m in re.findall(r"sbatch: (?:error|fatal): (.*)", stderr)]
    unreachable = ("configuration source", "configuration file", "contact slurm controller")
    for error in errors:
        if any(marker in error for marker in unreachable):
            return f"SLURM is not reachable ({error}); set SLURM_CONF, or {NO_SLURM_HINT}"
    reasons = [e for e in errors if not e.startswith("Batch job submission failed")] or errors
    text = "; ".join(dict.fromkeys(reasons)) or " ".join(stderr.split())[-300:]
    return f"sbatch refused {what}: {text} (check the slurm: block of the sweep spec)"


def _environment_outside_jobs() -> dict[str, str]:
    """Return the environment without the SLURM_* variables of a job this process may run in.

    A driver that runs as a job passes its own SLURM_* variables to sbatch, and srun in the
    trial job then mixes them with the trial's (e.g. SLURM_MEM_PER_NODE and
    SLURM_MEM_PER_CPU, which srun refuses together).
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k == "SLURM_CONF"}


@contextlib.contextmanager
def outside_any_job() -> Iterator[None]:
    """Hide the job's SLURM_* variables while submitit runs sbatch (it takes os.environ)."""
    saved, outside = dict(os.environ), _environment_outside_jobs()
    os.environ.clear()
    os.environ.update(outside)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_slurm_command(command: Sequence[str], *, check: bool = True) -> str:
    """Run a SLURM client command; stdout, or "" when it fails and ``check`` is False."""
    try:
        result = subprocess.run(list(command), capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise LaunchError(f"{command[0]} failed: {exc}; {NO_SLURM_HINT}") from None
        return ""
    if result.returncode != 0:
        if check:
            raise LaunchError(f"{' '.join(command)}: {' '.join(result.stderr.split())}")
        return ""
    return result.stdout
