"""TensorBoard HParams of a trial: its searched parameters beside its final metrics.

When a trial ends, :func:`write_trial_hparams` writes ``<trial>/tensorboard/hparams/``: one
event file with the HParams plugin's experiment, session start and session end summaries, and
the final metrics as scalars (``final/<metric>``) at the trial's last step. TensorBoard run on
a sweep's ``trials/`` folder then lists every trial in its HParams dashboard (table, parallel
coordinates, scatter plots). The parameters are the sweep's search keys (read from
``<sweep>/spec.yaml`` next to ``trials/``), or :data:`MAIN_KNOBS` for a trial without a sweep;
the metrics come from ``result.json``'s ``best`` record, the one the leaderboard ranks by.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from gan_hpc.config import is_quality_metric
from gan_hpc.convergence import ALL_CONVERGENCE
from gan_hpc.errors import GanHpcError
from gan_hpc.quality_names import TAB_COLUMN_PREFIX
from gan_hpc.trial_dir import SPEC_FILE, TENSORBOARD_DIR, TrialDir, TrialResult

logger = logging.getLogger(__name__)

HPARAMS_RUN = "hparams"  # <trial>/tensorboard/hparams/: a run of its own, as add_hparams does
METRIC_PREFIX = "final/"  # final metrics' scalar tags, apart from the per-evaluation curves
# The knobs a trial without a sweep is compared by.
MAIN_KNOBS: tuple[str, ...] = (
    "model.family",
    "model.latent_dim",
    "model.generator.depth",
    "model.generator.width",
    "model.discriminator.depth",
    "model.discriminator.width",
    "loss.name",
    "loss.n_critic",
    "optim.generator.lr",
    "optim.discriminator.lr",
    "train.batch_size",
    "train.num_steps",
    "train.seed",
)


def searched_space(trial_dir: Path) -> tuple[list[str], dict[str, list[Any]]]:
    """The trial's sweep's search keys and the values of its ``choice`` entries.

    Returns:
        ``(keys, choices)``: the dotted search keys in the spec's order, or
        :data:`MAIN_KNOBS` when the trial has no readable ``<sweep>/spec.yaml``; and
        ``{key: [values]}`` for the keys searched over a list of choices.

    """
    path = Path(trial_dir).parent.parent / SPEC_FILE  # <sweep>/trials/<trial>
    try:
        document = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("%s: unreadable (%s); comparing trials by the main knobs", path, exc)
        document = None
    search = document.get("search") if isinstance(document, dict) else None
    if not isinstance(search, dict) or not search:
        return list(MAIN_KNOBS), {}
    choices = {
        str(key): list(entry["choice"])
        for key, entry in search.items()
        if isinstance(entry, dict) and isinstance(entry.get("choice"), list)
    }
    return [str(key) for key in search], choices


def trial_hparams(
    config: Mapping[str, Any], keys: list[str]
) -> dict[str, bool | int | float | str]:
    """The trial's value of each key, as TensorBoard takes them (lists as text).

    A key the trial's config lacks (a parameter a condition left out) is left out.
    """
    values: dict[str, bool | int | float | str] = {}
    for key in keys:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        values[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return values


def final_metrics(result: TrialResult) -> dict[str, float]:
    """The convergence and quality metrics of ``result.json``'s best record (finite only)."""
    metrics = result.best.metrics if result.best is not None else {}
    return {
        name: value
        for name, value in metrics.items()
        if (name in ALL_CONVERGENCE or is_quality_metric(name))
        and not name.startswith(TAB_COLUMN_PREFIX)
        and math.isfinite(value)
    }


def write_trial_hparams(trial_dir: Path) -> Path | None:
    """Write (or rewrite) the trial's HParams run; never raises.

    HParams are a view: a trial that cannot write them (no ``result.json`` yet, an unreadable
    file, no tensorboard package) logs a warning and is otherwise unaffected.

    Returns:
        ``<trial>/tensorboard/hparams``, or None when nothing was written.

    """
    trial_dir = Path(trial_dir)
    try:
        trial = TrialDir(trial_dir)
        config = trial.read_config_dict()
        result = trial.read_result()
        if result is None:
            raise GanHpcError(f"{trial.result_path}: missing or unreadable")
        keys, choices = searched_space(trial_dir)
        hparams = trial_hparams(config, keys)
        metrics = final_metrics(result)
        step = result.step
        return _write_run(trial_dir / TENSORBOARD_DIR, hparams, metrics, choices, step)
    except (GanHpcError, OSError, ImportError, TypeError, ValueError) as exc:
        logger.warning("%s: no TensorBoard HParams written (%s)", trial_dir, exc)
        return None


def _write_run(
    tensorboard_dir: Path,
    hparams: dict[str, bool | int | float | str],
    metrics: dict[str, float],
    choices: Mapping[str, list[Any]],
    step: int,
) -> Path:
    """Write the HParams summaries and final scalars into a fresh ``hparams/`` run."""
    # imported here: tensorboard's writer is slow to import and only rank 0 at a trial's end
    from torch.utils.tensorboard.summary import hparams as hparams_summaries
    from torch.utils.tensorboard.summary import scalar
    from torch.utils.tensorboard.writer import FileWriter

    tags = {f"{METRIC_PREFIX}{name}": value for name, value in metrics.items()}
    # TensorBoard wants a discrete domain of the value's own type (an int choice among floats
    # would be refused): keep the domains that fit
    domains = {
        key: values
        for key, values in choices.items()
        if key in hparams and all(type(v) is type(hparams[key]) for v in values)
    }
    experiment, start, end = hparams_summaries(hparams, tags, hparam_domain_discrete=domains)
    tensorboard_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{HPARAMS_RUN}.", dir=tensorboard_dir))
    try:
        writer = FileWriter(str(staging))
        for summary in (experiment, start, end):
            writer.add_summary(summary)
        for tag, value in tags.items():
            writer.add_summary(scalar(tag, value), step)
        writer.close()
        target = tensorboard_dir / HPARAMS_RUN
        if target.exists():  # a rerun's view replaces the old one
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
