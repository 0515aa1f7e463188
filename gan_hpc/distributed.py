"""torch.distributed from the environment: torchrun variables, else SLURM's, else one process.

The launchers (local subprocesses, SLURM tasks, torchrun) all hand a rank the same contract:
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT. Inside an ``srun``/sbatch step with
several tasks, SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID stand in for the first three.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan_hpc.errors import LaunchError

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


def select_device(requested: str, env: DistEnv) -> torch.device:
    """The device of this rank: its own GPU by local rank, or the CPU.

    Mapping the local rank to the device here matters on SLURM: without it every task of a
    node lands on GPU 0 (submitit issue #1704).
    """
    use_cuda = requested == "cuda" or (requested == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LaunchError("train.device is 'cuda' but no GPU is visible; set train.device=cpu")
    index = env.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


@contextmanager
def process_group(env: DistEnv, device: torch.device, timeout_s: float = 600.0) -> Iterator[None]:
    """Initialise the default process group (gloo on CPU, nccl on GPU) for the block's duration."""
    if not env.is_distributed or dist.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{env.master_addr}:{env.master_port}",
        rank=env.rank,
        world_size=env.world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def all_reduce_mean(
    values: Mapping[str, float], env: DistEnv, device: torch.device
) -> dict[str, float]:
    """Average scalar metrics over ranks (identity on one rank)."""
    if not env.is_distributed or not values:
        return {k: float(v) for k, v in values.items()}
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= env.world_size
    return {k: float(v) for k, v in zip(keys, tensor.tolist(), strict=False)}


def wait_for_all(env: DistEnv) -> None:
    """Barrier: no rank leaves the process group while another is still working in it."""
    if env.is_distributed:
        dist.barrier()


def broadcast_from_main(value: Any, env: DistEnv) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object; identity on one rank)."""
    if not env.is_distributed:
        return value
    holder = [value if env.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def any_rank(flags: tuple[bool, ...], env: DistEnv, device: torch.device) -> tuple[bool, ...]:
    """Element-wise OR of boolean flags over ranks, so every rank takes the same branch."""
    if not env.is_distributed:
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in tensor.tolist())


def weights_fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A hash of tensors' exact bytes: equal only for bit-identical weights."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(
            state_dict[key]
            .detach()
            .cpu()
            .contiguous()
            .reshape(-1)
            .view(torch.uint8)
            .numpy()
            .tobytes()
        )
    return digest.hexdigest()[:16]


def replica_fingerprints(module: nn.Module, env: DistEnv) -> list[str]:
    """Each rank's generator-parameter fingerprint, gathered on every rank (a DDP sanity check).

    Buffers are left out: without SyncBatchNorm (GPU only) each rank's running statistics
    follow its own batches, and DDP re-broadcasts rank 0's at every forward.
    """
    own = weights_fingerprint(dict(module.named_parameters()))
    if not env.is_distributed:
        return [own]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, own)
    return [str(g) for g in gathered]
