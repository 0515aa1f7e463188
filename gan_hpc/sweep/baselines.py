"""A sweep's baselines (``baselines.json``), scored by a child process while the trials run.

Scoring loads the data, torch, scikit-learn and scipy. In the driver they would stay loaded for
the whole sweep (about 0.2 GiB) and their seconds would come before the first trial. The child
(``python -m gan_hpc.sweep.baselines SWEEP_DIR``) first reads the data, so a file that cannot be
read still stops the sweep with one line, then imports the scorers and scores at a lower
priority (the driver waits for the scores only at the sweep's end) and writes the file
atomically. It dies with the driver; the next driver scores again unless the file is there for
the same settings.

The child speaks in lines on its stdout: ``loaded`` once the data is read, ``message <text>``
for the live view, ``error <text>`` for a one-line error. The driver reads up to ``loaded`` as
the sweep starts and the rest at its end. Anything else the child prints, a traceback included,
goes to ``<sweep_dir>/baselines.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from gan_hpc._logging import get_logger
from gan_hpc.errors import GanHpcError
from gan_hpc.launchers.base import die_with_parent
from gan_hpc.sweep.directory import BASELINES_FILE, read_spec

logger = get_logger(__name__)

LOG_FILE = "baselines.log"
_LOADED, _MESSAGE, _ERROR = "loaded", "message ", "error "
SCORING_NICENESS = 10  # added to the child's niceness once it has read the data


class BaselinesJob:
    """The child scoring a sweep's baselines; see the module docstring for its protocol."""

    def __init__(self, sweep_dir: Path, *, emit: Callable[[str], None]) -> None:
        self.sweep_dir = sweep_dir
        self.emit = emit
        with (sweep_dir / LOG_FILE).open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gan_hpc.sweep.baselines", str(sweep_dir)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=die_with_parent,
            )
        self.error: str | None = None

    def check_data(self) -> None:
        """Wait until the child has read the data; raise its one-line error if it could not."""
        self._read(until_loaded=True)
        if self.error is not None:
            self.process.wait()
            raise GanHpcError(self.error)

    def finish(self) -> None:
        """Wait for the child; a failed scoring is a warning (the leaderboard has no baselines)."""
        self._read(until_loaded=False)
        if self.process.wait() != 0 and self.error is None:
            self.error = f"scoring failed (exit {self.process.returncode})"
        if self.error is not None:
            logger.warning(
                "%s: baselines not scored: %s (details: %s)",
                self.sweep_dir,
                self.error,
                self.sweep_dir / LOG_FILE,
            )

    def _read(self, *, until_loaded: bool) -> None:
        """Act on the child's lines, up to ``loaded`` or to its end."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if line == _LOADED:
                if until_loaded:
                    return
            elif line.startswith(_MESSAGE):
                self.emit(line[len(_MESSAGE) :])
            elif line.startswith(_ERROR):
                self.error = line[len(_ERROR) :]


def main(argv: Sequence[str]) -> int:
    """``python -m gan_hpc.sweep.baselines SWEEP_DIR``: read the data, then score the baselines."""
    (sweep_dir,) = (Path(arg) for arg in argv)
    try:
        from gan_hpc.data.datasets import load_dataset

        config = read_spec(sweep_dir).base
        data = load_dataset(config.data)
        _say(_LOADED)  # the driver goes on; it reads what follows at the sweep's end
        # the scoring is not awaited before the sweep's end: it takes the CPU the driver's
        # start-up, the first trainer and the trials leave over, its imports included
        os.nice(SCORING_NICENESS)
        from gan_hpc.bundle.scoring import write_baselines

        write_baselines(
            sweep_dir / BASELINES_FILE, config, data=data, emit=lambda text: _say(_MESSAGE + text)
        )
    except GanHpcError as exc:
        _say(_ERROR + str(exc).replace("\n", " "))
        return 1
    return 0


def _say(*lines: str) -> None:
    """Lines of the protocol to the driver, at once."""
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
