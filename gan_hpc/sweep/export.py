"""Export the best generators of a sweep as self-contained bundles (:mod:`gan_hpc.bundle.load`).

:func:`export_sweep` ranks the trials as the leaderboard does (gate first, then the score, every
figure from one checkpoint: the best or the last) and writes, for each of the top K, a folder
``<out>/<rank>-<trial_id>/`` plus ``<out>/leaderboard.csv`` of what it exported. A bundle is
assembled in a hidden temporary folder beside its target, loaded back with
:func:`~gan_hpc.bundle.load.load_generator` (so a bundle that would not load is never published),
then renamed into place; an existing bundle is replaced only with ``force``. A single trial
directory (``gan-hpc train --out DIR``) is exported alone by :func:`export_trial`, and
:func:`trial_samples_figure` draws a checkpoint's model-card picture without writing a bundle.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import difflib
import hashlib
import io
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors
import safetensors.torch
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from gan_hpc import __version__
from gan_hpc.arguments import DEFAULT_TOP_K
from gan_hpc.bundle.load import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    CARD_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    PICTURE_FILE,
    PROGRAM_FILE,
    TRANSFORM_FILE,
    WEIGHTS_FILE,
    SampleGenerator,
    describe_bundle,
    load_generator,
)
from gan_hpc.bundle.model_card import model_card, samples_figure, save_figure, validation_data
from gan_hpc.config import ConvergenceConfig, Mode, TrialConfig, is_quality_metric
from gan_hpc.config_validation import config_to_dict
from gan_hpc.convergence import better_mode, gate_holds
from gan_hpc.data.datasets import load_dataset
from gan_hpc.data.transform import transform_from_dict
from gan_hpc.data.types import DataSchema
from gan_hpc.errors import CheckpointError, GanHpcError, SpecError, SweepError
from gan_hpc.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    fsync_dir,
    read_json,
)
from gan_hpc.quality_names import TAB_COLUMN_PREFIX
from gan_hpc.sweep.directory import (
    LEADERBOARD_FILE,
    SPEC_FILE,
    TRIALS_DIR,
    TrialRecord,
    collect_trials,
    read_baselines,
    read_spec,
)
from gan_hpc.sweep.leaderboard import format_leaderboard
from gan_hpc.sweep.rank import METRIC_COLUMNS, rank_trials
from gan_hpc.trial.checkpoint import (
    BEST_NAME,
    generator_weights,
    load_checkpoint,
    load_latest_valid,
)
from gan_hpc.trial_dir import CheckpointKind, CheckpointRecord, TrialDir

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ sweeps


def export_sweep(
    sweep_dir: Path,
    out_dir: Path,
    *,
    top_k: int = DEFAULT_TOP_K,
    by: str | None = None,
    mode: Mode | None = None,
    checkpoint: CheckpointKind = "best",
    use_torch_export: bool = False,
    force: bool = False,
) -> list[Path]:
    """Export the top ``top_k`` trials of a sweep as bundles in ``out_dir``.

    Args:
        sweep_dir: the sweep directory (``spec.yaml``, ``trials/``).
        out_dir: where the bundles and ``leaderboard.csv`` go.
        top_k: how many trials to export.
        by: rank by this metric instead of the spec's score (the gate still comes first).
        mode: ``min`` or ``max`` for ``by``; by default the spec's mode when ``by`` is its
            score, ``max`` for :data:`HIGHER_IS_BETTER` metrics, else ``min``.
        checkpoint: export (and rank by) each trial's best or last checkpoint.
        use_torch_export: also write ``generator.pt2`` (skipped with a warning on failure).
        force: replace existing bundles of the same names.

    Returns:
        The bundle folders, best first. A trial whose checkpoint cannot be exported is skipped
        with a warning and the next one takes its place.

    Raises:
        SweepError: not a sweep directory, nothing to export, or a bundle exists (no force).

    """
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    if top_k < 1:
        raise SpecError(f"--top: must be >= 1, got {top_k}")
    spec = read_spec(sweep_dir)
    records = collect_trials(sweep_dir)
    ranking = _ranking(spec.ranking, by, mode, records, sweep_dir)
    # the leaderboard's order: baselines flag trials no better than the floor
    board = rank_trials(
        records, ranking, checkpoint=checkpoint, baselines=read_baselines(sweep_dir)
    )
    candidates = [row for row in board.to_dict(orient="records") if not pd.isna(row["step"])]
    if not candidates:
        raise SweepError(f"{sweep_dir}: no trial has been evaluated yet; nothing to export")
    names = [f"{int(row['rank']):02d}-{row['trial_id']}" for row in candidates]
    taken = [name for name in names[:top_k] if (out_dir / name).exists()]
    if taken and not force:
        raise SweepError(
            f"{out_dir / taken[0]}: already exists; pass --force to replace it or choose "
            "another --out"
        )
    params = {record.trial_id: record.params for record in records}
    bundles: list[Path] = []
    for row, name in zip(candidates, names, strict=True):
        if len(bundles) == top_k:
            break
        extra = {"sweep": spec.name, "rank": int(row["rank"]), "params": params[row["trial_id"]]}
        try:
            bundle = export_trial(
                sweep_dir / TRIALS_DIR / str(row["trial_id"]),
                out_dir / name,
                checkpoint=checkpoint,
                ranking=ranking,
                use_torch_export=use_torch_export,
                force=force,
                extra=extra,
            )
        except CheckpointError as exc:
            logger.warning("skipping trial %s (rank %d): %s", row["trial_id"], row["rank"], exc)
            continue
        bundles.append(bundle)
    if not bundles:
        raise SweepError(f"{sweep_dir}: none of the ranked trials could be exported (see above)")
    if len(bundles) < top_k:
        logger.warning("exported %d of the %d requested trials", len(bundles), top_k)
    rows = [_leaderboard_row(bundle) for bundle in bundles]
    atomic_write_text(out_dir / LEADERBOARD_FILE, format_leaderboard(pd.DataFrame(rows), "csv"))
    return bundles


def _ranking(
    base: ConvergenceConfig,
    by: str | None,
    mode: Mode | None,
    records: list[TrialRecord],
    sweep_dir: Path,
) -> ConvergenceConfig:
    """The spec's ranking, with ``by``/``mode`` replacing its score when given."""
    if by is None:
        if mode is not None:
            raise SpecError("--mode: only with --by METRIC (the spec's score keeps its own mode)")
        return base
    known = sorted(
        {key for r in records for c in (r.best, r.last) if c is not None for key in c.metrics}
    )
    if by not in known:
        close = difflib.get_close_matches(by, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SweepError(
            f"{sweep_dir}: --by {by!r}: no trial reports this metric{hint}; "
            f"known: {', '.join(known) or 'none'}"
        )
    if mode is None:
        # a metric without a better direction (a loss, an accuracy) is minimised
        mode = base.score_mode if by == base.score else better_mode(by) or "min"
    logger.info("ranking by %s (%s)", by, mode)
    # a quality metric is read from the spec's split; any other has only one
    split = base.score_split if is_quality_metric(by) else "test"
    return dataclasses.replace(base, score=by, score_mode=mode, score_split=split)


def _leaderboard_row(bundle: Path) -> dict[str, Any]:
    """One row of ``<out>/leaderboard.csv``, read back from the bundle's metrics.json."""
    info = read_json(bundle / METRICS_FILE)
    metrics = info["metrics"]
    return {
        "rank": info.get("rank"),
        "trial_id": info["trial_id"],
        "bundle": bundle.name,
        "checkpoint": info["checkpoint"],
        "step": info["step"],
        "gate": info["ranking"]["gate"],
        "score": info["ranking"]["score_value"],
        **{name: metrics.get(name) for name in METRIC_COLUMNS},
        **{
            name: value
            for name, value in metrics.items()
            if is_quality_metric(name) and not name.startswith(TAB_COLUMN_PREFIX)
        },
        **dict(info.get("params") or {}),
    }


# ------------------------------------------------------------------------------------ trials


def export_trial(
    trial_dir: Path,
    bundle_dir: Path,
    *,
    checkpoint: CheckpointKind = "best",
    ranking: ConvergenceConfig | None = None,
    use_torch_export: bool = False,
    force: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one trial's best or last checkpoint as a bundle at ``bundle_dir``.

    Args:
        trial_dir: the trial directory.
        bundle_dir: the bundle folder to create (or replace, with ``force``).
        checkpoint: ``best`` (``checkpoints/best.pt``) or ``last`` (the newest valid
            ``step-<N>.pt``); metrics.json takes the step and metrics from that file's own
            record, never from the other one.
        ranking: gate and score recorded in metrics.json (default: the trial's own).
        use_torch_export: also write ``generator.pt2``.
        force: replace an existing ``bundle_dir``.
        extra: more provenance for metrics.json (sweep name, rank, searched parameters).

    Raises:
        CheckpointError: the checkpoint or ``data.json`` is missing, unreadable or inconsistent.
        SweepError: ``bundle_dir`` exists and ``force`` is false.

    """
    trial, bundle_dir = TrialDir(trial_dir), Path(bundle_dir)
    if bundle_dir.exists() and not force:
        raise SweepError(f"{bundle_dir}: already exists; pass --force to replace it")
    checkpoint_path, state, record, config, schema = _checked_checkpoint(trial, checkpoint)
    data_info = _read_data_info(trial, schema)
    weights, source = generator_weights(state, checkpoint_path)
    ranking = ranking or config.convergence
    quality = _checkpoint_quality(trial, checkpoint, int(record["step"]), checkpoint_path, config)
    metrics = {str(k): v for k, v in {**record["metrics"], **quality.get("metrics", {})}.items()}
    # the checkpoint's own record holds its evaluation's figures: quality on the validation split
    validation = {str(k): v for k, v in record["metrics"].items() if is_quality_metric(str(k))}
    scored = CheckpointRecord(step=int(record["step"]), metrics=metrics, validation=validation)
    provenance = {
        "trial_id": trial.path.name,
        "checkpoint": checkpoint,
        "checkpoint_file": checkpoint_path.relative_to(trial.path).as_posix(),
        "step": int(state["step"]),
        "metrics": metrics,
        "ranking": {
            **dataclasses.asdict(ranking),
            "score_value": scored.score(ranking),
            "gate": gate_holds(record["metrics"], ranking),
        },
        "quality": {k: v for k, v in quality.items() if k != "metrics"},
        "seed": config.train.seed,
        "config": config.to_dict(),
        "data": {"source_hash": data_info["source_hash"], "num_rows": data_info.get("num_rows")},
        "weights": source,
        "trial_state": trial.read_status().state,
        "versions": package_versions(),
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{bundle_dir.name}.", suffix=".tmp", dir=bundle_dir.parent)
    )
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the bundle from a group sharing it
    try:
        _write_core(staging, weights, source, config, schema, data_info["transform"])
        atomic_write_json(staging / METRICS_FILE, provenance)
        sampler = load_generator(staging)
        real, note = validation_data(config, data_info["source_hash"], schema)
        save_figure(samples_figure(sampler, real), staging / PICTURE_FILE)
        has_program = use_torch_export and write_program(sampler, staging / PROGRAM_FILE)
        card = model_card(provenance, sampler, picture_note=note, has_program=has_program)
        atomic_write_text(staging / CARD_FILE, card)
        _publish(staging, bundle_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "exported %s (%s, step %d) to %s", trial.path.name, checkpoint, record["step"], bundle_dir
    )
    return bundle_dir


def _checked_checkpoint(
    trial: TrialDir, checkpoint: CheckpointKind
) -> tuple[Path, dict[str, Any], Mapping[str, Any], TrialConfig, DataSchema]:
    """The checkpoint file, its state, its own record, config and data schema, all checked."""
    checkpoint_path, state = _load_trial_checkpoint(trial, checkpoint)
    record = state.get(checkpoint)
    if not isinstance(record, Mapping) or not isinstance(record.get("metrics"), Mapping):
        raise CheckpointError(f"{checkpoint_path}: no '{checkpoint}' record; re-run the trial")
    if int(record["step"]) != int(state["step"]):
        raise CheckpointError(
            f"{checkpoint_path}: its '{checkpoint}' record is for step {record['step']} but it "
            f"holds step {state['step']}; the file is inconsistent, export the other checkpoint"
        )
    try:
        config = TrialConfig.from_dict(state["config"], source=f"{checkpoint_path}: config")
        schema = DataSchema.from_dict(state["schema"])
    except (GanHpcError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint_path}: unreadable config or schema ({exc})") from None
    return checkpoint_path, state, record, config, schema


def trial_samples_figure(trial_dir: Path, *, checkpoint: CheckpointKind = "best") -> Figure:
    """The model card's picture for a trial's checkpoint: samples next to real data.

    The generator is loaded as a bundle would be, from a temporary folder outside the trial
    directory (nothing is written into it); real data is shown when it can be read.

    Raises:
        CheckpointError: the checkpoint or ``data.json`` is missing, unreadable or inconsistent.

    """
    trial = TrialDir(trial_dir)
    checkpoint_path, state, _, config, schema = _checked_checkpoint(trial, checkpoint)
    data_info = _read_data_info(trial, schema)
    weights, source = generator_weights(state, checkpoint_path)
    with tempfile.TemporaryDirectory(prefix="gan-hpc-sampler-") as folder:
        _write_core(Path(folder), weights, source, config, schema, data_info["transform"])
        sampler = load_generator(folder)
        real, _ = validation_data(config, data_info["source_hash"], schema)
        return samples_figure(sampler, real)


def _checkpoint_quality(
    trial: TrialDir, which: CheckpointKind, step: int, checkpoint_path: Path, config: TrialConfig
) -> dict[str, Any]:
    """Held-out quality of the exported checkpoint: from result.json, else computed now.

    result.json's record counts only when it is for the same step (the same weights). A trial
    that never wrote one (stopped early) is scored here when its data can still be read.
    """
    result = trial.read_result()
    record = None if result is None else result.best if which == "best" else result.last
    if record is not None and record.step == step and record.quality is not None:
        return {
            **record.quality,
            "metrics": {k: v for k, v in record.metrics.items() if is_quality_metric(k)},
        }
    if not config.quality.use_at_trial_end:
        return {}
    try:
        data = load_dataset(config.data)
    except GanHpcError as exc:
        logger.warning("%s: held-out quality not computed (%s)", checkpoint_path, exc)
        return {}
    # imported here: `gan-hpc --help` and every other command load this module
    from gan_hpc.bundle.scoring import score_checkpoint

    report = score_checkpoint(checkpoint_path, data, config).to_dict()
    report["metrics"] = {k: v for k, v in report["metrics"].items() if not math.isnan(v)}
    return report


def _load_trial_checkpoint(trial: TrialDir, which: CheckpointKind) -> tuple[Path, dict[str, Any]]:
    """The trial's best.pt, or its newest valid step checkpoint for ``last``."""
    if which == "best":
        path = trial.checkpoints / BEST_NAME
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; the trial has not been evaluated yet")
        return path, load_checkpoint(path)
    loaded = load_latest_valid(trial.checkpoints)
    if loaded is None:
        raise CheckpointError(
            f"{trial.checkpoints}: no valid step-<N>.pt; the trial has not been evaluated yet"
        )
    return loaded.path, loaded.state


def _read_data_info(trial: TrialDir, schema: DataSchema) -> dict[str, Any]:
    """``data.json``, checked against the checkpoint's schema."""
    try:
        info = read_json(trial.data_path)
    except GanHpcError as exc:
        raise CheckpointError(f"{exc}; re-run the trial to write it") from None
    if not isinstance(info, dict) or not {"transform", "schema", "source_hash"} <= set(info):
        raise CheckpointError(f"{trial.data_path}: incomplete; re-run the trial to rewrite it")
    if info["schema"] != schema.to_dict():
        raise CheckpointError(
            f"{trial.data_path}: its schema differs from the checkpoint's; the trial directory "
            "mixes two runs, re-run the trial"
        )
    return info


def _write_core(
    staging: Path,
    weights: Mapping[str, Tensor],
    source: str,
    config: TrialConfig,
    schema: DataSchema,
    transform_state: Mapping[str, Any],
) -> None:
    """Write generator.safetensors, transform.json and config.json (with their checksums)."""
    metadata = {"format": BUNDLE_FORMAT, "format_version": str(BUNDLE_FORMAT_VERSION)}
    weight_bytes = safetensors.torch.save(dict(weights), metadata={**metadata, "weights": source})
    transform_bytes = (json.dumps(transform_state, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_bytes(staging / WEIGHTS_FILE, weight_bytes)
    atomic_write_bytes(staging / TRANSFORM_FILE, transform_bytes)
    try:
        transform = transform_from_dict(transform_state)
    except (GanHpcError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"data.json: unreadable transform ({exc}); re-run the trial"
        ) from None
    described = describe_bundle(config.model, schema, transform)
    atomic_write_json(
        staging / CONFIG_FILE,
        {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "gan_hpc_version": __version__,
            "model": config_to_dict(config.model),
            "schema": schema.to_dict(),
            **described,
            "weights": source,
            "files": {
                WEIGHTS_FILE: hashlib.sha256(weight_bytes).hexdigest(),
                TRANSFORM_FILE: hashlib.sha256(transform_bytes).hexdigest(),
            },
        },
    )


def _publish(staging: Path, target: Path) -> None:
    """Move a finished bundle into place; an old one is renamed aside, then deleted."""
    fsync_dir(staging)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
    fsync_dir(target.parent)


def package_versions() -> dict[str, str]:
    """Versions of the packages a bundle depends on."""
    return {
        "gan_hpc": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------- torch.export


class GeneratorProgram(nn.Module):
    """What ``generator.pt2`` holds: ``(z[, cond]) -> model-space samples`` of a generator."""

    def __init__(self, *, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Model-space samples for latent codes and encoded conditions."""
        return self.generator(z, cond)


def write_program(sampler: SampleGenerator, path: Path) -> bool:
    """Write ``generator.pt2`` with torch.export; False (and a warning) when it cannot.

    The program is checked against the Python sampler on a small batch before it is kept.
    """
    draw = sampler.draw(4, seed=0)
    args = (draw.z,) if draw.cond is None else (draw.z, draw.cond)
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(
            GeneratorProgram(generator=sampler.module).eval(),
            args,
            dynamic_shapes=tuple({0: batch} for _ in args),
        )
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        loaded = torch.export.load(io.BytesIO(buffer.getvalue()))
        with torch.no_grad():
            replayed = loaded.module()(*args)
    except Exception as exc:  # torch.export fails in many ways; the program is optional
        logger.warning("%s: torch.export failed (%s); no %s", sampler.path, exc, PROGRAM_FILE)
        return False
    if not torch.allclose(replayed, draw.x, atol=1e-5):
        logger.warning(
            "%s: the exported program does not reproduce the generator (a random output "
            "head?); no %s",
            sampler.path,
            PROGRAM_FILE,
        )
        return False
    atomic_write_bytes(path, buffer.getvalue())
    return True


# ------------------------------------------------------------------------------------ the CLI


def is_trial_dir(path: Path) -> bool:
    """True for a single trial's directory (``gan-hpc train --out``), not a sweep's.

    A trial directory holds ``config.json`` and ``checkpoints/``; a sweep directory holds
    ``spec.yaml``.
    """
    path = Path(path)
    return (
        (path / "config.json").is_file()
        and (path / "checkpoints").is_dir()
        and not (path / SPEC_FILE).exists()
    )


def run_export(args: argparse.Namespace) -> int:
    """Run ``gan-hpc export``: the bundle folders go to stdout, one a line.

    Raises:
        SweepError: the directory is missing, or ranking options were given for one trial.

    """
    if not args.sweep_dir.is_dir():
        raise SweepError(f"{args.sweep_dir}: no such directory; give a sweep or trial directory")
    if is_trial_dir(args.sweep_dir):
        given = [
            flag
            for flag, value in (("--top", args.top_k), ("--by", args.by), ("--mode", args.mode))
            if value is not None
        ]
        if given:
            raise SweepError(
                f"{args.sweep_dir}: a trial directory is exported alone; drop {', '.join(given)}"
            )
        bundle = export_trial(
            args.sweep_dir,
            args.out,
            checkpoint=args.checkpoint,
            use_torch_export=args.use_torch_export,
            force=args.force,
        )
        sys.stdout.write(f"{bundle}\n")
        return 0
    if not (args.sweep_dir / SPEC_FILE).is_file():
        raise SweepError(
            f"{args.sweep_dir}: neither a sweep directory ({SPEC_FILE}) nor a trial directory "
            "(config.json and checkpoints/)"
        )
    bundles = export_sweep(
        args.sweep_dir,
        args.out,
        top_k=DEFAULT_TOP_K if args.top_k is None else args.top_k,
        by=args.by,
        mode=args.mode,
        checkpoint=args.checkpoint,
        use_torch_export=args.use_torch_export,
        force=args.force,
    )
    sys.stdout.write("".join(f"{bundle}\n" for bundle in bundles))
    return 0
