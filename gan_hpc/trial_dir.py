"""The trial directory: the contract between the trainer, the launchers, the sweep and export.

Everything a trial is lives here, so any process can pick it up::

    <trial_dir>/config.json        the full TrialConfig, written before launch, never changed
    <trial_dir>/metrics.jsonl      append-only, one record per evaluation, rank 0, fsynced
    <trial_dir>/status.json        state, job id, restart count, last step (atomic writes,
                                   each change made under an flock on status.lock)
    <trial_dir>/result.json        how it ended: best and last records (held-out quality), flags
    <trial_dir>/data.json          the fitted data transform, schema and dataset hash (JSON)
    <trial_dir>/checkpoints/       step-<N>.pt (newest K) and best.pt, atomic writes
    <trial_dir>/tensorboard/       event files
    <trial_dir>/logs/              stdout/stderr of each rank (local launcher)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

from gan_hpc.config import ConvergenceConfig, TrialConfig, is_quality_metric
from gan_hpc.convergence import EPOCH, STEP, WALL_TIME_S, selection_key
from gan_hpc.errors import GanHpcError, SpecError
from gan_hpc.files import (
    append_jsonl,
    atomic_write_json,
    parse_jsonl_line,
    read_json,
    read_jsonl,
)
from gan_hpc.locks import update_lock

logger = logging.getLogger(__name__)

# Where a trial directory sits: <sweep>/trials/<trial_id>/, beside <sweep>/spec.yaml. Defined
# here so the trainer (hparams reads its sweep's search keys) needs no sweep-level module;
# gan_hpc.sweep.directory owns the rest of the sweep's layout.
SPEC_FILE = "spec.yaml"
TRIALS_DIR = "trials"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
METRICS_KEY = STEP  # every metrics.jsonl record has its step, epoch and wall time
EPOCH_KEY = EPOCH
WALL_TIME_KEY = WALL_TIME_S
STATUS_FILE = "status.json"
STATUS_LOCK_FILE = "status.lock"  # held while one process reads, changes and writes status.json
RESULT_FILE = "result.json"
DATA_FILE = "data.json"
TRAIN_LOCK_FILE = "train.lock"  # held by the running trainer's rank 0
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOGS_DIR = "logs"
# result.json: a best/last record's held-out quality entry (sample sizes, notes, seconds)
QUALITY_KEY = "quality"
VALIDATION_KEY = "validation"  # a record's quality figures on the validation split

# Exit statuses of `python -m gan_hpc.trial.train`; the launcher reads status.json for the details.
EXIT_OK = 0  # finished, diverged or halted (status.json says which)
EXIT_FAILED = 1  # an unexpected exception
EXIT_BAD_INPUT = 2  # a GanHpcError (bad config, bad data)
EXIT_REQUEUE = 75  # SIGTERM/SIGUSR1: checkpoint written, run me again (EX_TEMPFAIL)
# `python -m gan_hpc.trial.train --warm DIR`: the warm trainer, which imports torch and the rest,
# then forks each trial the watchers give it through DIR (gan_hpc.warm_handover, trial.cli)
WARM_TRAINER_FLAG = "--warm"

# Which of a trial's checkpoints: its best by the ranking rule (best.pt) or its newest.
CheckpointKind = Literal["best", "last"]
CHECKPOINT_KINDS: tuple[CheckpointKind, ...] = ("best", "last")

# halted: a guard stopped the trial (see gan_hpc.trial.guards); stopped: the scheduler did;
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


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRecord:
    """One evaluation of a trial: its step, its metrics and the checkpoint holding that state.

    ``result.json``'s ``best`` and ``last`` are these. ``checkpoint`` is relative to the trial
    directory, and None for a record read from ``metrics.jsonl`` (no ``result.json`` yet);
    ``quality`` is the held-out scoring's sample sizes, notes and seconds, when it ran.
    ``validation`` holds the quality figures scored on the validation split at this
    evaluation (``convergence.use_quality_at_evaluations``); once a trial ends, ``metrics``
    holds the test split's instead.
    """

    step: int
    metrics: dict[str, float]
    checkpoint: str | None = None
    quality: dict[str, Any] | None = None
    validation: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CheckpointRecord:
        """Read a ``best``/``last`` entry (non-numeric metrics, nulls included, are dropped).

        Raises:
            KeyError, TypeError, ValueError: not a record (no step, metrics not a mapping).

        """
        quality, validation = raw.get(QUALITY_KEY), raw.get(VALIDATION_KEY)
        return cls(
            step=int(raw["step"]),
            metrics=numeric_metrics(raw["metrics"]),
            checkpoint=str(raw["checkpoint"]) if raw.get("checkpoint") else None,
            quality=dict(quality) if isinstance(quality, Mapping) else None,
            validation=numeric_metrics(validation) if isinstance(validation, Mapping) else None,
        )

    @classmethod
    def from_metrics_line(cls, record: Mapping[str, Any]) -> CheckpointRecord:
        """A ``metrics.jsonl`` record as an evaluation (its numeric values, step included)."""
        return cls(step=int(record[METRICS_KEY]), metrics=numeric_metrics(record))

    def score(self, ranking: ConvergenceConfig) -> float:
        """The ranking score of this record (NaN when it has none).

        A quality score comes from ``ranking.score_split``: the validation figures of this
        evaluation, or the test split's that ``metrics`` holds; both exist once the trial has
        ended and been scored (``result.json``), so a trial still running has no score yet.
        """
        use_validation = ranking.score_split == "validation" and is_quality_metric(ranking.score)
        source = (self.validation or {}) if use_validation else self.metrics
        return source.get(ranking.score, math.nan)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON, as ``result.json`` holds it."""
        out: dict[str, Any] = {
            "step": self.step,
            "metrics": dict(self.metrics),
            "checkpoint": self.checkpoint,
        }
        if self.quality is not None:
            out[QUALITY_KEY] = dict(self.quality)
        if self.validation is not None:
            out[VALIDATION_KEY] = dict(self.validation)
        return out


