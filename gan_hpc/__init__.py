"""gan-hpc: hyperparameter sweeps of GAN training on SLURM clusters."""

from __future__ import annotations

from gan_hpc.errors import (
    CheckpointError,
    DataError,
    DivergedError,
    GanHpcError,
    LaunchError,
    SpecError,
    SweepError,
)

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "DivergedError",
    "GanHpcError",
    "LaunchError",
    "SpecError",
    "SweepError",
    "__version__",
]
