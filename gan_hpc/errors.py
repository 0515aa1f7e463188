"""Typed errors; the CLI turns a :class:`GanHpcError` into one line on stderr and exit 2."""

from __future__ import annotations


class GanHpcError(Exception):
    """Base of every error gan-hpc raises on purpose: one line saying what is wrong and the fix."""


class SpecError(GanHpcError):
    """A trial config or sweep spec is invalid (unknown key, wrong type, impossible range)."""


class DataError(GanHpcError):
    """A data file cannot be read or does not match what the config expects."""


class CheckpointError(GanHpcError):
    """A checkpoint or export bundle is missing, truncated, tampered with or incompatible."""


class DivergedError(GanHpcError):
    """Training produced a non-finite loss."""


class LaunchError(GanHpcError):
    """A trial could not be started, or its job failed (local process or SLURM job)."""


class SweepError(GanHpcError):
    """A sweep directory cannot be run, resumed or read."""