@dataclass(frozen=True, slots=True)
class TrialResult:
    """How a trial ended: the content of ``result.json``, written once by the trainer's rank 0."""

    state: str
    step: int
    wall_time_s: float
    best: CheckpointRecord | None = None
    last: CheckpointRecord | None = None
    replica_fingerprints: tuple[str, ...] = ()  # generator parameters' hash on each rank
    flags: tuple[dict[str, Any], ...] = ()  # guards that fired: {"guard", "step", "detail"}

    @property
    def guard_names(self) -> tuple[str, ...]:
        """The names of the guards that fired, in order."""
        return tuple(str(flag["guard"]) for flag in self.flags)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "state": self.state,
            "step": self.step,
            "wall_time_s": self.wall_time_s,
            "best": None if self.best is None else self.best.to_dict(),
            "last": None if self.last is None else self.last.to_dict(),
            "replica_fingerprints": list(self.replica_fingerprints),
            "flags": [dict(flag) for flag in self.flags],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> TrialResult:
        """Read ``result.json`` tolerantly, so files of older versions still read.

        Missing keys take defaults; malformed entries are dropped with a warning naming
        ``source``.
        """
        best = _record_or_none(data.get("best"), source, "best")
        last = _record_or_none(data.get("last"), source, "last")
        raw_flags = data.get("flags")
        raw_flags = raw_flags if isinstance(raw_flags, list) else []
        flags = tuple(dict(f) for f in raw_flags if isinstance(f, Mapping) and "guard" in f)
        if len(flags) != len(raw_flags):
            logger.warning("%s: ignoring malformed 'flags' entries", source)
        step = data.get("step")
        wall_time_s = data.get("wall_time_s")
        fingerprints = data.get("replica_fingerprints")
        return cls(
            state=str(data.get("state", "finished")),
            step=step if _is_int(step) else (last.step if last else 0),
            wall_time_s=float(wall_time_s) if _is_number(wall_time_s) else 0.0,
            best=best,
            last=last,
            replica_fingerprints=tuple(map(str, fingerprints))
            if isinstance(fingerprints, list)
            else (),
            flags=flags,
        )


