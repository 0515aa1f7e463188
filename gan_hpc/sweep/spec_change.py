"""What may change in a sweep's spec when it is resumed, and refusing the rest in one line.

A sweep directory keeps the resolved spec it was started with (``<sweep>/spec.yaml``). Resuming
with a spec that differs is refused, naming the dotted keys that differ, unless the user allows
those keys (``--allow-spec-change KEYS``). Some keys can never change: they define what the
trials measure and how they are compared (the search space, the objective, the data, the model
and the loss) or where the sweep lives; a sweep with other values is a new sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from gan_hpc._logging import get_logger
from gan_hpc.config_validation import load_yaml
from gan_hpc.errors import SweepError
from gan_hpc.locks import DriverLock
from gan_hpc.sweep.directory import SPEC_FILE, write_spec
from gan_hpc.sweep.spec import SweepSpec, dump_sweep_spec

logger = get_logger(__name__)

# dotted keys (and everything under them) that no flag may change on resume
NEVER_CHANGE: tuple[str, ...] = (
    "name",
    "seed",
    "storage",
    "search",
    "tune.metric",
    "tune.mode",
    "tune.multi_objective_metrics",
    "tune.multi_objective_modes",
    "tune.search_alg",
    "tune.scheduler",
    "base.data",
    "base.model",
    "base.loss",
)


def parse_allowed(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split ``--allow-spec-change`` values (comma-separated, maybe repeated) into keys."""
    if text is None:
        return ()
    parts = [text] if isinstance(text, str) else list(text)
    return tuple(key.strip() for part in parts for key in part.split(",") if key.strip())


def changed_keys(stored: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two spec documents (leaves, lists whole)."""
    if isinstance(stored, Mapping) and isinstance(new, Mapping):
        keys: list[str] = []
        for key in sorted({*stored, *new}, key=str):
            if key not in stored or key not in new:
                keys.append(f"{prefix}{key}")
            else:
                keys += changed_keys(stored[key], new[key], f"{prefix}{key}.")
        return keys
    return [] if stored == new else [prefix.rstrip(".")]


def _covered(key: str, prefixes: Iterable[str]) -> bool:
    """True when ``key`` is one of ``prefixes`` or lies under one of them."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def check_spec_change(sweep_dir: Path, spec: SweepSpec, allowed: Sequence[str] = ()) -> list[str]:
    """Compare ``spec`` with the sweep's stored spec; return the (allowed) keys that differ.

    Args:
        sweep_dir: the sweep directory (its ``spec.yaml`` is the reference).
        spec: the resolved spec of this run (overrides applied).
        allowed: dotted keys or prefixes the user allows to change.

    Returns:
        The dotted keys that differ, all allowed; empty when the specs agree or the directory
        holds no spec yet.

    Raises:
        SweepError: a key differs that is not allowed, or one that can never change.

    """
    stored_path = Path(sweep_dir) / SPEC_FILE
    if not stored_path.exists():
        return []
    stored = load_yaml(stored_path)
    new = yaml.safe_load(dump_sweep_spec(spec))
    changed = changed_keys(stored, new)
    never = [k for k in changed if _covered(k, NEVER_CHANGE)]
    if never:
        raise SweepError(
            f"{stored_path}: the spec differs at {', '.join(never)}, which a resumed sweep can "
            f"never change (never: {', '.join(NEVER_CHANGE)}); undo the change, or start a new "
            "sweep with another --out"
        )
    refused = [k for k in changed if not _covered(k, allowed)]
    if refused:
        raise SweepError(
            f"{stored_path}: the spec differs at {', '.join(refused)}; undo the change, or "
            f"resume with --allow-spec-change {','.join(refused)} if it is safe"
        )
    return changed


def accept_spec_change(
    sweep_dir: Path, spec: SweepSpec, allowed: Sequence[str], *, lock_path: Path
) -> list[str]:
    """Check the change (:func:`check_spec_change`) and store the new spec; returns the keys.

    The new ``spec.yaml`` is written while holding the sweep's driver lock (``lock_path``), so a
    running driver, whose trials read the spec from the directory, is never changed under it:
    it is refused in one line instead.
    """
    changed = check_spec_change(sweep_dir, spec, allowed)
    if not changed:
        return changed
    with DriverLock(lock_path):
        changed = check_spec_change(sweep_dir, spec, allowed)  # again, now that no one drives
        if changed:
            write_spec(sweep_dir, spec)
            logger.warning("%s: spec changed on resume at %s", sweep_dir, ", ".join(changed))
    return changed
