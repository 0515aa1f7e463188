"""One SLURM state query per interval for all of a sweep's jobs: the driver polls, watchers read.

Each trial's watcher used to ask ``squeue`` (and ``sacct`` once its job had left the queue)
every 5 s on its own, so 100 trials made 20 calls a second to the controller. Now one poller per
driver run asks about every watched job at once and publishes the answer; watchers read it.

The poller is a thread in the driver that writes a file, not a Ray actor, because:

- it costs no process: an actor is one more Python worker, and the driver must fit a small job;
- it lives and dies with its driver: a killed driver takes its poller along and a restarted one
  starts its own, while an actor would die with whichever watcher created it, or outlive every
  driver if detached;
- it is fenced like the watchers: each driver run polls into a folder named by its token (the
  one in ``driver_epoch.json``), its watchers read that folder only, and a new driver deletes its
  predecessors' folders, so a stale poller of an old driver, still exiting, writes where no
  current watcher reads;
- watching never depends on it: a watcher whose answer is older than ``STALE_AFTER_S`` (the
  poller stopped, a hung filesystem) asks SLURM itself, at the old per-job rate.

Files, in ``<sweep_dir>/slurm_poll/<driver token>/``::

    jobs/<job_id>   one empty file per watched job, created by its watcher
    refresh         touched by a watcher that wants an answer now: its job is new, its trial
                    wrote a final status.json, or it cancelled the job
    states.json     the answer (one writer, atomic): polled_at, interval_s, the calls made so
                    far (num_polls, num_squeue_calls, num_sacct_calls), and per job
                    ``[state, exit status or null]``

Each poll makes one ``squeue`` call for the sweep's jobs (by job name) and, only for watched jobs
that squeue does not list as active and whose end is not yet known, one ``sacct`` call. An end
state is kept and never asked again, unless squeue lists the job again (requeued). The interval
is ``FAST_POLL_S`` while a job is pending, starting or unanswered, and right after any job
changed state; while every job runs (or has ended) it doubles up to ``SLOW_POLL_S``. A refresh
request brings the next poll forward, never closer than ``MIN_GAP_S`` to the previous one.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gan_hpc._logging import get_logger
from gan_hpc.errors import GanHpcError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.trial_dir import FINAL_STATES, TrialDir

logger = get_logger(__name__)

POLL_DIR = "slurm_poll"  # <sweep_dir>/slurm_poll/<driver token>/
JOBS_DIR = "jobs"
REFRESH_FILE = "refresh"
STATES_FILE = "states.json"
FAST_POLL_S = 2.0  # while jobs start, and right after one changed state
SLOW_POLL_S = 30.0  # the longest interval, reached while every job runs
MIN_GAP_S = 0.5  # refresh requests never bring two polls closer than this
TICK_S = 0.5  # how often the poller looks for a refresh request (a stat)
READ_EVERY_S = 1.0  # how often a watcher reads states.json
STALE_AFTER_S = 120.0  # an answer this old (or none this long): the watcher asks SLURM itself
QUERY_TIMEOUT_S = 60.0
# A job in one of these states may still run: re-attach to it, keep watching it.
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESV_DEL_HOLD",
    }
)

Outcome = tuple[str, "int | None"]  # (state word, exit status when accounting knows it)


def poll_folder(sweep_dir: Path, driver_token: str) -> Path:
    """The folder of the poller of one driver run of the sweep."""
    return Path(sweep_dir) / POLL_DIR / driver_token


# what the parsers below read: the caller adds which jobs (-j, or --name for the squeue)
SQUEUE_STATES = ("squeue", "-h", "-o", "%i|%T")
SACCT_OUTCOMES = ("sacct", "-n", "-X", "-P", "-o", "JobID,State,ExitCode")


def parse_squeue(text: str) -> dict[str, str]:
    """Job id -> state word, from :data:`SQUEUE_STATES` output."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        job_id, _, state = line.partition("|")
        if job_id.strip():
            states[job_id.strip()] = state.strip().upper()
    return states


