"""Held-out quality of a trial's checkpoints, and of the baselines, in data units.

A trial is scored when it ends (:func:`score_trial_records`, called by ``train_trial``), again
by ``gan-hpc sweep confirm``, and the sweep driver scores the baselines once
(:func:`score_baselines`). Every figure is computed from ONE checkpoint file's generator, and
merged into that checkpoint's record of ``result.json``, so a leaderboard row never mixes the
best and the last checkpoint::

    result.json: {"best": {"step", "checkpoint", "metrics": {..., "quality/...": x},
                           "quality": {"sample_sizes": {...}, "notes": [...]}}, "last": {...}}

Tabular generators are scored against the half ``B`` of the held-out split that the baselines
are scored against (:func:`gan_hpc.quality.split_holdout`), so they compare like with like.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from gan_hpc.bundle.load import Draw, SampleGenerator, SignalSamples
from gan_hpc.config import QualityConfig, TrialConfig, is_quality_metric
from gan_hpc.config_validation import config_to_dict
from gan_hpc.data.datasets import PreparedData, Split, load_dataset
from gan_hpc.data.transform import ImageTransform, SignalTransform
from gan_hpc.errors import CheckpointError, GanHpcError
from gan_hpc.files import atomic_write_json, read_json
from gan_hpc.quality import (
    ImageInputs,
    QualityInputs,
    QualityReport,
    SignalInputs,
    TabularInputs,
    cosine_report_from_frames,
    evaluate_quality,
    split_holdout,
    tabular_baselines,
)
from gan_hpc.quality.baselines import image_baselines, signal_baselines
from gan_hpc.trial.checkpoint import generator_weights, load_checkpoint
from gan_hpc.trial.latents import sample_latent
from gan_hpc.trial.losses import get_loss
from gan_hpc.trial.models import build_models
from gan_hpc.trial_dir import QUALITY_KEY, VALIDATION_KEY

logger = logging.getLogger(__name__)

HoldoutSplit = Literal["test", "val"]

COSINE_SAMPLES = 1000  # generated rows of the seed's cosine-distance analysis


def real_tables(data: PreparedData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training and held-out tables in data units (columns and dtypes as read)."""
    return _decode_split(data, data.train), _decode_split(data, data.test)


def _decode_split(data: PreparedData, split: Split) -> Any:
    """A split back in data units through the fitted transform."""
    cond = None if split.cond is None else split.cond.numpy()
    return data.transform.inverse_transform(split.x.numpy(), cond)


def score_generator(
    generator: nn.Module,
    data: PreparedData,
    config: TrialConfig,
    *,
    discriminator: nn.Module | None = None,
    device: torch.device | None = None,
    holdout: HoldoutSplit = "test",
) -> QualityReport:
    """Score one generator on a held-out split (the data kind picks the metrics).

    Args:
        generator: the generator; run in eval mode, its mode is restored afterwards (so a
            training generator can be scored mid-run).
        data: the trial's prepared data.
        config: the trial config (model, loss and quality settings).
        discriminator: the matching discriminator; with tabular data it adds the seed's
            cosine-distance analysis (samples that fooled D against those it caught).
        device: where to run the generator (default: CPU).
        holdout: ``test`` for the reported scores; ``val`` while training, so that choosing
            a checkpoint by quality does not peek at the test split.

    Returns:
        The report; tabular scores are against the held-out half the baselines also use.

    """
    device = device or torch.device("cpu")
    quality = config.quality
    sampler = SampleGenerator(
        module=generator,
        transform=data.transform,
        schema=data.schema,
        model_config=config.model,
        path=Path("generator"),
        device=device,
    )
    modules = [m for m in (generator, discriminator) if m is not None]
    was_training = [m.training for m in modules]
    for module in modules:
        module.eval()
    try:
        split = data.test if holdout == "test" else data.val
        inputs = quality_inputs(sampler, data, quality, holdout=split)
        report = evaluate_quality(data.schema.kind, inputs, config=quality)
        if discriminator is None or not isinstance(inputs, TabularInputs):
            return report
        cosine = _cosine_report(sampler, discriminator, data, config, inputs.real_test, device)
    finally:
        for module, mode in zip(modules, was_training, strict=True):
            module.train(mode)
    return QualityReport(
        metrics={**report.metrics, **cosine},
        sample_sizes={**report.sample_sizes, "cosine_rows": COSINE_SAMPLES},
        notes=report.notes,
    )


