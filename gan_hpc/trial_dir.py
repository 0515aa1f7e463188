"""The trial directory: the contract between the trainer, the launchers, the sweep and export.

Everything a trial is lives here, so any process can pick it up::

    <trial_dir>/config.json        the full TrialConfig, written before launch, never changed
    <trial_dir>/metrics.jsonl      append-only, one record per evaluation, rank 0, fsynced
    <trial_dir>/status.json        state, job id, restart count, last step (atomic writes)
    <trial_dir>/result.json        how it ended: best and last records (held-out quality), flags
    <trial_dir>/data.json          the fitted data transform, schema and dataset hash (JSON)
    <trial_dir>/checkpoints/       step-<N>.pt (newest K) and best.pt, atomic writes
    <trial_dir>/tensorboard/       event files
    <trial_dir>/logs/              stdout/stderr of each rank (local launcher)
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gan_hpc.config import TrialConfig
from gan_hpc.errors import GanHpcError, SpecError
from gan_hpc.files import atomic_write_json, parse_jsonl_line, read_json, read_jsonl

# the sweep directory: <sweep>/spec.yaml and <sweep>/trials/<trial_id>/ (see gan_hpc.rank)
SPEC_FILE = "spec.yaml"
TRIALS_DIR = "trials"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
METRICS_KEY = "step"  # convergence.STEP, which every record has (not imported: no torch here)
STATUS_FILE = "status.json"
RESULT_FILE = "result.json"
DATA_FILE = "data.json"
TRAIN_LOCK_FILE = "train.lock"  # held by the running trainer's rank 0
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOGS_DIR = "logs"
# result.json: a best/last record's held-out quality entry (sample sizes, notes, seconds)
QUALITY_KEY = "quality"

# Exit statuses of `python -m gan_hpc.train`; the launcher reads status.json for the details.
EXIT_OK = 0  # finished, diverged or halted (status.json says which)
EXIT_FAILED = 1  # an unexpected exception
EXIT_BAD_INPUT = 2  # a GanHpcError (bad config, bad data)
EXIT_REQUEUE = 75  # SIGTERM/SIGUSR1: checkpoint written, run me again (EX_TEMPFAIL)
# `python -m gan_hpc.train --warm`: a spare trainer that imports torch and the rest, then runs
# the one trial a launcher sends on its stdin (see gan_hpc.train.serve_warm)
WARM_TRAINER_FLAG = "--warm"

# halted: a guard stopped the trial (see gan_hpc.guards); stopped: the scheduler did;
# cancelled: someone outside the sweep cancelled its job (scancel); never run again
TrialState = Literal[
    "pending",
    "running",
    "finished",
    "diverged",
    "halted",
    "preempted",
    "failed",
    "stopped",
    "cancelled",
]
FINAL_STATES: frozenset[str] = frozenset(
    {"finished", "diverged", "halted", "failed", "stopped", "cancelled"}
)


def parse_metrics_line(line: str) -> dict[str, Any] | None:
    """One ``metrics.jsonl`` record, or None for a torn or corrupt line.

    A good record written right after a torn line, on the same line, is recovered; see
    :func:`gan_hpc.files.parse_jsonl_line`. Used by every reader of the file, whole or tailed.
    """
    return parse_jsonl_line(line, key=METRICS_KEY)


@dataclass(frozen=True, slots=True)
class TrialStatus:
    """The content of ``status.json``."""

    state: TrialState = "pending"
    step: int = 0
    job_id: str | None = None
    restart_count: int = 0  # launcher-owned: jobs started again after a failure or requeue
    resumes: int = 0  # trainer-owned: runs that continued from a checkpoint
    resumed_from_step: int = 0  # the checkpoint step of the latest resume
    steps_repeated: int = 0  # steps trained twice because the newest work was not checkpointed
    message: str = ""
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


class TrialDir:
    """Paths and reads/writes of one trial directory."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        """``config.json``."""
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        """``metrics.jsonl``."""
        return self.path / METRICS_FILE

    @property
    def status_path(self) -> Path:
        """``status.json``."""
        return self.path / STATUS_FILE

    @property
    def result_path(self) -> Path:
        """``result.json``."""
        return self.path / RESULT_FILE

    @property
    def data_path(self) -> Path:
        """``data.json``: what export needs to turn samples back into data units."""
        return self.path / DATA_FILE

    @property
    def checkpoints(self) -> Path:
        """``checkpoints/``."""
        return self.path / CHECKPOINTS_DIR

    @property
    def tensorboard(self) -> Path:
        """``tensorboard/``."""
        return self.path / TENSORBOARD_DIR

    @property
    def logs(self) -> Path:
        """``logs/``."""
        return self.path / LOGS_DIR

    def write_config(self, config: TrialConfig) -> None:
        """Write ``config.json`` (refuses to change an existing, different one)."""
        payload = config.to_dict()
        if self.config_path.exists():
            existing = read_json(self.config_path)
            if existing != payload:
                raise SpecError(
                    f"{self.config_path}: a different config is already there; "
                    "use a new --out directory or pass --resume to continue the old run"
                )
            return
        atomic_write_json(self.config_path, payload)

    def read_config(self) -> TrialConfig:
        """Read and validate ``config.json``."""
        if not self.config_path.exists():
            raise SpecError(f"{self.config_path}: missing; is {self.path} a trial directory?")
        return TrialConfig.from_dict(read_json(self.config_path), source=str(self.config_path))

    def read_status(self) -> TrialStatus:
        """Read ``status.json`` (pending when absent; a corrupt one reads as pending too).

        Raises:
            GanHpcError: the file is valid JSON but not a status (not an object, a wrong type).

        """
        try:
            data = read_json(self.status_path)
        except GanHpcError:
            return TrialStatus()
        if not isinstance(data, dict):
            raise GanHpcError(
                f"{self.status_path}: expected a JSON object, got {type(data).__name__}; "
                "delete the file (the trial then reads as pending) or restore it"
            )
        defaults = TrialStatus()
        values: dict[str, Any] = {}
        for field in dataclasses.fields(TrialStatus):
            if field.name not in data:
                continue
            value, default = data[field.name], getattr(defaults, field.name)
            expected: tuple[type, ...] = (type(default),)
            if isinstance(default, float):
                expected = (int, float)
            elif field.name == "job_id":
                expected = (str, type(None))
            if not isinstance(value, expected) or isinstance(value, bool):
                raise GanHpcError(
                    f"{self.status_path}: {field.name} is {value!r}, not a "
                    f"{expected[0].__name__}; delete the file (the trial then reads as pending) "
                    "or fix that entry"
                )
            values[field.name] = value
        return TrialStatus(**values)

    def write_status(self, status: TrialStatus) -> None:
        """Write ``status.json`` atomically, stamping the time."""
        atomic_write_json(
            self.status_path, dataclasses.replace(status, updated_at=time.time()).to_dict()
        )

    def update_status(self, **changes: Any) -> TrialStatus:
        """Read, change some fields, write back; returns the new status."""
        status = dataclasses.replace(self.read_status(), **changes)
        self.write_status(status)
        return status

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metric records (a torn line is skipped, never the good record after it)."""
        return read_jsonl(self.metrics_path, key=METRICS_KEY)

    def read_result(self) -> dict[str, Any] | None:
        """``result.json`` when the trial has ended, else None."""
        if not self.result_path.exists():
            return None
        try:
            data = read_json(self.result_path)
        except GanHpcError:
            return None
        return data if isinstance(data, dict) else None
