"""The live view of a sweep: trials ended, running and pending, an ETA, and each trial's speed.

:class:`SweepTally` keeps the facts (no Ray, no clock of its own: times are passed in) and
:func:`format_progress` renders them as one line. On a terminal, :class:`BarView` shows them on a
tqdm bar with events printed above it; elsewhere (a SLURM log) :class:`LineView` prints a line
per event and at most one status line per ``interval_s``. :class:`SweepProgress` feeds Tune's
callbacks into either.

The ETA counts the steps left (every trial not yet ended runs to ``train.num_steps``, so early
stops only make it shorter) at the rate this driver has trained so far: its steps over its wall
time, trial start-ups and end-of-trial scoring included.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ray import tune
from ray.tune.experiment import Trial
from tqdm import tqdm

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger

logger = get_logger(__name__)

ENDED_STATES = ("finished", "stopped early", "failed")
LINE_INTERVAL_S = 30.0  # a SLURM log gets a status line at most this often between events
MAX_TRIAL_RATES = 4  # per-trial speeds shown on one line
MIN_RATE_SPAN_S = 1.0  # a trial's speed is shown once its reports span this long


@dataclass
class TrialPace:
    """One trial's step count over time (its first and latest report).

    ``baseline`` is the step this driver took the trial over at: 0 for a trial it started,
    the first reported step for one it adopted (those steps were trained before).
    """

    first_step: int
    first_at: float
    step: int
    at: float
    baseline: int = 0

    def steps_per_s(self) -> float | None:
        """Steps per second since the first report this driver saw (None within a second)."""
        # Tune may hand over two queued reports at once: a rate over no time is noise
        if self.at - self.first_at < MIN_RATE_SPAN_S or self.step <= self.first_step:
            return None
        return (self.step - self.first_step) / (self.at - self.first_at)


@dataclass
class SweepTally:
    """The facts the live view shows, updated from Tune's callbacks."""

    num_samples: int
    num_steps: int
    metric: str
    mode: str
    started_at: float
    last_at: float = 0.0
    adopted: set[str] = field(default_factory=set)  # trials a previous driver started
    paces: dict[str, TrialPace] = field(default_factory=dict)
    ended: dict[str, str] = field(default_factory=dict)  # trial -> one of ENDED_STATES
    values: dict[str, float] = field(default_factory=dict)
    running: set[str] = field(default_factory=set)

    def report(self, trial: str, step: int, value: float | None, at: float) -> None:
        """A trial reported ``step`` (and maybe the metric) at time ``at``."""
        pace = self.paces.get(trial)
        if pace is None:
            baseline = step if trial in self.adopted else 0
            self.paces[trial] = TrialPace(step, at, step, at, baseline)
        else:
            pace.step, pace.at = step, at
        self.last_at = max(self.last_at, at)
        if value is not None:
            self.values[trial] = value
        self.running.add(trial)

    def end(self, trial: str, state: str, at: float) -> None:
        """A trial ended (one of :data:`ENDED_STATES`) at time ``at``."""
        self.ended[trial] = state
        self.running.discard(trial)
        self.last_at = max(self.last_at, at)

    def counts(self) -> dict[str, int]:
        """How many trials are in each state (pending: not yet started)."""
        counts = {state: 0 for state in ENDED_STATES}
        for state in self.ended.values():
            counts[state] += 1
        counts["running"] = len(self.running)
        counts["pending"] = max(0, self.num_samples - len(self.ended) - len(self.running))
        return counts

    def best(self) -> tuple[str, float] | None:
        """The best trial so far by the search metric, and its value."""
        if not self.values:
            return None
        pick = min if self.mode == "min" else max
        trial = pick(self.values, key=lambda t: self.values[t])
        return trial, self.values[trial]

    def eta_s(self) -> float | None:
        """Seconds until every trial has ended, at this driver's rate so far (None: no rate)."""
        trained = sum(pace.step - pace.baseline for pace in self.paces.values())
        elapsed = self.last_at - self.started_at
        if trained <= 0 or elapsed <= 0:
            return None
        done = sum(min(self.paces[t].step, self.num_steps) for t in self.running if t in self.paces)
        left = (self.num_samples - len(self.ended)) * self.num_steps - done
        return max(0.0, left / (trained / elapsed))


def ended_state(state: str) -> str:
    """How the view counts a trial's final ``status.json`` state."""
    if state == "finished":
        return "finished"
    return "failed" if state in ("failed", "cancelled") else "stopped early"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h07m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_progress(tally: SweepTally, *, with_ended: bool = True) -> str:
    """One line: ended of total by state, running, ETA, each running trial's steps/s, best."""
    counts = tally.counts()
    parts = []
    if with_ended:
        ended = ", ".join(f"{counts[s]} {s}" for s in ENDED_STATES if counts[s])
        parts.append(
            f"{len(tally.ended)}/{tally.num_samples} ended" + (f" ({ended})" if ended else "")
        )
    parts.append(f"{counts['running']} running, {counts['pending']} pending")
    eta = tally.eta_s()
    parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA ?")
    rates = []
    for trial in sorted(tally.running)[:MAX_TRIAL_RATES]:
        rate = tally.paces[trial].steps_per_s() if trial in tally.paces else None
        step = tally.paces[trial].step if trial in tally.paces else 0
        rates.append(f"{trial} {step}/{tally.num_steps}" + (f" {rate:.1f} st/s" if rate else ""))
    if len(tally.running) > MAX_TRIAL_RATES:
        rates.append(f"+{len(tally.running) - MAX_TRIAL_RATES} more")
    if rates:
        parts.append(", ".join(rates))
    best = tally.best()
    if best is not None:
        parts.append(f"best {best[0]} {tally.metric}={best[1]:.4g}")
    return " | ".join(parts)


