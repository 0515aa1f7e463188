"""The SLURM launcher: each trial is one submitit job whose tasks are the trial's DDP ranks.

Every task of the job runs :class:`TrialTask`, which starts one rank of
``python -m gan_hpc.trial.train TRIAL_DIR`` with the torchrun contract (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) derived from SLURM's variables. Files of a trial's jobs::

    <trial_dir>/slurm/<job_id>/    submitit's sbatch script, pickles and per-task logs
    <trial_dir>/status.json        job_id (re-attach after a driver restart), restart_count

Preemption and time limits: jobs are submitted with ``--signal=USR2@<slurm.signal_delay_s>``
and ``--requeue``. On USR2 submitit calls :meth:`TrialTask.checkpoint` on rank 0, which asks
the trainer to checkpoint (SIGUSR1), waits for it to exit 75, and hands submitit a fresh task to
requeue. The requeued job resumes from the newest valid checkpoint in the trial directory: the
task carries only the directory's path, never a checkpoint path. A job requeued more than
``slurm.max_requeues`` times stops with a message saying so.

This module is the only one that imports submitit; the registry
(:mod:`gan_hpc.launchers.registry`) loads it only when a sweep uses the SLURM launcher. The
``slurm:`` block it reads is :class:`~gan_hpc.launchers.slurm_config.SlurmConfig`; the sweep's
driver job is :mod:`gan_hpc.launchers.slurm_driver`, and the calls to sbatch, squeue, sacct and
scontrol go through :mod:`gan_hpc.launchers.slurm_commands`.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, pickle_load

from gan_hpc._logging import get_logger
from gan_hpc.dist_env import dist_env_from_environ
from gan_hpc.errors import LaunchError
from gan_hpc.launchers.base import (
    EXIT_CANCELLED,
    EXIT_LOST,
    Launcher,
    LaunchSpec,
    TrialJob,
    die_with_parent,
    read_launch,
    train_command,
    trial_threads,
    update_launch,
)
from gan_hpc.launchers.slurm_commands import (
    outside_any_job,
    require_sbatch,
    run_slurm_command,
    sbatch,
    sbatch_message,
    slurm_outcome,
    slurm_state,
)
from gan_hpc.launchers.slurm_config import slurm_settings
from gan_hpc.launchers.slurm_driver import submit_driver
from gan_hpc.launchers.slurm_poll import ACTIVE_STATES, TICK_S, JobPoller, PolledJob, poll_folder
from gan_hpc.safety import check_safe_to_unpickle
from gan_hpc.trial_dir import EXIT_FAILED, EXIT_OK, EXIT_REQUEUE, FINAL_STATES, TrialDir

logger = get_logger(__name__)

SLURM_DIR = "slurm"  # <trial_dir>/slurm/<job_id>/: submitit's folder for the trial's jobs
# A job watched without the driver's poller (gan_hpc.launchers.slurm_poll) is asked about this often
STATE_REFRESH_S = 5.0
CANCEL_WAIT_S = 90.0  # how long cancel() waits for the job to leave the node
# A job neither squeue nor sacct knows for this long is lost (purged, or a wiped controller)
LOST_AFTER_S = float(os.environ.get("GAN_HPC_SLURM_LOST_AFTER_S", "300"))
# A PREEMPTED job may be on its way back to the queue (PreemptMode=REQUEUE): wait this long
PREEMPTED_GRACE_S = 60.0
# How each end state of a job reaches the watcher (its own exit status wins for FAILED)
END_STATES = {
    "COMPLETED": EXIT_OK,
    "CANCELLED": EXIT_CANCELLED,
    "TIMEOUT": EXIT_REQUEUE,  # the trainer checkpointed on SIGTERM, or has an older checkpoint
    "PREEMPTED": EXIT_REQUEUE,
    "NODE_FAIL": EXIT_REQUEUE,
    "BOOT_FAIL": EXIT_REQUEUE,
    "FAILED": EXIT_FAILED,
    "OUT_OF_MEMORY": EXIT_FAILED,
    "DEADLINE": EXIT_FAILED,
}
# The trainer checks for a stop request every few steps and then checkpoints; on a slow GPU
# step this takes a while, but it must finish before SLURM's final SIGKILL.
STOP_WAIT_S = 300.0
# After the trainer stopped on SIGTERM, how long rank 0 waits for SLURM to end or requeue the
# job (a cancel, a preemption, submitit's USR2) before it requeues the job itself.
SIGTERM_GRACE_S = 20.0
TAIL_LINES = 8
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt): ")
# torchrun's variables, set per task from SLURM's; stale ones from the submitting shell go
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")


class TrialTask(submitit.helpers.Checkpointable):
    """One task of a trial's job: runs one DDP rank of the trainer as a child process.

    The trainer runs in a child so that it receives SIGUSR1/SIGTERM and checkpoints by itself,
    while this process keeps submitit's USR2 handler. Only the trial directory's path and one
    setting cross the pickle; the requeued job finds its checkpoint in that directory, and
    its thread count in ``config.json``.
    """

    def __init__(self, *, trial_dir: str, max_requeues: int) -> None:
        self.trial_dir = trial_dir
        self.max_requeues = max_requeues
        self._process: subprocess.Popen[bytes] | None = None
        self._returncode: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Only the settings cross the pickle, never the running child."""
        return {"trial_dir": self.trial_dir, "max_requeues": self.max_requeues}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from the settings; an older job's pickled thread count is dropped.

        ``config.json`` gives the thread count now (``train.num_threads``).
        """
        settings = {k: state[k] for k in ("trial_dir", "max_requeues")}
        self.__init__(**settings)  # type: ignore[misc]

    def __call__(self) -> int:
        """Run the trainer's rank; 0 when it finished (or diverged), else raise or exit 75."""
        trial = TrialDir(self.trial_dir)
        job_id = os.environ.get("SLURM_JOB_ID", "?")
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        rank = int(os.environ.get("SLURM_PROCID", "0"))
        if restarts > self.max_requeues:  # requeued by the scheduler or an admin, past the limit
            self._stop_at_limit(trial, job_id, restarts)
        if rank == 0 and restarts:
            status = trial.read_status()
            trial.update_status(
                restart_count=status.restart_count + 1,
                message=f"slurm job {job_id} requeued ({restarts}/{self.max_requeues})",
            )
        self._start(trial)
        while self._returncode is None:
            # sleep, not a blocking wait: submitit's USR2 handler runs in this thread and calls
            # checkpoint(), which must be able to wait for the child itself
            time.sleep(0.5)
        code = self._returncode
        if code == EXIT_OK:
            return EXIT_OK
        # -SIGTERM: the signal came before the trainer had set up its handler (nothing to save)
        if code in (EXIT_REQUEUE, -signal.SIGTERM):
            self._after_trainer_stopped(job_id, rank, restarts)
        # the trainer's own exit status is the job's (sacct's ExitCode): the watcher tells bad
        # input (2) from a crash (1); srun passes on the highest status of the ranks
        logger.error(
            "%s: rank %d of the trainer exited %s in slurm job %s", trial.path, rank, code, job_id
        )
        sys.exit(code if 0 < code < 256 else EXIT_FAILED)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Called by submitit on rank 0 at USR2: checkpoint the trainer, then requeue the job.

        Raises:
            LaunchError: the job was already requeued ``max_requeues`` times (not requeued).

        """
        if self._process is not None and self._returncode is None:
            self._process.send_signal(signal.SIGUSR1)  # the trainer checkpoints and exits 75
            deadline = time.monotonic() + STOP_WAIT_S
            while self._returncode is None and time.monotonic() < deadline:
                time.sleep(0.2)
        job_id = os.environ.get("SLURM_JOB_ID", "?")
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        if restarts >= self.max_requeues:
            message = self._limit_message(job_id, restarts + 1)
            TrialDir(self.trial_dir).update_status(message=message)
            raise LaunchError(message)
        return submitit.helpers.DelayedSubmission(
            TrialTask(trial_dir=self.trial_dir, max_requeues=self.max_requeues)
        )

    def _start(self, trial: TrialDir) -> None:
        """Start the trainer's rank with the torchrun contract and wait for it in a thread."""
        inherited = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
        inherited.pop("MASTER_PORT", None)
        dist = dist_env_from_environ(inherited)  # the trainer's own rule: one place decides
        env = {
            **inherited,
            "RANK": str(dist.rank),
            "LOCAL_RANK": str(dist.local_rank),
            "WORLD_SIZE": str(dist.world_size),
            "MASTER_ADDR": dist.master_addr,
            "MASTER_PORT": str(dist.master_port),
            "OMP_NUM_THREADS": str(trial_threads(trial, _cpus_per_task())),
            "PYTHONUNBUFFERED": "1",
        }
        self._process = subprocess.Popen(
            train_command(trial),
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_trainer_preexec,
        )
        process = self._process

        def wait() -> None:
            self._returncode = process.wait()

        threading.Thread(target=wait, name="trainer-wait", daemon=True).start()

    def _after_trainer_stopped(self, job_id: str, rank: int, restarts: int) -> None:
        """The trainer checkpointed on SIGTERM (exit 75): let SLURM finish, or requeue.

        SIGTERM comes when SLURM cancels, preempts or times out the job, or before submitit's
        USR2 (whose handler then requeues and exits). Either way the job soon leaves RUNNING.
        A trainer signalled on its own asks to run again, so rank 0 then requeues the job.
        """
        # exiting without a result pickle tells submitit that the job did not complete
        if rank != 0:
            sys.exit(EXIT_REQUEUE)  # only rank 0 decides about the job
        deadline = time.monotonic() + SIGTERM_GRACE_S
        while time.monotonic() < deadline:
            if slurm_state(job_id) not in ("RUNNING", "UNKNOWN"):
                sys.exit(EXIT_REQUEUE)  # SLURM is ending or requeueing the job
            time.sleep(1.0)
        if restarts >= self.max_requeues:
            self._stop_at_limit(TrialDir(self.trial_dir), job_id, restarts + 1)
        logger.warning("trainer stopped on a signal; requeueing slurm job %s", job_id)
        run_slurm_command(["scontrol", "requeue", job_id])
        sys.exit(EXIT_REQUEUE)

    def _stop_at_limit(self, trial: TrialDir, job_id: str, restarts: int) -> None:
        """Past slurm.max_requeues: end the job with exit 75 (checkpointed; the driver decides)."""
        message = self._limit_message(job_id, restarts)
        trial.update_status(message=message)
        logger.error("%s", message)
        sys.exit(EXIT_REQUEUE)

    def _limit_message(self, job_id: str, restarts: int) -> str:
        return (
            f"{self.trial_dir}: slurm job {job_id} not requeued again: it would be restart "
            f"{restarts} but slurm.max_requeues is {self.max_requeues}; find out why it keeps "
            "stopping (time limit too short? preempted?) or raise slurm.max_requeues"
        )


