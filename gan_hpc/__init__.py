"""gan-hpc: hyperparameter sweeps of GAN training on SLURM clusters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gan_hpc.errors import (
    CheckpointError,
    DataError,
    DivergedError,
    GanHpcError,
    LaunchError,
    SpecError,
    SweepError,
)

if TYPE_CHECKING:
    from gan_hpc.bundle.load import SampleGenerator, load_generator

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "DivergedError",
    "GanHpcError",
    "LaunchError",
    "SampleGenerator",
    "SpecError",
    "SweepError",
    "__version__",
    "load_generator",
]


def __getattr__(name: str) -> Any:
    """Load the bundle API on first use: it imports torch, which ``import gan_hpc`` avoids."""
    if name in ("SampleGenerator", "load_generator"):
        from gan_hpc.bundle import load as bundle

        return getattr(bundle, name)
    raise AttributeError(f"module 'gan_hpc' has no attribute {name!r}")
