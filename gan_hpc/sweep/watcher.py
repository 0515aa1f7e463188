"""A Tune trial's watcher: it starts (or re-attaches to) the trial's ranks and tails their metrics.

Every trial of a sweep runs one :class:`TrialWatcher` in its own Ray actor, so this module imports
only ``ray.tune`` and gan_hpc modules that are cheap to import: no torch, no scikit-learn, no
matplotlib and no Optuna (a test checks it). The searcher is in
:mod:`gan_hpc.sweep.optuna_search`, the scheduler and the driver in :mod:`gan_hpc.sweep.tune`.
"""

from __future__ import annotations

import math
import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.errors import GanHpcError, LaunchError, SweepError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.launchers.base import (
    EXIT_CANCELLED,
    EXIT_LOST,
    Launcher,
    TrialJob,
    read_launch,
    update_launch,
)
from gan_hpc.launchers.registry import get_launcher, launch_spec_for
from gan_hpc.sweep.directory import (
    DRIVER_EPOCH_FILE,
    STOP_FILE,
    TRIALS_DIR,
    has_ended_state,
    read_spec,
)
from gan_hpc.sweep.spec import SweepSpec, trial_config_for
from gan_hpc.trial_dir import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REQUEUE,
    TrialDir,
    parse_metrics_line,
)

logger = get_logger(__name__)

POINTER_FILE = "progress.json"
PARAMS_FILE = "params.json"
TRIAL_KEY = "gan_hpc_trial"  # a Tune trial's config: the trial directory's name
_DRIVER_PIDFDS: dict[int, int] = {}  # driver pid -> a pidfd on it, one per watcher process
EPOCH_CHECK_S = 2.0  # how often a watcher checks that its driver is still the current one


@dataclass(frozen=True)
class SweepContext:
    """What every watcher needs; small and picklable (it crosses into Ray actors)."""

    sweep_dir: str
    driver_token: str = ""
    driver_pid: int = 0  # the driver process (same host as its watchers); 0: not known
    warm_dir: str = ""  # where the driver's warm trainer takes trials (local launcher); "": none

    def spec(self) -> SweepSpec:
        """The sweep's resolved spec."""
        return read_spec(Path(self.sweep_dir))

    def is_current(self) -> bool:
        """True while this context's driver lives and is the sweep's current one."""
        if self.driver_has_exited():
            return False
        try:
            token = read_json(Path(self.sweep_dir) / DRIVER_EPOCH_FILE).get("token")
        except (GanHpcError, FileNotFoundError):
            return True
        return token == self.driver_token

    def driver_has_exited(self) -> bool:
        """True once the driver process of this context has exited.

        A killed driver's watchers outlive it by a moment, until Ray's reaper ends them, and
        the same reaper signals the trials' ranks: in that moment a watcher must not take its
        trial's end for a crash, nor start it again. Watched through a pidfd (opened at the
        first look, while the driver runs Tune), never a recycled pid.
        """
        if self.driver_pid <= 0:
            return False
        pidfd = _DRIVER_PIDFDS.get(self.driver_pid)
        if pidfd is None:
            try:
                pidfd = _DRIVER_PIDFDS[self.driver_pid] = os.pidfd_open(self.driver_pid)
            except ProcessLookupError:
                return True
        return bool(select.select([pidfd], [], [], 0)[0])


class Superseded(SweepError):
    """Its driver died or a newer one runs the sweep: a watcher must not touch the trial's job."""


