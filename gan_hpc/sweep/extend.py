"""``gan-hpc sweep extend``: more trials for a sweep, continuing the same Optuna study.

The sweep directory is the state, so extending is one durable change: ``tune.num_samples`` in
``<sweep>/spec.yaml`` grows by N (written atomically, under the driver lock) before anything
launches. The driver that follows is an ordinary resume: it adopts unfinished trials, then asks
the study (``optuna.journal``, every earlier trial with its value) for new ones until the sweep
holds the new total. A driver killed at any moment is continued by ``gan-hpc sweep resume``
with that total; trials are counted by their directories, so none is lost or run twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gan_hpc._logging import get_logger
from gan_hpc.errors import SweepError
from gan_hpc.sweep.directory import SPEC_FILE
from gan_hpc.sweep.spec import SweepSpec, load_sweep_spec
from gan_hpc.sweep.spec_change import accept_spec_change

logger = get_logger(__name__)

NUM_SAMPLES_KEY = "tune.num_samples"


def read_extendable(sweep_dir: Path, num_more: int) -> SweepSpec:
    """The sweep's stored spec, after checking that ``num_more`` trials can be added to it.

    Raises:
        SweepError: ``num_more`` < 1, or ``sweep_dir`` holds no ``spec.yaml``.

    """
    if num_more < 1:
        raise SweepError(f"--num-samples {num_more}: give how many trials to add (1 or more)")
    spec_path = Path(sweep_dir) / SPEC_FILE
    if not spec_path.is_file():
        raise SweepError(f"{sweep_dir}: no {SPEC_FILE}; is it a sweep directory?")
    return load_sweep_spec(spec_path)


def extend_spec(
    sweep_dir: Path,
    num_more: int,
    *,
    overrides: Sequence[str] = (),
    allowed: Sequence[str] = (),
    lock_path: Path,
) -> SweepSpec:
    """Store the sweep's spec with ``num_more`` more trials; return it.

    Args:
        sweep_dir: the sweep directory (holds ``spec.yaml``).
        num_more: how many trials to add to ``tune.num_samples`` (1 or more).
        overrides: ``--set`` values applied to the stored spec, under the resume rules.
        allowed: dotted keys the overrides may change (``--allow-spec-change``).
        lock_path: the sweep's driver lock: a running driver's spec is never changed.

    Raises:
        SweepError: ``num_more`` < 1, not a sweep directory, a driver runs the sweep, or a
            change the resume rules refuse.

    """
    total = read_extendable(sweep_dir, num_more).tune.num_samples + num_more
    spec = load_sweep_spec(sweep_dir / SPEC_FILE, [*overrides, f"{NUM_SAMPLES_KEY}={total}"])
    accept_spec_change(sweep_dir, spec, [*allowed, NUM_SAMPLES_KEY], lock_path=lock_path)
    logger.info("%s: extended to %d trials", sweep_dir, total)
    return spec