def parse_sacct(text: str) -> dict[str, Outcome]:
    """Job id -> (state word, exit status), from :data:`SACCT_OUTCOMES` output.

    The last line of a job wins (a requeued job's latest run); "CANCELLED by 0" is CANCELLED.
    """
    outcomes: dict[str, Outcome] = {}
    for line in text.splitlines():
        job_id, state, code = ([*line.split("|"), "", ""])[:3]
        state = state.split(" ")[0].strip().upper()
        exit_status = code.split(":")[0].strip()
        if job_id.strip() and state:
            outcomes[job_id.strip()] = (state, int(exit_status) if exit_status.isdigit() else None)
    return outcomes


def to_account(
    watched: Sequence[str], queued: Mapping[str, str], ended: Mapping[str, Outcome]
) -> list[str]:
    """The watched jobs to ask sacct about: not active in squeue, end not yet known."""
    return [j for j in watched if queued.get(j) not in ACTIVE_STATES and j not in ended]


def merge_outcomes(
    watched: Sequence[str],
    queued: Mapping[str, str],
    accounted: Mapping[str, Outcome],
    ended: Mapping[str, Outcome],
) -> dict[str, Outcome]:
    """Each watched job's outcome: squeue's when it lists the job active, else accounting's.

    A job neither knows is ``("UNKNOWN", None)`` (the watcher decides when it is lost).
    """
    outcomes: dict[str, Outcome] = {}
    for job_id in watched:
        queued_state = queued.get(job_id, "")
        if queued_state in ACTIVE_STATES:
            outcomes[job_id] = (queued_state, None)
        elif job_id in ended:
            outcomes[job_id] = ended[job_id]
        elif job_id in accounted:
            outcomes[job_id] = accounted[job_id]
        else:  # accounting lags a new job by a few seconds; the controller may still list it
            outcomes[job_id] = (queued_state or "UNKNOWN", None)
    return outcomes


def has_ended(state: str) -> bool:
    """True for a state a job is not coming back from on its own (a requeue shows in squeue)."""
    return state not in ACTIVE_STATES and state != "UNKNOWN"


def next_interval_s(previous_s: float, states: Mapping[str, str], *, changed: bool) -> float:
    """The wait before the next poll: short while jobs start or change, longer while all run."""
    settled = all(state == "RUNNING" or has_ended(state) for state in states.values())
    if changed or not settled:
        return FAST_POLL_S
    return min(max(previous_s, FAST_POLL_S) * 2, SLOW_POLL_S)


def _query(command: Sequence[str]) -> str:
    """Run a SLURM client command; its stdout, or "" when it fails (as if it knew nothing)."""
    try:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=QUERY_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("%s failed: %s", command[0], exc)
        return ""
    return result.stdout if result.returncode == 0 else ""