def numeric_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics mapping, as floats (null and text are left out)."""
    return {str(k): float(v) for k, v in dict(values).items() if _is_number(v)}


def best_record(
    records: Sequence[CheckpointRecord], ranking: ConvergenceConfig
) -> CheckpointRecord | None:
    """Pick the best evaluation as the trainer does: gate first, then the score.

    Only a strictly better record replaces the best so far, so the earliest wins a tie.
    """
    best: CheckpointRecord | None = None
    for candidate in records:
        if best is None or selection_key(candidate.metrics, ranking) > selection_key(
            best.metrics, ranking
        ):
            best = candidate
    return best


def _record_or_none(raw: Any, source: str, which: str) -> CheckpointRecord | None:
    """``result.json``'s ``best``/``last`` entry, or None when absent or malformed."""
    if raw is None:
        return None
    try:
        return CheckpointRecord.from_dict(raw)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        logger.warning("%s: '%s' entry is malformed (%s); ignoring it", source, which, exc)
        return None


def _is_int(value: Any) -> TypeGuard[int]:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    """An int or a float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

    def read_config_dict(self) -> dict[str, Any]:
        """``config.json`` as written, unvalidated (views of trials of older versions read it).

        Raises:
            GanHpcError: the file is missing, not JSON, or not a JSON object.

        """
        if not self.config_path.exists():
            raise GanHpcError(f"{self.config_path}: missing; is {self.path} a trial directory?")
        data = read_json(self.config_path)
        if not isinstance(data, dict):
            raise GanHpcError(
                f"{self.config_path}: expected a JSON object, got {type(data).__name__}; "
                "restore the file or delete the trial directory"
            )
        return data

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

    def update_status(self, *, add: Mapping[str, int] | None = None, **changes: Any) -> TrialStatus:
        """Read, set the fields ``changes`` and increase the counts ``add``, write back.

        The trainer, its launcher and its watcher all change ``status.json``, in three
        processes: under the status lock, none overwrites a change another made meanwhile.

        Returns:
            the new status.

        """
        with update_lock(self.path / STATUS_LOCK_FILE):
            status = self.read_status()
            counts = {name: getattr(status, name) + n for name, n in (add or {}).items()}
            status = dataclasses.replace(status, **changes, **counts)
            self.write_status(status)
        return status

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metric records (a torn line is skipped, never the good record after it)."""
        return read_jsonl(self.metrics_path, key=METRICS_KEY)

    def append_metrics(
        self, *, step: int, epoch: int, wall_time_s: float, metrics: Mapping[str, float]
    ) -> None:
        """Append one evaluation to ``metrics.jsonl``, fsynced (the trainer's rank 0 only)."""
        append_jsonl(
            self.metrics_path,
            {METRICS_KEY: step, EPOCH_KEY: epoch, WALL_TIME_KEY: wall_time_s, **metrics},
        )

    def read_evaluations(self) -> list[CheckpointRecord]:
        """The ``metrics.jsonl`` records that have an integer step, as evaluations."""
        return [
            CheckpointRecord.from_metrics_line(record)
            for record in self.read_metrics()
            if _is_int(record.get(METRICS_KEY)) and record[METRICS_KEY] >= 0
        ]

    def read_result(self) -> TrialResult | None:
        """``result.json`` when the trial has ended, else None (a corrupt file: with a warning)."""
        if not self.result_path.exists():
            return None
        try:
            data = read_json(self.result_path)
        except GanHpcError as exc:
            logger.warning("%s (ignoring the file)", exc)
            return None
        if not isinstance(data, dict):
            logger.warning("%s: not a JSON object (ignoring the file)", self.result_path)
            return None
        return TrialResult.from_dict(data, source=str(self.result_path))

    def write_result(self, result: TrialResult) -> None:
        """Write ``result.json`` atomically (the trainer's rank 0, once, when the trial ends)."""
        atomic_write_json(self.result_path, result.to_dict())
