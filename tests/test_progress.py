"""The live view: the tally's facts, one rendered line, a bar on a terminal, lines elsewhere."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

from gan_hpc.sweep.progress import (
    BarView,
    LineView,
    SweepTally,
    TrialPace,
    format_duration,
    format_progress,
)


def _tally() -> SweepTally:
    """4 trials of 100 steps at t=0..10: one finished, one stopped, two running at 2 and 4 st/s."""
    tally = SweepTally(num_samples=4, num_steps=100, metric="rmse", mode="min", started_at=0.0)
    tally.report("trial_0000", 10, 0.9, at=0.0)
    tally.report("trial_0000", 100, 0.5, at=5.0)
    tally.end("trial_0000", "finished", at=5.0)
    tally.report("trial_0001", 10, 0.8, at=0.0)
    tally.end("trial_0001", "stopped early", at=6.0)
    tally.report("trial_0002", 0, None, at=0.0)
    tally.report("trial_0002", 20, 0.7, at=10.0)
    tally.report("trial_0003", 0, None, at=5.0)
    tally.report("trial_0003", 20, 0.6, at=10.0)
    return tally


def test_the_line_holds_counts_eta_speeds_and_the_best() -> None:
    tally = _tally()
    assert tally.counts() == {
        "finished": 1,
        "stopped early": 1,
        "failed": 0,
        "running": 2,
        "pending": 0,
    }
    # 2 trials left x 100 steps - 40 done, at the 150 steps trained in 10 s
    assert tally.eta_s() == 160 / 15
    assert format_progress(tally) == (
        "2/4 ended (1 finished, 1 stopped early) | 2 running, 0 pending | ETA 11s | "
        "trial_0002 20/100 2.0 st/s, trial_0003 20/100 4.0 st/s | best trial_0000 rmse=0.5"
    )


def test_eta_counts_only_the_steps_this_driver_trained() -> None:
    tally = SweepTally(num_samples=3, num_steps=100, metric="m", mode="max", started_at=0.0)
    assert format_progress(tally) == "0/3 ended | 0 running, 3 pending | ETA ?"
    tally.adopted = {"trial_0000"}  # a killed driver's trial, at step 50 when adopted
    tally.report("trial_0000", 50, 0.1, at=1.0)
    assert tally.eta_s() is None  # nothing trained by this driver yet
    tally.report("trial_0000", 60, 0.2, at=2.0)
    assert tally.eta_s() == (300 - 60) / (10 / 2.0)
    assert [format_duration(s) for s in (5, 185, 7620)] == ["5s", "3m05s", "2h07m"]
    assert TrialPace(10, 0.0, 20, 0.1).steps_per_s() is None  # two reports handed over at once
    assert TrialPace(10, 0.0, 20, 2.0).steps_per_s() == 5.0
    assert [format_duration(s) for s in (5, 185, 7620)] == ["5s", "3m05s", "2h07m"]
    assert TrialPace(10, 0.0, 20, 0.1).steps_per_s() is None  # two reports handed over at once
    assert TrialPace(10, 0.0, 20, 2.0).steps_per_s() == 5.0


def test_plain_lines_come_per_event_and_at_most_every_interval() -> None:
    lines: list[str] = []
    view = LineView(lines.append, interval_s=30.0, now=0.0)
    tally = _tally()
    view.update(tally, 10.0)
    view.update(tally, 29.0)
    assert lines == []
    view.update(tally, 31.0)
    view.update(tally, 40.0)
    assert lines == [format_progress(tally)]
    view.event(tally, "trial_0001 stopped early")
    assert lines[-1] == f"trial_0001 stopped early | {format_progress(tally)}"


def test_the_bar_shows_trials_ended_and_writes_events_above_it() -> None:
    stream = io.StringIO()
    tally = _tally()
    view = BarView(tally, name="toy", file=stream)
    view.update(tally, 10.0)
    view.event(tally, "trial_0001 stopped early")
    view.close()
    text = stream.getvalue()
    assert "sweep toy" in text and "2/4 ended" in text and "ETA 11s" in text
    assert "trial_0003 20/100 4.0 st/s" in text
    assert "trial_0001 stopped early\n" in text


def test_a_terminal_gets_the_bar() -> None:
    """Through a real pseudo-terminal: the bar redraws in place (carriage returns)."""
    code = (
        "import sys; from gan_hpc.sweep.progress import make_view, SweepTally\n"
        "t = SweepTally(num_samples=2, num_steps=10, metric='m', mode='min', started_at=0.0)\n"
        "v = make_view(t, name='toy', emit=print, use_bar=sys.stderr.isatty())\n"
        "t.report('trial_0000', 5, 1.0, at=0.0); v.update(t, 1.0); v.close()\n"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    with subprocess.Popen([sys.executable, "-c", code], stderr=follower, env=env) as process:
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    os.close(leader)
    assert process.returncode == 0, output
    text = output.decode()
    assert "\r" in text and "sweep toy" in text and "0/2 ended" in text
