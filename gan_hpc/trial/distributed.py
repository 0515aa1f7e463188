"""torch.distributed for the ranks a launcher started: device, process group, reductions.

Where a process sits in the job (rank, world size, master address) is read from the environment
by :mod:`gan_hpc.dist_env`, which imports no torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan_hpc.dist_env import DistEnv
from gan_hpc.errors import LaunchError


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