def _cpus_per_task() -> int:
    """The CPUs SLURM gave this task (``--cpus-per-task``), else 1."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(cpus) if cpus.isdigit() else 1


def _trainer_preexec() -> None:
    """In the trainer child: ignore submitit's USR2, die with the task.

    SLURM signals every process of a task (cgroup or process tree), so the trainer gets USR2
    too; the task forwards it as SIGUSR1 from checkpoint() instead.
    """
    signal.signal(getattr(signal, f"SIG{submitit.JobEnvironment.USR_SIG}"), signal.SIG_IGN)
    die_with_parent()


class SlurmJob(TrialJob):
    """A trial's SLURM job, watched through squeue and sacct; its end mapped to an exit status."""

    def __init__(self, job: submitit.Job[Any], *, polled: PolledJob | None = None) -> None:
        self.job = job
        self.job_id = str(job.job_id)
        self.polled = polled  # the driver's poller answers; None (or stale): ask SLURM here
        self._state = "PENDING"
        self._exit: int | None = None
        self._checked_at = float("-inf")
        self._unknown_since: float | None = None
        self._preempted_since: float | None = None

    def state(self) -> str:
        """The job's SLURM state (PENDING, RUNNING, COMPLETED, ...), refreshed every few seconds.

        From the driver's poller when one answers, else from squeue and sacct directly.
        """
        answer = self.polled.read() if self.polled is not None else None
        direct = self.polled is None or self.polled.is_stale
        if answer is None and direct and time.monotonic() - self._checked_at >= STATE_REFRESH_S:
            self._checked_at = time.monotonic()
            answer = slurm_outcome(self.job_id)
        if answer is not None:
            self._state, self._exit = answer
            result = self.job.task(0).paths.result_pickle
            if self._state == "UNKNOWN" and result.exists():
                # neither sacct nor the controller knows the job (no accounting, or purged):
                # submitit's result file of rank 0 still tells how it ended; it is a pickle, so
                # it must not be writable by anyone else (nor its folders up to the trial's)
                check_safe_to_unpickle(result, root=result.parents[2])
                outcome, _ = pickle_load(result)
                self._state = "COMPLETED" if outcome == "success" else "FAILED"
        return self._state

    def poll(self) -> int | None:
        """None while queued, running or requeued, else how it ended, as an exit status.

        0 completed; the trainer's own status for FAILED (2 bad input, 75 checkpointed, 1
        crash); 75 for TIMEOUT, PREEMPTED (once it stays so) and NODE_FAIL; 130 cancelled;
        69 lost: neither squeue nor sacct has known the job for ``LOST_AFTER_S``.
        """
        state = self.state()
        now = time.monotonic()
        if state == "UNKNOWN":
            self._unknown_since = self._unknown_since or now
            if now - self._unknown_since < LOST_AFTER_S:
                return None
            logger.warning("slurm job %s: unknown to squeue and sacct; lost", self.job_id)
            return EXIT_LOST
        self._unknown_since = None
        if state in ACTIVE_STATES:
            return None
        if state == "PREEMPTED":  # on its way back to the queue, unless PreemptMode=CANCEL
            self._preempted_since = self._preempted_since or now
            if now - self._preempted_since < PREEMPTED_GRACE_S:
                return None
        if state == "FAILED" and self._exit:
            return self._exit
        return END_STATES.get(state, EXIT_FAILED)

    def cancel(self) -> None:
        """``scancel``: SLURM sends SIGTERM (the trainer checkpoints), then SIGKILL."""
        result = subprocess.run(["scancel", self.job_id], capture_output=True, text=True)
        if result.returncode != 0:  # e.g. the job ended meanwhile: nothing to cancel
            logger.warning("scancel %s: %s", self.job_id, " ".join(result.stderr.split()))
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            # accounting says CANCELLED at once; the controller lists the job until its
            # processes are gone (COMPLETING), and the next trial needs those CPUs
            if self.polled is not None and not self.polled.is_stale:
                self.polled.refresh()
                if self.state() not in ACTIVE_STATES:
                    return
                time.sleep(TICK_S)  # the poller answers a refresh within a tick
                continue
            if not run_slurm_command(
                ["squeue", "-h", "-j", self.job_id, "-o", "%T"], check=False
            ).strip():
                return
            time.sleep(1.0)
        logger.warning("slurm job %s still holds its node after scancel", self.job_id)

    def failure_summary(self) -> str:
        """``slurm job <id> (<state>): <the error, else the tail of task 0's log>; log: <path>``.

        The error is the last exception line of the lowest task that raised one.
        """
        summary = ""
        for task in range(self.job.num_tasks):
            log = self.job.task(task).stderr() or ""
            lines = [line.strip() for line in log.splitlines() if line.strip()]
            errors = [line for line in lines if EXCEPTION_LINE.match(line)]
            if errors:
                summary = f"task {task}: {errors[-1]}"
                break
            if task == 0:
                summary = " | ".join(lines[-TAIL_LINES:]) or "(no error log)"
        log_path = self.job.task(0).paths.stderr
        return f"slurm job {self.job_id} ({self.state()}): {summary}; log: {log_path}"