def quality_inputs(
    sampler: SampleGenerator,
    data: PreparedData,
    config: QualityConfig,
    *,
    holdout: Split | None = None,
) -> QualityInputs:
    """Generated samples beside held-out real data (default: the test split), in data units."""
    seed = config.seed
    holdout = data.test if holdout is None else holdout
    if data.schema.kind == "tabular":
        real_train, real_test = _decode_split(data, data.train), _decode_split(data, holdout)
        stand_in, holdout = split_holdout(real_test, seed=seed)
        condition = data.schema.condition
        return TabularInputs(
            real_train=real_train,
            real_test=holdout,
            # as many rows as the real-data baseline's stand-in: the same sample sizes
            synthetic=sampler.sample(len(stand_in), seed=seed),
            condition_column=condition.column if condition is not None else None,
        )
    if isinstance(data.transform, ImageTransform):
        draw = sampler.draw(config.num_image_samples, seed=seed)
        classes = data.schema.condition
        return ImageInputs(
            real_train=np.asarray(_decode_split(data, data.train)),
            real_test=np.asarray(_decode_split(data, holdout)),
            generated=np.asarray(sampler.decode(draw)),
            value_range=(data.transform.low, data.transform.high),
            train_labels=_labels(data.train),
            test_labels=_labels(holdout),
            generated_labels=None if draw.cond is None else draw.cond.numpy(),
            num_classes=len(classes.names) if classes is not None else None,
        )
    if isinstance(data.transform, SignalTransform):
        return _signal_inputs(sampler, data, data.transform, seed, holdout)
    raise GanHpcError(f"quality: no metrics for {data.schema.kind} data")


def _labels(split: Split) -> np.ndarray | None:
    """Class labels of a split (the data's, else a class condition's), or None without any."""
    if split.labels is not None:
        return split.labels.numpy()
    if split.cond is None or split.cond.dtype != torch.int64:
        return None
    return split.cond.numpy()


def _signal_inputs(
    sampler: SampleGenerator,
    data: PreparedData,
    transform: SignalTransform,
    seed: int,
    test: Split,
) -> SignalInputs:
    """Curves generated at the held-out conditions, paired row by row with the real ones."""
    rng = torch.Generator().manual_seed(seed)
    model = sampler.model_config
    z = sample_latent(len(test), model.latent_dim, model.latent_distribution, generator=rng)
    x = sampler.generate(z, test.cond)
    generated = sampler.decode(Draw(z=z, cond=test.cond, x=x, seed=seed))
    if not isinstance(generated, SignalSamples):
        raise TypeError(f"{sampler.path}: a signal generator decoded to {type(generated)}")
    real = np.asarray(_decode_split(data, test))
    conditions = None
    if test.cond is not None and data.schema.condition is not None:
        conditions = np.asarray(transform.inverse_condition(test.cond.numpy()))
    axis = transform.axis if transform.axis is not None else np.arange(real.shape[-1])
    return SignalInputs(
        real=real,
        generated=np.asarray(generated.values),
        frequencies=np.asarray(axis, dtype=np.float64),
        conditions=conditions,
        representation=data.config.frf.representation,
    )


@torch.no_grad()
def _cosine_report(
    sampler: SampleGenerator,
    discriminator: nn.Module,
    data: PreparedData,
    config: TrialConfig,
    real: pd.DataFrame,
    device: torch.device,
) -> dict[str, float]:
    """The tabular seed's analysis: cosine distance to real rows, fooled vs caught samples."""
    discriminator = discriminator.to(device).eval()
    draw = sampler.draw(COSINE_SAMPLES, seed=config.quality.seed)
    cond = None if draw.cond is None else draw.cond.to(device)
    fake_scores = discriminator(draw.x.to(device), cond).float().flatten().cpu()
    threshold = get_loss(config.loss.name).decision_threshold
    if threshold is None:  # a critic: between its real and fake score levels, as in training
        test_cond = None if data.test.cond is None else data.test.cond.to(device)
        real_scores = discriminator(data.test.x.to(device), test_cond).float().flatten().cpu()
        threshold = 0.5 * (real_scores.mean().item() + fake_scores.mean().item())
    is_fooled = (fake_scores > threshold).numpy()
    rng = np.random.default_rng(config.quality.seed)
    return cosine_report_from_frames(sampler.decode(draw), is_fooled, real, rng=rng)