class JobPoller:
    """The driver's poller: a thread asking SLURM about every watched job of the sweep at once.

    Use it as a context manager around the part of the driver that runs watchers::

        with JobPoller(poll_folder(sweep_dir, token), job_name="gan-hpc.adult"):
            tuner.fit()
    """

    def __init__(self, folder: Path, *, job_name: str) -> None:
        self.folder = Path(folder)
        self.job_name = job_name
        self.interval_s = FAST_POLL_S
        self.num_polls = 0
        self.num_squeue_calls = 0
        self.num_sacct_calls = 0
        self._ended: dict[str, Outcome] = {}  # end states: never asked again
        self._states: dict[str, str] = {}
        self._polled_at = float("-inf")  # wall clock of the last poll's start (refresh mtimes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> JobPoller:
        """Clear older drivers' folders, publish an empty answer, start polling."""
        for other in self.folder.parent.glob("*"):
            if other != self.folder:  # a predecessor's: no current watcher reads it
                shutil.rmtree(other, ignore_errors=True)
        (self.folder / JOBS_DIR).mkdir(parents=True, exist_ok=True)
        self.poll_once()
        self._thread = threading.Thread(target=self._run, name="slurm-poller", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop polling (the folder stays until the next driver clears it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=QUERY_TIMEOUT_S * 2 + 1)

    def poll_once(self) -> dict[str, Outcome]:
        """Ask squeue (and sacct for jobs that left it) about every watched job; publish it."""
        self._polled_at = time.time()
        watched = sorted(p.name for p in (self.folder / JOBS_DIR).iterdir() if p.name.isdigit())
        queued: dict[str, str] = {}
        accounted: dict[str, Outcome] = {}
        if watched:
            self.num_squeue_calls += 1
            queued = parse_squeue(_query([*SQUEUE_STATES, f"--name={self.job_name}"]))
            for job_id, state in queued.items():
                if state in ACTIVE_STATES:
                    self._ended.pop(job_id, None)  # requeued: its end is not known any more
            asked = to_account(watched, queued, self._ended)
            if asked:
                self.num_sacct_calls += 1
                accounted = parse_sacct(_query([*SACCT_OUTCOMES, "-j", ",".join(asked)]))
                self._ended.update({j: o for j, o in accounted.items() if has_ended(o[0])})
        outcomes = merge_outcomes(watched, queued, accounted, self._ended)
        states = {job_id: outcome[0] for job_id, outcome in outcomes.items()}
        changed = states != self._states
        self._states = states
        self.interval_s = next_interval_s(self.interval_s, states, changed=changed)
        self.num_polls += 1
        atomic_write_json(
            self.folder / STATES_FILE,
            {
                "polled_at": time.time(),
                "interval_s": self.interval_s,
                "num_polls": self.num_polls,
                "num_squeue_calls": self.num_squeue_calls,
                "num_sacct_calls": self.num_sacct_calls,
                "jobs": {job_id: list(outcome) for job_id, outcome in outcomes.items()},
            },
        )
        return outcomes

    def _refresh_requested(self) -> bool:
        try:
            return (self.folder / REFRESH_FILE).stat().st_mtime >= self._polled_at
        except OSError:
            return False

    def _run(self) -> None:
        last_poll = time.monotonic()
        while not self._stop.wait(TICK_S):
            since = time.monotonic() - last_poll
            if since < self.interval_s and not (since >= MIN_GAP_S and self._refresh_requested()):
                continue
            last_poll = time.monotonic()
            try:
                self.poll_once()
            except (OSError, GanHpcError) as exc:  # watchers fall back on their own if it lasts
                logger.warning("slurm poller: %s", exc)


class PolledJob:
    """A watcher's view of one job on its driver's poller.

    Registering the job and reading the answer are file operations on the poller's folder; a
    folder that does not exist (no poller) or an answer that stays too old makes
    :attr:`is_stale` true, and the watcher then asks SLURM itself.
    """

    def __init__(self, folder: Path, job_id: str, *, trial: TrialDir | None = None) -> None:
        self.folder = Path(folder)
        self.job_id = job_id
        self.trial = trial  # its final status.json asks for a prompt answer
        self.is_stale = False
        self._watched_at = time.time()
        self._read_at = float("-inf")
        self._asked_for_end = False
        try:
            (self.folder / JOBS_DIR / job_id).touch()
        except OSError:  # no poller runs for this driver
            self.is_stale = True
            return
        self.refresh()

    def refresh(self) -> None:
        """Ask the poller for an answer now (a new job, a trial that ended, a cancel)."""
        self._read_at = float("-inf")  # and read it as soon as asked
        with contextlib.suppress(OSError):
            (self.folder / REFRESH_FILE).touch()

    def read(self) -> Outcome | None:
        """The poller's newest answer for the job, or None when there is nothing new to read."""
        if self.is_stale or time.monotonic() - self._read_at < READ_EVERY_S:
            return None
        self._read_at = time.monotonic()
        try:
            answer: dict[str, Any] = read_json(self.folder / STATES_FILE)
        except (GanHpcError, OSError):
            answer = {}
        fresh = time.time() - float(answer.get("polled_at", float("-inf"))) < STALE_AFTER_S
        outcome = answer.get("jobs", {}).get(self.job_id) if fresh else None
        if outcome is None:
            self.is_stale = not fresh or time.time() - self._watched_at >= STALE_AFTER_S
            if self.is_stale:
                logger.warning(
                    "slurm job %s: no answer from the driver's poller in %s for %.0f s; "
                    "asking SLURM directly",
                    self.job_id,
                    self.folder,
                    STALE_AFTER_S,
                )
            return None
        state, exit_status = str(outcome[0]), outcome[1]
        if state in ACTIVE_STATES and self._trial_has_ended():
            self.refresh()  # the trainer wrote its final status: the job ends in a moment
        return state, exit_status if isinstance(exit_status, int) else None

    def _trial_has_ended(self) -> bool:
        if self.trial is None or self._asked_for_end:
            return False
        self._asked_for_end = self.trial.read_status().state in FINAL_STATES
        return self._asked_for_end