class SlurmLauncher(Launcher):
    """Submits each trial as one SLURM job through submitit: one task (= one GPU) per rank."""

    name = "slurm"
    watcher_cpus = 0.01  # the watcher only tails files; a login node can watch many trials
    has_driver_job = True

    def check(self, spec: LaunchSpec) -> None:
        """Ask sbatch whether it would accept the trial jobs (``sbatch --test-only``)."""
        tasks_per_node = spec.world_size // spec.nodes
        gpus_per_node = slurm_settings(spec).gpus_per_node
        if gpus_per_node not in (0, tasks_per_node):
            raise LaunchError(
                f"slurm.gpus_per_node is {gpus_per_node} but each node runs "
                f"{tasks_per_node} ranks (resources.world_size / resources.nodes); one rank "
                "drives one GPU, so make them equal"
            )
        with tempfile.TemporaryDirectory(prefix="gan-hpc-check-") as folder:
            executor = _trial_executor(Path(folder), spec, comment="check")
            # the very script submit() would send; submitit has no public way to render it
            script = Path(folder) / "check.sbatch"
            slurm_executor = typing.cast(submitit.SlurmExecutor, executor._executor)
            script.write_text(slurm_executor._make_submission_file_text("true", "check"))
            sbatch(["--test-only", str(script)], what="trial jobs")

    def _spawn(self, trial: TrialDir, spec: LaunchSpec, launch: int) -> TrialJob:
        """Submit launch ``launch`` of the trial as a job whose comment names it."""
        require_sbatch()
        executor = _trial_executor(
            trial.path / SLURM_DIR / "%j", spec, comment=job_comment(trial, launch)
        )
        task = TrialTask(
            trial_dir=str(trial.path.resolve()), max_requeues=slurm_settings(spec).max_requeues
        )
        trial.update_status(state="pending")  # now: once the job runs, it writes the state
        try:
            with outside_any_job():
                job = executor.submit(task)
        except FailedJobError as exc:
            message = sbatch_message(str(exc), "the trial job")
            raise LaunchError(f"{trial.path}: {message}") from None
        trial.update_status(job_id=str(job.job_id))
        logger.info("submitted slurm job %s for %s", job.job_id, trial.path)
        return _watched(job, trial, spec)

    def attach(
        self, trial: TrialDir, spec: LaunchSpec, *, include_ended: bool = False
    ) -> TrialJob | None:
        """The trial's current job: queued or running, completed, or (``include_ended``) any.

        A launch recorded without a job id (the driver died around sbatch) is looked up in
        squeue and sacct by its comment; found, it is watched, never submitted again. A
        sweep's driver passes ``include_ended`` and reads how the job ended (a user's
        scancel, bad input) instead of running the trial again.
        """
        record = read_launch(trial)
        job_id = record.job_id
        if record.launch == 0:  # a sweep from before launch records: status.json's job
            job_id = trial.read_status().job_id
            if not job_id or not job_id.isdigit() or slurm_state(job_id) not in ACTIVE_STATES:
                return None
        elif job_id is None:
            job_id = find_job(spec.job_name, job_comment(trial, record.launch), record.intent_at)
            if job_id is None:
                return None  # sbatch never ran: the next launch starts it
            update_launch(trial, job_id=job_id)
            trial.update_status(job_id=job_id)
            logger.info("found slurm job %s of %s by its comment", job_id, trial.path)
        if not job_id.isdigit():
            return None
        if not include_ended:
            state = slurm_state(job_id)
            completed = state == "COMPLETED" and trial.read_status().state in FINAL_STATES
            if state not in ACTIVE_STATES and not completed:
                return None
        job: submitit.SlurmJob[Any] = submitit.SlurmJob(
            folder=trial.path / SLURM_DIR / "%j", job_id=job_id, tasks=range(spec.world_size)
        )
        logger.info("watching slurm job %s of %s again", job_id, trial.path)
        return _watched(job, trial, spec)

    def submit_driver(
        self, spec_path: Path, sweep_dir: Path, spec: LaunchSpec, *, watched_trials: int
    ) -> str:
        """Submit the sweep's driver as a SLURM job; its job id.

        See :func:`gan_hpc.launchers.slurm_driver.submit_driver`.
        """
        return submit_driver(spec_path, sweep_dir, spec, watched_trials=watched_trials)

    def watch_jobs(self, spec: LaunchSpec, sweep_dir: Path) -> JobPoller:
        """The poller of driver run ``spec.driver_token``: one squeue call per interval for all."""
        return JobPoller(poll_folder(sweep_dir, spec.driver_token), job_name=spec.job_name)

    def reconcile(
        self, spec: LaunchSpec, trials: Sequence[TrialDir], ended: Sequence[TrialDir]
    ) -> None:
        """Cancel the sweep's queued or running jobs that must not run (one squeue call).

        Those of a trial that has ended, and those of an older launch than the trial's
        current one (a duplicate).
        """
        if not trials:
            return
        require_sbatch()
        key = sweep_key(trials[0])
        by_name = {t.path.name: t for t in trials}
        ended_names = {t.path.name for t in ended}
        out = run_slurm_command(
            ["squeue", "-h", f"--name={spec.job_name}", "-o", "%i|%k|%T"], check=False
        )
        cancelled: list[str] = []
        for line in out.splitlines():
            job_id, comment, state = (line.split("|") + ["", ""])[:3]
            name, launch, sweep = parse_comment(comment)
            if sweep != key or name not in by_name or state.strip() not in ACTIVE_STATES:
                continue
            trial = by_name[name]
            current = read_launch(trial).launch
            if name in ended_names or launch != current:
                why = "it has ended" if name in ended_names else f"launch {current} is current"
                logger.warning("cancelling slurm job %s of %s: %s", job_id, name, why)
                if launch == current:
                    update_launch(trial, cancelled_job=job_id.strip())
                run_slurm_command(["scancel", job_id.strip()], check=False)
                cancelled.append(job_id.strip())
        deadline = time.monotonic() + CANCEL_WAIT_S
        while cancelled and time.monotonic() < deadline:  # gone from the node, files final
            listed = run_slurm_command(
                ["squeue", "-h", "-j", ",".join(cancelled), "-o", "%i"], check=False
            )
            if not listed.strip():
                break
            time.sleep(1.0)


