"""Where a rank sits in its job, from the environment: torchrun's variables, else SLURM's.

The launchers (local subprocesses, SLURM tasks, torchrun) all hand a rank the same contract:
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Inside an ``srun``/sbatch step with
several tasks, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID stand in for the first three.
No torch here: the launchers and watchers read this too
(:mod:`gan_hpc.trial.distributed` has the rest).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MASTER_PORT = 29500


@dataclass(frozen=True, slots=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def is_distributed(self) -> bool:
        """True when there is more than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0: the only rank with side effects (files, TensorBoard, reports)."""
        return self.rank == 0


def dist_env_from_environ(environ: Mapping[str, str] | None = None) -> DistEnv:
    """Read the rank layout from torchrun's variables, else SLURM's, else a single process."""
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistEnv(
            rank=int(env["RANK"]),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world_size=int(env["WORLD_SIZE"]),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", DEFAULT_MASTER_PORT)),
        )
    num_tasks = int(env.get("SLURM_NTASKS", "1"))
    if "SLURM_PROCID" in env and num_tasks > 1:
        job_id = int(env.get("SLURM_JOB_ID", "0"))
        return DistEnv(
            rank=int(env["SLURM_PROCID"]),
            local_rank=int(env.get("SLURM_LOCALID", "0")),
            world_size=num_tasks,
            master_addr=env.get("MASTER_ADDR")
            or first_slurm_host(env.get("SLURM_JOB_NODELIST", "")),
            # every task derives the same port from the job id, so no task has to tell the others
            master_port=int(env.get("MASTER_PORT", 20000 + job_id % 20000)),
        )
    return DistEnv()


def rank_threads(configured: int | None, environ: Mapping[str, str] | None = None) -> int:
    """Torch threads for this rank: ``configured`` (``train.num_threads``) when set.

    Else OMP_NUM_THREADS, which every launcher sets to the CPUs it gave the rank; else (a lone
    ``gan-hpc train``) the CPUs this process may run on, shared among the node's ranks
    (LOCAL_WORLD_SIZE, else SLURM_NTASKS_PER_NODE). Never below 1.
    """
    if configured is not None:
        return configured
    env = os.environ if environ is None else environ
    allotted = env.get("OMP_NUM_THREADS", "")
    if allotted.isdigit() and int(allotted) >= 1:
        return int(allotted)
    ranks_here = env.get("LOCAL_WORLD_SIZE") or env.get("SLURM_NTASKS_PER_NODE") or "1"
    ranks = int(ranks_here) if ranks_here.isdigit() and int(ranks_here) >= 1 else 1
    return max(1, len(os.sched_getaffinity(0)) // ranks)


def first_slurm_host(nodelist: str) -> str:
    """First host of a SLURM node list such as ``node[03-05,9],gpu1`` (``scontrol`` if present)."""
    if not nodelist:
        return "127.0.0.1"
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if match is None:
        return nodelist
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return f"{prefix}{first}"


def free_port() -> int:
    """A TCP port that was free a moment ago on this host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
