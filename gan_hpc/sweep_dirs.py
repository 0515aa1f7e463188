"""Which sweep a directory argument names: the sweep directory, or a folder holding one sweep.

One rule for every command: ``sweep run SPEC --out DIR`` makes ``DIR`` the sweep directory (no
``--out``: ``<storage.path>/<name>``), and every command that reads a sweep (``sweep status``,
``resume``, ``extend``, ``report``, ``confirm``, ``export``) takes that directory, or a folder
whose only sweep is one level below it (``runs`` for ``runs/quickstart``).
"""

from __future__ import annotations

from pathlib import Path

from gan_hpc.errors import SweepError
from gan_hpc.trial_dir import SPEC_FILE


def _sweeps_in(path: Path) -> list[Path]:
    """The sweep directories one level below ``path``."""
    return sorted(child for child in path.iterdir() if (child / SPEC_FILE).is_file())


def check_new_sweep_dir(path: Path) -> None:
    """Refuse to start a sweep in a folder of sweeps (``--out`` as a parent, the old rule).

    Raises:
        SweepError: ``path`` holds no sweep of its own but sweep directories below it.

    """
    path = Path(path)
    if not path.is_dir() or (path / SPEC_FILE).is_file():
        return
    sweeps = _sweeps_in(path)
    if sweeps:
        raise SweepError(
            f"--out {path}: holds sweeps ({', '.join(s.name for s in sweeps)}); --out names the "
            f"sweep directory itself, e.g. --out {path / sweeps[0].name}"
        )


def find_sweep_dir(path: Path) -> Path:
    """The sweep directory that ``path`` names.

    Returns ``path`` itself when it holds ``spec.yaml``, or holds no sweep one level below (a
    trial directory, or not a sweep at all: the command then says what it expected); else the
    one sweep directory inside it.

    Raises:
        SweepError: ``path`` is not a directory, or holds several sweeps (they are listed).

    """
    path = Path(path)
    if not path.is_dir():
        raise SweepError(f"{path}: no such directory; give a sweep directory (holds {SPEC_FILE})")
    if (path / SPEC_FILE).is_file():
        return path
    sweeps = _sweeps_in(path)
    if len(sweeps) == 1:
        return sweeps[0]
    if len(sweeps) > 1:
        raise SweepError(
            f"{path}: holds {len(sweeps)} sweeps ({', '.join(s.name for s in sweeps)}); "
            f"give one of them, e.g. {sweeps[0]}"
        )
    return path