def _watched(job: submitit.Job[Any], trial: TrialDir, spec: LaunchSpec) -> SlurmJob:
    """The trial's job, answered by its driver's poller when the spec names a driver run."""
    if not spec.driver_token:
        return SlurmJob(job)
    sweep_dir = trial.path.resolve().parent.parent  # <sweep_dir>/trials/<trial_id>
    folder = poll_folder(sweep_dir, spec.driver_token)
    return SlurmJob(job, polled=PolledJob(folder, str(job.job_id), trial=trial))


def sweep_key(trial: TrialDir) -> str:
    """Eight hex digits naming the trial's sweep directory (two sweeps may share a name)."""
    return hashlib.sha1(str(trial.path.resolve().parent.parent).encode()).hexdigest()[:8]


def job_comment(trial: TrialDir, launch: int) -> str:
    """The comment of a trial's job: ``<trial id>/<launch>/<sweep key>`` (``squeue -o %k``)."""
    return f"{trial.path.name}/{launch}/{sweep_key(trial)}"


def parse_comment(comment: str) -> tuple[str, int, str]:
    """``(trial id, launch, sweep key)`` of a job comment; launch -1 when it is not one."""
    parts = comment.strip().split("/")
    if len(parts) != 3 or not parts[1].isdigit():
        return comment.strip(), -1, ""
    return parts[0], int(parts[1]), parts[2]


