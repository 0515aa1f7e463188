"""Checkpoints: state dicts plus the config that rebuilds them, written atomically.

A checkpoint is a ``torch.save`` of plain containers of tensors and numbers, read back with
``torch.load(weights_only=True)``, so loading never unpickles code. Files are
``checkpoints/step-<N>.pt`` (the newest K kept) and ``checkpoints/best.pt``. What a trainer
saves and resumes from is a :class:`TrainState`; :func:`save_checkpoint` writes one and
:func:`load_checkpoint` reads any checkpoint (exports read the generator's weights from it).
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from gan_hpc._logging import get_logger
from gan_hpc.dist_env import DistEnv
from gan_hpc.errors import CheckpointError
from gan_hpc.files import atomic_write_bytes
from gan_hpc.trial.distributed import any_rank, broadcast_from_main

logger = get_logger(__name__)

CHECKPOINT_FORMAT_VERSION = 1
BEST_NAME = "best.pt"
_STEP_PATTERN = re.compile(r"^step-(\d+)\.pt$")


def step_checkpoint_name(step: int) -> str:
    """File name of the checkpoint taken after ``step`` generator updates."""
    return f"step-{step:08d}.pt"


def capture_rng_state() -> dict[str, Any]:
    """torch, numpy and python RNG states as weights-only-loadable data."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class TrainState:
    """Everything a trainer needs to continue exactly where it stopped, as a checkpoint holds it.

    Tensors sit in plain state dicts (weights-only loadable). ``best`` and ``last`` are the
    ``{"step", "metrics", "checkpoint"}`` records of ``result.json``; ``guards`` is
    :meth:`gan_hpc.trial.guards.GuardState.to_dict`; ``rng`` holds every rank's RNG state.
    """

    step: int
    epoch: int
    batch_in_epoch: int
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    optimizer_generator: dict[str, Any]
    optimizer_discriminator: dict[str, Any]
    rng: list[dict[str, Any]]
    config: dict[str, Any]  # TrialConfig.to_dict(): rebuilds the models
    schema: dict[str, Any]  # DataSchema.to_dict()
    ema: dict[str, Any] | None = None
    best: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    guards: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's plain containers (the keys every reader of a checkpoint knows)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "generator": self.generator,
            "discriminator": self.discriminator,
            "ema": self.ema,
            "optimizer_generator": self.optimizer_generator,
            "optimizer_discriminator": self.optimizer_discriminator,
            "rng": self.rng,
            "config": self.config,
            "schema": self.schema,
            "best": self.best,
            "last": self.last,
            "guards": self.guards,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], path: Path) -> TrainState:
        """Inverse of :meth:`to_dict`; keys that older checkpoints lack get their defaults.

        Raises:
            CheckpointError: a key every trainer checkpoint holds is missing.

        """
        try:
            return cls(
                step=int(state["step"]),
                epoch=int(state["epoch"]),
                batch_in_epoch=int(state["batch_in_epoch"]),
                generator=dict(state["generator"]),
                discriminator=dict(state["discriminator"]),
                optimizer_generator=dict(state["optimizer_generator"]),
                optimizer_discriminator=dict(state["optimizer_discriminator"]),
                rng=list(state["rng"]),
                config=dict(state.get("config") or {}),
                schema=dict(state.get("schema") or {}),
                ema=state.get("ema"),
                best=state.get("best"),
                last=state.get("last"),
                guards=dict(state.get("guards") or {}),
            )
        except KeyError as exc:
            raise CheckpointError(
                f"{path}: not a trainer checkpoint (no {exc.args[0]!r}); delete it to fall back "
                "to an older one"
            ) from None


def save_checkpoint(path: Path, state: TrainState) -> None:
    """Serialise ``state`` and write it atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    torch.save({"format_version": CHECKPOINT_FORMAT_VERSION, **state.to_dict()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without unpickling code.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or from a newer format.

    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({reason[:120]}); it is truncated or corrupt, "
            "delete it to fall back to an older one"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state:
        raise CheckpointError(f"{path}: not a gan-hpc checkpoint (no format_version)")
    if int(state["format_version"]) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format_version']} is newer than this gan-hpc "
            f"reads ({CHECKPOINT_FORMAT_VERSION}); upgrade gan-hpc"
        )
    return state


def list_step_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step-<N>.pt`` in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STEP_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint found on disk and the state read from it."""

    path: Path
    step: int
    state: dict[str, Any]


