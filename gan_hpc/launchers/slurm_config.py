"""The SLURM backend's ``slurm:`` block: sbatch settings for trial jobs and the driver job.

Cheap to import (no submitit): the sweep spec validates this block through the launcher
registry (:mod:`gan_hpc.launchers.registry`) at load time, whatever the sweep's launcher. The
launcher itself is :mod:`gan_hpc.launchers.slurm`; it and the driver job
(:mod:`gan_hpc.launchers.slurm_driver`) read the block from a launch spec with
:func:`slurm_settings`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gan_hpc.config_validation import config_from_dict, require
from gan_hpc.errors import LaunchError, SpecError
from gan_hpc.launchers.base import LaunchSpec

logger = logging.getLogger(__name__)

_SBATCH_OPTION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
# sbatch options that SlurmConfig already types; additional_parameters must not shadow them.
_TYPED_SBATCH_OPTIONS = {
    "partition": "slurm.partition",
    "account": "slurm.account",
    "qos": "slurm.qos",
    "constraint": "slurm.constraint",
    "time": "slurm.timeout_min",
    "mem": "slurm.mem_gb",
    "cpus-per-task": "slurm.cpus_per_task",
    "gpus-per-node": "slurm.gpus_per_node",
    "signal": "slurm.signal_delay_s",
    # each trial is one job; Tune decides how many run at once
    "array": "tune.max_concurrent_trials (each trial is one job, not an array task)",
}
# Keys older specs may hold that no longer mean anything: dropped with a notice on load, so a
# sweep's stored spec.yaml still loads and resumes. key -> why it is ignored
RETIRED_KEYS = {
    "array_parallelism": "each trial is one job; tune.max_concurrent_trials bounds how many run",
}

# Measured by bench/driver_scale.py as PSS (what the job's cgroup is charged), plus margin:
DRIVER_BASE_GB = 1.0  # the driver, the watchers' fork server and Ray's own: 0.6 GiB (0.62 GB)
DRIVER_GB_PER_TRIAL = 0.05  # one forked watcher per running trial: 32 MiB (0.034 GB)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmConfig:
    """sbatch settings for the SLURM launcher (trial jobs) and the sweep driver job.

    ``cpus_per_task`` reserves CPUs for each rank; how many threads a rank runs is the trial's
    ``train.num_threads`` (the one thread count, whatever the launcher).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    timeout_min: int = 60
    mem_gb: float | None = None
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    signal_delay_s: int = 120  # SIGUSR1 this long before the time limit: checkpoint + requeue
    max_requeues: int = 3
    additional_parameters: dict[str, str] = field(default_factory=dict)  # any other sbatch option
    driver_timeout_min: int = 1440
    driver_cpus: int = 2
    driver_mem_gb: float | None = None  # None: sized by the trials the driver watches
    setup: tuple[str, ...] = ()  # shell lines run before each job, e.g. "module load cuda"

    def driver_memory_gb(self, watched_trials: int) -> float:
        """The driver job's memory: ``driver_mem_gb``, or sized by its concurrent trials.

        Each watched trial is one Ray actor process, forked from the sweep's fork server (about
        32 MiB PSS each, measured by ``bench/driver_scale.py``), on top of the driver, the fork
        server and Ray's own processes (about 0.6 GiB); the size is rounded up to half a GB.
        """
        if self.driver_mem_gb is not None:
            return self.driver_mem_gb
        needed = DRIVER_BASE_GB + DRIVER_GB_PER_TRIAL * watched_trials
        return math.ceil(needed * 2) / 2

    def __post_init__(self) -> None:
        require(self.timeout_min >= 1, "timeout_min", "must be >= 1")
        require(self.mem_gb is None or self.mem_gb > 0, "mem_gb", "must be > 0 or null")
        require(self.cpus_per_task >= 1, "cpus_per_task", "must be >= 1")
        require(self.gpus_per_node >= 0, "gpus_per_node", "must be >= 0")
        require(
            0 <= self.signal_delay_s < self.timeout_min * 60,
            "signal_delay_s",
            f"must be >= 0 and below timeout_min * 60 = {self.timeout_min * 60}, "
            f"got {self.signal_delay_s}",
        )
        require(self.max_requeues >= 0, "max_requeues", "must be >= 0")
        require(self.driver_timeout_min >= 1, "driver_timeout_min", "must be >= 1")
        require(self.driver_cpus >= 1, "driver_cpus", "must be >= 1")
        require(
            self.driver_mem_gb is None or self.driver_mem_gb > 0,
            "driver_mem_gb",
            "must be > 0 or null",
        )
        for option in self.additional_parameters:
            key = f"additional_parameters.{option}"
            require(
                bool(_SBATCH_OPTION_PATTERN.match(option)),
                key,
                "not an sbatch option name; write the long option without dashes, "
                "e.g. mail-user or mail_user",
            )
            typed = _TYPED_SBATCH_OPTIONS.get(option.replace("_", "-"))
            require(typed is None, key, f"use {typed} instead")


def load_slurm_config(raw: Any, *, source: str, key: str = "slurm") -> SlurmConfig:
    """Validate the spec's ``slurm:`` block; retired keys are dropped with a one-line notice.

    Raises:
        SpecError: one line naming ``source``, the key and the fix.

    """
    if isinstance(raw, Mapping):
        for retired, why in RETIRED_KEYS.items():
            if retired in raw:
                logger.warning("%s: %s.%s is ignored: %s", source, key, retired, why)
        raw = {k: v for k, v in raw.items() if k not in RETIRED_KEYS}
    elif raw is not None:
        raise SpecError(f"{source}: {key}: expected a mapping, got {type(raw).__name__}")
    return config_from_dict(SlurmConfig, raw, source=source, prefix=key)


def slurm_settings(spec: LaunchSpec) -> SlurmConfig:
    """The ``slurm:`` block a launch spec carries (the defaults when it carries none)."""
    if spec.settings is None:
        return SlurmConfig()
    if not isinstance(spec.settings, SlurmConfig):
        raise LaunchError(
            f"the slurm launcher needs a slurm: block, got {type(spec.settings).__name__}"
        )
    return spec.settings