class TrialWatcher(tune.Trainable):
    """One Tune trial: launches the trial's ranks and streams its metrics.jsonl into Tune.

    How the job ended decides what happens (one retry budget per trial,
    ``tune.max_retries_per_trial``, kept in ``launch.json`` across drivers; Ray retries nothing):

    ======================  =========================================================
    exit 0                  ended: finished, diverged or halted (``status.json``)
    exit 2 (bad input)      failed, never retried
    exit 75, TIMEOUT,       checkpointed or stopped from outside: run again from the
    PREEMPTED, lost job     checkpoint (one retry)
    exit 1 or other         crashed: run again from the checkpoint (one retry)
    cancelled by a user     ended as ``cancelled``, never resubmitted
    ======================  =========================================================
    """

    def setup(self, config: dict[str, Any], context: SweepContext) -> None:  # type: ignore[override]
        """Find the trial directory (the searcher made it); the job starts on the first step."""
        self.context = context
        self.spec = context.spec()
        name = str(config.get(TRIAL_KEY, self.trial_id))
        self.params = {k: v for k, v in config.items() if k in self.spec.search}
        self.trial = TrialDir(Path(context.sweep_dir) / TRIALS_DIR / name)
        self.trial.path.mkdir(parents=True, exist_ok=True)
        status = self.trial.read_status()
        if status.state == "failed" and not self.trial.config_path.exists():
            raise LaunchError(f"trial {name} cannot start: {status.message}")
        if not self.trial.config_path.exists():  # the searcher wrote it; never changed after
            self.trial.write_config(trial_config_for(self.spec, self.params))
        if not (self.trial.path / PARAMS_FILE).exists():
            atomic_write_json(self.trial.path / PARAMS_FILE, self.params)
        self.launcher: Launcher = get_launcher(self.spec.launcher)
        self.launch_spec = launch_spec_for(
            self.spec, driver_token=context.driver_token, warm_dir=context.warm_dir
        )
        self.job: TrialJob | None = None
        self.reported_step = 0
        self.last_result: dict[str, Any] = {}
        self.offset = 0
        self._epoch_checked_at = time.monotonic()

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        """Watch another trial in this actor (``reuse_actors``): no actor start per trial."""
        self.cleanup()  # Tune skips stop() for an actor it reuses: the old job still ends here
        # this class's own setup: with_parameters' subclass would fetch the context again
        TrialWatcher.setup(self, new_config, self.context)
        return True

    def step(self) -> dict[str, Any]:
        """Block until the trial reports a new evaluation (or ends); return it to Tune."""
        if self.job is None:
            self._check_current()
            self.job = self.launcher.attach(self.trial, self.launch_spec, include_ended=True)
            if self.job is None:
                self.job = self.launcher.start(self.trial, self.launch_spec)
        while True:
            record = self._next_record()
            if record is not None:
                return record
            code = self.job.poll()
            if code is None:
                if time.monotonic() - self._epoch_checked_at > EPOCH_CHECK_S:
                    self._epoch_checked_at = time.monotonic()
                    self._check_current()
                time.sleep(self.launcher.poll_interval_s)
                continue
            record = self._next_record()  # the last lines may land just before exit
            if record is not None:
                return record
            self._check_current()  # a newer driver may have stopped the job: it decides
            ended = self._ended_as(code)
            if ended is not None:
                # the end-of-trial (test split) scores stay out of Tune: the search must
                # learn from evaluations only, never from the test data
                return {**self.last_result, "trial_state": ended, "done": True}
            self._check_current()
            self.job = self.launcher.start(self.trial, self.launch_spec)

    def _check_current(self) -> None:
        """Raise :class:`Superseded` when the driver died or a newer one runs the sweep."""
        if not self.context.is_current():
            self.job = None  # the next driver owns the job: never cancel it from here
            raise Superseded(f"trial {self.trial.path.name}: its driver is gone or superseded")

    def _ended_as(self, code: int) -> str | None:
        """The trial's final state after its job ended with ``code``; None: run it again."""
        assert self.job is not None
        return after_job_end(
            self.trial,
            code,
            job_id=self.job.job_id,
            summary=self.job.failure_summary,
            max_retries=self.spec.tune.max_retries_per_trial,
        )

    def _next_record(self) -> dict[str, Any] | None:
        """The next unreported metrics record, read from where the last read stopped."""
        path = self.trial.metrics_path
        if not path.exists():
            return None
        with open(path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            while True:
                line = handle.readline()
                if not line.endswith("\n"):  # nothing more, or a line still being written
                    return None
                self.offset = handle.tell()
                record = parse_metrics_line(line)  # a torn line never hides the next
                if record is None or record.get(names.STEP, 0) <= self.reported_step:
                    continue
                self.reported_step = int(record[names.STEP])
                self.last_result = tune_result(record)
                return dict(self.last_result)

    def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
        """Save Tune's checkpoint: a pointer to the step reported so far (weights stay put)."""
        atomic_write_json(Path(checkpoint_dir) / POINTER_FILE, {names.STEP: self.reported_step})
        return {names.STEP: self.reported_step}

    def load_checkpoint(self, checkpoint: Any) -> None:
        """Tune never restores a watcher (each driver runs a fresh experiment): nothing to do."""

    def cleanup(self) -> None:
        """Stop the trial's job when Tune stops the trial (ASHA) or the sweep shuts down.

        The cancel is recorded first, so a later driver tells it from a user's scancel. A
        trial the scheduler did not stop keeps its state: the next driver adopts it.
        """
        if self.job is None or not self.context.is_current():
            return
        if self.job.poll() is None:
            update_launch(self.trial, cancelled_job=self.job.job_id)
            self.job.cancel()
        if (self.trial.path / STOP_FILE).exists() and not has_ended_state(self.trial):
            self.trial.update_status(state="stopped", message="stopped early by the scheduler")


def after_job_end(
    trial: TrialDir,
    code: int,
    *,
    job_id: str,
    summary: Callable[[], str],
    max_retries: int,
) -> str | None:
    """What a trial's job ending with ``code`` means: its final state, or None to run it again.

    Idempotent for one job (a driver killed while deciding decides the same way again); every
    run-again but one after a driver's own cancel spends the trial's one retry budget.

    Raises:
        LaunchError: the trial failed (bad input, or no retry left); status.json says so.

    """
    record = read_launch(trial)
    if code == EXIT_OK:
        return trial.read_status().state
    if (trial.path / STOP_FILE).exists():
        trial.update_status(state="stopped", message="stopped early by the scheduler")
        return "stopped"
    if code == EXIT_CANCELLED and record.cancelled_job != job_id:
        message = f"job {job_id} was cancelled from outside the sweep (scancel); not run again"
        trial.update_status(state="cancelled", message=message)
        logger.warning("trial %s: %s", trial.path.name, message)
        return "cancelled"
    if code == EXIT_CANCELLED:  # a driver cancelled it as it shut down: carry on
        return None
    # bad input (exit 2) fails the same way every time: retrying only wastes the slot
    if code == EXIT_BAD_INPUT:
        _fail(trial, code, summary())
    if record.retried_job == job_id:  # a killed driver already counted this end
        return None
    if record.retries >= max_retries:
        _fail(trial, code, summary())
    update_launch(trial, retries=record.retries + 1, retried_job=job_id)
    why = {EXIT_REQUEUE: "stopped with a checkpoint", EXIT_LOST: "was lost by the scheduler"}
    reason = f"job {job_id} {why.get(code, f'exited {code}')}"
    trial.update_status(add={"restart_count": 1}, message=f"restarted: {reason}")
    logger.warning(
        "trial %s: %s; running it again from its checkpoint (retry %d/%d)",
        trial.path.name,
        reason,
        record.retries + 1,
        max_retries,
    )
    return None


def _fail(trial: TrialDir, code: int, summary: str) -> None:
    trial.update_status(state="failed", message=summary[-500:])
    raise LaunchError(f"trial {trial.path.name} failed (exit {code}): {summary}")


def tune_result(record: dict[str, Any]) -> dict[str, float]:
    """A ``metrics.jsonl`` record as Tune gets it: its numbers, and null as NaN.

    ``metrics.jsonl`` is strict JSON, so a metric that was NaN reads as null; Tune still gets
    it as NaN: a metric left out of a result would stop the sweep (Tune's strict metric check).
    """
    return {
        key: math.nan if value is None else value
        for key, value in record.items()
        if value is None or isinstance(value, (int, float))
    }