def load_latest_valid(
    directory: Path, map_location: str | torch.device = "cpu"
) -> LoadedCheckpoint | None:
    """The newest checkpoint that loads; truncated or corrupt ones are skipped with a warning."""
    for step, path in reversed(list_step_checkpoints(directory)):
        try:
            state = load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            logger.warning("skipping %s", exc)
            continue
        return LoadedCheckpoint(path=path, step=step, state=state)
    return None


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a trainer resumes from and its state."""

    path: Path
    state: TrainState


def load_resume_checkpoint(
    directory: Path, env: DistEnv, device: torch.device
) -> ResumePoint | None:
    """Rank 0 chooses the newest valid checkpoint and every rank loads that same one.

    Ranks that each picked their own could differ (a network filesystem showing a new file to
    one node first, a checkpoint written while they looked) and then train from different
    steps, RNG and optimizer states until a collective hangs. Rank 0 decides alone; if any
    rank cannot read its choice, every rank raises.

    Args:
        directory: the trial's ``checkpoints/`` as this rank sees it.
        env: this rank's distributed environment (collective on every rank when distributed).
        device: where the tensors go (also the device of the agreement all-reduce).

    Returns:
        The chosen checkpoint's path and :class:`TrainState`, or None when there is none.

    Raises:
        CheckpointError: some rank could not read the checkpoint rank 0 chose.

    """
    path: Path | None = None
    raw: Mapping[str, Any] | None = None
    if env.is_main and (newest := load_latest_valid(directory, map_location=device)) is not None:
        path, raw = newest.path, newest.state
    name = broadcast_from_main(path.name if path is not None else None, env)
    point: ResumePoint | None = None
    error: str | None = None
    try:
        if not env.is_main and name is not None:
            path = directory / name
            raw = load_checkpoint(path, map_location=device)
        if path is not None and raw is not None:
            point = ResumePoint(path=path, state=TrainState.from_dict(raw, path))
    except CheckpointError as exc:
        error = str(exc)
    (failed,) = any_rank((error is not None,), env, device)
    if error is not None:
        raise CheckpointError(f"rank {env.rank}: {error}")
    if failed:
        raise CheckpointError(
            f"{directory / str(name)}: another rank could not read the checkpoint rank 0 chose "
            "(see that rank's log); check that every node sees the trial directory"
        )
    return point


def prune_step_checkpoints(directory: Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (``best.pt`` is separate)."""
    for _, path in list_step_checkpoints(directory)[:-keep_last]:
        path.unlink(missing_ok=True)


def generator_weights(state: Mapping[str, Any], path: Path) -> tuple[dict[str, Tensor], str]:
    """The generator's weights from a checkpoint: the EMA copy when present.

    Returns:
        Contiguous CPU tensors keyed without DDP's ``module.`` prefix, and ``"ema"`` or
        ``"generator"`` for where they came from.

    """
    ema = state.get("ema")
    if isinstance(ema, Mapping) and isinstance(ema.get("module"), Mapping):
        source, weights = "ema", ema["module"]
    elif isinstance(state.get("generator"), Mapping):
        source, weights = "generator", state["generator"]
    else:
        raise CheckpointError(f"{path}: no generator weights; it is not a trial checkpoint")
    cleaned: dict[str, Tensor] = {}
    for key, tensor in weights.items():
        name = str(key)
        while name.startswith("module."):
            name = name[len("module.") :]
        # A clone per tensor: safetensors refuses tensors that share storage.
        cleaned[name] = tensor.detach().to("cpu").contiguous().clone()
    return cleaned, source


def gather_rng_states(env: DistEnv) -> list[dict[str, Any]]:
    """Every rank's RNG state, in rank order (collected on all ranks, saved by rank 0)."""
    own = capture_rng_state()
    if not env.is_distributed:
        return [own]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, own)
    return gathered


def restore_rank_rng(states: Sequence[dict[str, Any]], env: DistEnv, seed: int, step: int) -> None:
    """Restore this rank's RNG state; a changed world size reseeds deterministically instead."""
    if len(states) == env.world_size:
        restore_rng_state(states[env.rank])
        return
    logger.warning(
        "world size changed from %d to %d: RNG streams reseeded, the run is no longer bit-exact",
        len(states),
        env.world_size,
    )
    torch.manual_seed(seed * 1_000_003 + step * 7919 + env.rank)