def score_checkpoint(
    checkpoint_path: Path,
    data: PreparedData,
    config: TrialConfig,
    *,
    device: torch.device | None = None,
) -> QualityReport:
    """Score the generator (the EMA copy when there is one) saved in a trial checkpoint.

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or not a trial checkpoint.

    """
    state = load_checkpoint(checkpoint_path)
    weights, _ = generator_weights(state, checkpoint_path)
    generator, discriminator = build_models(config.model, data.schema)
    try:
        generator.load_state_dict(weights)
        discriminator.load_state_dict(state["discriminator"])
    except (KeyError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise CheckpointError(
            f"{checkpoint_path}: weights do not fit the trial's config ({reason}); the trial "
            "directory mixes two runs, re-run the trial"
        ) from None
    return score_generator(generator, data, config, discriminator=discriminator, device=device)


def score_trial_records(
    trial_path: Path,
    records: Mapping[str, Mapping[str, Any] | None],
    data: PreparedData,
    config: TrialConfig,
    *,
    device: torch.device | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Score each record's own checkpoint and merge the scores into that record.

    Args:
        trial_path: the trial directory (records name checkpoints relative to it).
        records: ``{"best": record, "last": record}`` as ``result.json`` holds them.
        data: the trial's prepared data.
        config: the trial config.
        device: where to run the generators.

    Returns:
        The records with the test split's quality metrics in their ``metrics`` and a
        ``quality`` entry (sample sizes, notes, seconds). Quality figures the record had from
        its evaluation (the validation split) move to its ``validation`` entry. A record whose
        checkpoint cannot be scored keeps its metrics and gets the reason in
        ``quality.error``; nothing already trained is lost.

    """
    scored: dict[str, dict[str, Any] | None] = {}
    by_checkpoint: dict[str, dict[str, Any]] = {}
    for which, record in records.items():
        if record is None:
            scored[which] = None
            continue
        checkpoint = str(record["checkpoint"])
        if checkpoint not in by_checkpoint:  # best and last are often the same file
            by_checkpoint[checkpoint] = _score_or_reason(
                trial_path / checkpoint, data, config, device
            )
        outcome = by_checkpoint[checkpoint]
        merged = dict(record)
        evaluation = {k: v for k, v in record["metrics"].items() if not is_quality_metric(k)}
        validation = {k: v for k, v in record["metrics"].items() if is_quality_metric(k)}
        merged["metrics"] = {**evaluation, **outcome.get("metrics", {})}  # no stale scores
        merged[QUALITY_KEY] = {k: v for k, v in outcome.items() if k != "metrics"}
        if validation:
            merged[VALIDATION_KEY] = validation
        scored[which] = merged
    return scored


def _score_or_reason(
    checkpoint_path: Path, data: PreparedData, config: TrialConfig, device: torch.device | None
) -> dict[str, Any]:
    """The report of one checkpoint as a JSON-ready dict, or the reason it could not be scored."""
    started = time.perf_counter()
    try:
        report = score_checkpoint(checkpoint_path, data, config, device=device)
    except GanHpcError as exc:
        logger.warning("quality of %s not computed: %s", checkpoint_path, exc)
        return {"error": str(exc)}
    except Exception as exc:  # a scoring bug must not cost the trial its result.json
        logger.exception("quality of %s not computed", checkpoint_path)
        return {"error": f"{checkpoint_path}: scoring failed ({type(exc).__name__}: {exc})"}
    # a metric that could not be computed is left out of the record, not written as null
    metrics = {k: v for k, v in report.metrics.items() if not math.isnan(v)}
    return {
        "metrics": metrics,
        "sample_sizes": dict(report.sample_sizes),
        "notes": list(report.notes),
        "seconds": round(time.perf_counter() - started, 3),
    }


def score_baselines(data: PreparedData, config: TrialConfig) -> dict[str, QualityReport]:
    """The reference rows of the data's kind, scored like the generators (in data units).

    - tables: ``real_data`` (ceiling) and ``independent_marginals`` (floor);
    - signals: ``real_data`` (replicate real curves at the held-out conditions, else the curves
      themselves) and ``mean_curve`` (the mean training curve at every condition);
    - images: ``real_data`` (the validation split's real images) and ``independent_pixels``.

    See :mod:`gan_hpc.quality.baselines`; the sample sizes are in each report.
    """
    quality = config.quality
    condition = data.schema.condition
    with _quality_threads(quality):
        if data.schema.kind == "tabular":
            real_train, real_test = real_tables(data)
            return tabular_baselines(
                real_train,
                real_test,
                quality,
                condition_column=condition.column if condition is not None else None,
            )
        if isinstance(data.transform, ImageTransform):
            return image_baselines(
                np.asarray(_decode_split(data, data.train)),
                np.asarray(_decode_split(data, data.test)),
                np.asarray(_decode_split(data, data.val)),
                quality,
                value_range=(data.transform.low, data.transform.high),
                train_labels=_labels(data.train),
                test_labels=_labels(data.test),
                other_labels=_labels(data.val),
                num_classes=len(condition.names) if condition is not None else None,
                is_conditional=condition is not None and condition.kind == "class",
            )
        if isinstance(data.transform, SignalTransform):
            transform = data.transform
            real_test = np.asarray(_decode_split(data, data.test))
            axis = transform.axis if transform.axis is not None else np.arange(real_test.shape[-1])
            return signal_baselines(
                np.asarray(_decode_split(data, data.train)),
                real_test,
                quality,
                frequencies=np.asarray(axis, dtype=np.float64),
                train_conditions=_signal_conditions(data, transform, data.train),
                test_conditions=_signal_conditions(data, transform, data.test),
                representation=data.config.frf.representation,
            )
    raise GanHpcError(f"quality: no baselines for {data.schema.kind} data")


def _signal_conditions(
    data: PreparedData, transform: SignalTransform, split: Split
) -> np.ndarray | None:
    """A split's continuous conditions in data units, or None (unconditional data)."""
    if split.cond is None or data.schema.condition is None:
        return None
    return np.asarray(transform.inverse_condition(split.cond.numpy()))


@contextmanager
def _quality_threads(config: QualityConfig) -> Iterator[None]:
    """Torch and OpenMP/BLAS threads capped at ``config.num_threads`` (as for a generator)."""
    if config.num_threads is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(config.num_threads)
    try:
        with threadpool_limits(limits=config.num_threads):
            yield
    finally:
        torch.set_num_threads(threads)


def write_baselines(
    path: Path,
    config: TrialConfig,
    *,
    data: PreparedData | None = None,
    emit: Callable[[str], None] = logger.info,
) -> dict[str, Any] | None:
    """Score the baselines of a sweep's data once and write them to ``path`` atomically.

    Every data kind gets a ceiling (``real_data``) and a floor (tables: independent
    marginals, signals: the mean curve, images: independent pixels); see
    :func:`score_baselines`. An existing file for the same data and quality settings is
    kept; nothing is written when ``config.quality.use_at_trial_end`` is off.

    ``data`` is ``config.data`` already loaded (default: load it here).

    Returns:
        The document written (or kept): ``{"key", "reports": {name: report}, "seconds"}``,
        each report with its metrics, sample sizes and notes; or None.

    """
    if not config.quality.use_at_trial_end:
        return None
    data = load_dataset(config.data) if data is None else data
    key = {
        "source_hash": data.source_hash,
        "data": config_to_dict(config.data),
        "quality": config_to_dict(config.quality),
    }
    if path.is_file():
        try:
            existing = read_json(path)
        except GanHpcError:
            existing = None
        if isinstance(existing, dict) and existing.get("key") == key:
            return existing
    emit(f"scoring the {data.schema.kind} baselines ({_BASELINE_WORDS[data.schema.kind]})")
    started = time.perf_counter()
    reports = score_baselines(data, config)
    document = {
        "key": key,
        "reports": {name: report.to_dict() for name, report in reports.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    atomic_write_json(path, document)
    return document


_BASELINE_WORDS = {
    "tabular": "real data, independent marginals",
    "signal": "real curves, the mean curve",
    "image": "real images, independent pixels",
}