def find_job(job_name: str, comment: str, since: float) -> str | None:
    """The id of the job named ``job_name`` with ``comment``, from squeue, else sacct."""
    queued = run_slurm_command(["squeue", "-h", f"--name={job_name}", "-o", "%i|%k"], check=False)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 300))
    accounted = run_slurm_command(
        ["sacct", "-n", "-X", "-P", f"--name={job_name}", "-S", start, "-o", "JobID,Comment"],
        check=False,
    )
    for line in [*queued.splitlines(), *accounted.splitlines()]:
        job_id, _, found = line.partition("|")
        if found.strip() == comment and job_id.strip().isdigit():
            return job_id.strip()
    return None


def _trial_executor(folder: Path, spec: LaunchSpec, *, comment: str) -> submitit.AutoExecutor:
    """A submitit executor with the sweep's ``slurm:`` settings for one trial's job.

    The job is named after the sweep and its comment is the trial id (``squeue -o %k``).
    """
    slurm = slurm_settings(spec)
    executor = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=slurm.max_requeues
    )
    optional = {
        "slurm_partition": slurm.partition,
        "slurm_account": slurm.account,
        "slurm_qos": slurm.qos,
        "slurm_constraint": slurm.constraint,
        "mem_gb": slurm.mem_gb,
        "gpus_per_node": slurm.gpus_per_node or None,
        "slurm_setup": list(slurm.setup) or None,
    }
    executor.update_parameters(
        name=spec.job_name,
        nodes=spec.nodes,
        tasks_per_node=spec.world_size // spec.nodes,  # one task per rank, so one per GPU
        cpus_per_task=slurm.cpus_per_task,
        timeout_min=slurm.timeout_min,
        slurm_signal_delay_s=slurm.signal_delay_s,
        slurm_comment=comment,
        # requeue needs it where the cluster's JobRequeue default is 0
        slurm_additional_parameters={
            "requeue": True,
            # an empty value writes the bare flag, e.g. {exclusive: ""} -> --exclusive
            **{k: v if v != "" else True for k, v in slurm.additional_parameters.items()},
        },
        **{key: value for key, value in optional.items() if value is not None},
    )
    return executor