class ProgressView(Protocol):
    """Where the live view goes: a terminal bar or plain lines."""

    def update(self, tally: SweepTally, now: float) -> None:
        """The tally changed (a report)."""

    def event(self, tally: SweepTally, message: str) -> None:
        """Something happened worth a line of its own (a trial ended)."""

    def close(self) -> None:
        """The sweep's driver is done."""


class LineView:
    """Plain lines (SLURM logs): one per event, and a status line at most every ``interval_s``."""

    def __init__(
        self, emit: Callable[[str], None], *, interval_s: float = LINE_INTERVAL_S, now: float
    ) -> None:
        self.emit = emit
        self.interval_s = interval_s
        self.last_at = now

    def update(self, tally: SweepTally, now: float) -> None:
        """A status line, when ``interval_s`` has passed since the last line."""
        if now - self.last_at >= self.interval_s:
            self.last_at = now
            self.emit(format_progress(tally))

    def event(self, tally: SweepTally, message: str) -> None:
        """The event and the status, on one line."""
        self.emit(f"{message} | {format_progress(tally)}")

    def close(self) -> None:
        """Nothing to close."""


class BarView:
    """A tqdm bar of trials ended, its postfix the running trials' speeds and the ETA."""

    def __init__(self, tally: SweepTally, *, name: str, file: TextIO) -> None:
        self.bar = tqdm(
            total=tally.num_samples,
            desc=f"sweep {name}",
            unit="trial",
            file=file,
            dynamic_ncols=True,
            bar_format="{desc} {bar:20} {n_fmt}/{total_fmt} ended{postfix}",  # tqdm adds ", "
        )
        self.bar.set_postfix_str(format_progress(tally, with_ended=False), refresh=True)

    def update(self, tally: SweepTally, now: float) -> None:
        """Redraw the bar with the tally's counts."""
        self.bar.n = len(tally.ended)
        self.bar.set_postfix_str(format_progress(tally, with_ended=False), refresh=True)

    def event(self, tally: SweepTally, message: str) -> None:
        """The event goes above the bar; the bar moves on."""
        self.bar.write(message, file=self.bar.fp)
        self.update(tally, time.monotonic())

    def close(self) -> None:
        """Leave the final bar on screen."""
        self.bar.close()


class SweepProgress(tune.Callback):
    """Tune's callbacks into the live view; ``on_trial_end`` runs as each trial ends.

    Args:
        tally: the facts to keep (see :class:`SweepTally`).
        view: where they go (:class:`BarView` on a terminal, else :class:`LineView`).
        name_of: the trial directory's name of a Tune trial.
        on_trial_end: called with that name when a trial ends (the leaderboard is rewritten).
        describe_end: extra words for an ended trial (its test-split score), or "".

    """

    def __init__(
        self,
        tally: SweepTally,
        view: ProgressView,
        *,
        name_of: Callable[[Trial], str],
        on_trial_end: Callable[[str], None],
        describe_end: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tally = tally
        self.view = view
        self.name_of = name_of
        self.on_trial_end = on_trial_end
        self.describe_end = describe_end
        self.clock = clock

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        """Record the trial's step and metric."""
        value = result.get(self.tally.metric)
        number = float(value) if isinstance(value, (int, float)) else None
        now = self.clock()
        self.tally.report(self.name_of(trial), int(result.get(names.STEP, 0)), number, now)
        self.view.update(self.tally, now)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Record whether the trial finished or was stopped early."""
        name = self.name_of(trial)
        pace = self.tally.paces.get(name)
        finished = pace is not None and pace.step >= self.tally.num_steps
        self.tally.end(name, "finished" if finished else "stopped early", self.clock())
        self.view.event(self.tally, f"{name} {self.tally.ended[name]}{self.describe_end(name)}")
        self.on_trial_end(name)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        """Record a failed trial."""
        name = self.name_of(trial)
        self.tally.end(name, "failed", self.clock())
        self.view.event(self.tally, f"{name} failed (see its logs/)")
        self.on_trial_end(name)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        """Close the view."""
        self.view.close()


def make_view(
    tally: SweepTally, *, name: str, emit: Callable[[str], None], use_bar: bool
) -> ProgressView:
    """A bar on stderr when ``use_bar`` (a terminal), else plain lines through ``emit``."""
    if use_bar:
        return BarView(tally, name=name, file=sys.stderr)
    return LineView(emit, now=tally.started_at)
