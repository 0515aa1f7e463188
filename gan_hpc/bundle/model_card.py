"""The model card of a bundle: a picture of samples next to real data, and its README.md.

The picture shows an image grid, FRF curves generated at the conditions of real validation
curves, or tabular marginals; when the trial's data cannot be read (moved, another machine)
the samples are shown alone and the card says why. Figures use matplotlib's object API.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gan_hpc.bundle.load import (
    CONFIG_FILE,
    METRICS_FILE,
    PICTURE_FILE,
    PROGRAM_FILE,
    TRANSFORM_FILE,
    WEIGHTS_FILE,
    SampleGenerator,
    SignalSamples,
)
from gan_hpc.config import TrialConfig
from gan_hpc.data.datasets import PreparedData, load_dataset
from gan_hpc.data.types import DataSchema
from gan_hpc.errors import GanHpcError
from gan_hpc.files import atomic_write_bytes
from gan_hpc.trial.visuals import MAX_MARGINAL_COLUMNS, frf_figure, image_grid, marginals_figure

logger = logging.getLogger(__name__)

NUM_CARD_IMAGES = 32
NUM_CARD_CURVES = 4
NUM_CARD_ROWS = 500


def validation_data(
    config: TrialConfig, source_hash: str, schema: DataSchema
) -> tuple[PreparedData | None, str]:
    """The trial's data (for its validation split), or None and why not (for the card)."""
    try:
        data = load_dataset(config.data)
    except (GanHpcError, OSError) as exc:
        logger.warning("real data not reachable for the model card: %s", exc)
        return None, f"Real data was not reachable ({str(exc)[:200]}), so samples are shown alone."
    if data.schema.to_dict() != schema.to_dict():
        return (
            None,
            "The data has changed since training (its schema differs), so samples are shown alone.",
        )
    if len(data.val) == 0:
        return None, "The validation split is empty, so samples are shown alone."
    note = "Generated samples next to real samples of the validation split."
    if data.source_hash != source_hash:
        note += " The data file has changed since training (its SHA-256 differs)."
    return data, note


def samples_figure(sampler: SampleGenerator, real: PreparedData | None) -> Figure:
    """Generated samples next to real validation data (alone when ``real`` is None).

    Images: two grids; signals: curves at the real samples' conditions (first channel);
    tables: marginals of every column (up to :data:`~gan_hpc.trial.visuals.MAX_MARGINAL_COLUMNS`).
    """
    if sampler.kind == "image":
        return _image_figure(sampler, real)
    if sampler.kind == "signal":
        return _signal_figure(sampler, real)
    count = NUM_CARD_ROWS if real is None else min(NUM_CARD_ROWS, len(real.val))
    fake = sampler.sample(count, seed=0)
    if real is None:
        return _marginals_alone(cast(pd.DataFrame, fake))
    real_cond = None if real.val.cond is None else real.val.cond[:count].numpy()
    frame = real.transform.inverse_transform(real.val.x[:count].numpy(), real_cond)
    return marginals_figure(cast(pd.DataFrame, frame), cast(pd.DataFrame, fake))


def _image_figure(sampler: SampleGenerator, real: PreparedData | None) -> Figure:
    """A grid of generated images beside a grid of real ones with the same labels."""
    count = NUM_CARD_IMAGES if real is None else min(NUM_CARD_IMAGES, len(real.val))
    draw = sampler.draw(count, seed=0)
    cond = draw.cond if real is None or real.val.cond is None else real.val.cond[:count]
    panels = [("generated", sampler.generate(draw.z, cond).numpy())]
    if real is not None:
        panels.append(("real (validation)", real.val.x[:count].numpy()))
    figure = Figure(figsize=(4.2 * len(panels), 4.4))
    for index, (title, images) in enumerate(panels, start=1):
        grid = image_grid(images, num_columns=min(8, len(images)))
        ax = figure.add_subplot(1, len(panels), index)
        picture = grid.transpose(1, 2, 0) if len(grid) == 3 else grid[0]
        ax.imshow(picture, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(title)
        ax.axis("off")
    figure.tight_layout()
    return figure


def _signal_figure(sampler: SampleGenerator, real: PreparedData | None) -> Figure:
    """Generated curves at the conditions of real validation curves (first channel)."""
    count = NUM_CARD_CURVES if real is None else min(NUM_CARD_CURVES, len(real.val))
    draw = sampler.draw(count, seed=0)
    cond = draw.cond if real is None or real.val.cond is None else real.val.cond[:count]
    fake = cast(
        SignalSamples,
        sampler.decode(dataclasses.replace(draw, cond=cond, x=sampler.generate(draw.z, cond))),
    )
    titles = [f"sample {i}" for i in range(count)]
    if fake.conditions is not None:
        titles = [
            ", ".join(f"{k}={v:.3g}" for k, v in row.items())
            for row in fake.conditions.to_dict(orient="records")
        ]
    if real is not None:
        real_values = real.transform.inverse_transform(real.val.x[:count].numpy(), None)
        return frf_figure(
            fake.axis,
            np.asarray(real_values)[:, 0],
            fake.values[:, 0],
            axis_name=fake.axis_name,
            channel_name=fake.channel_names[0],
            titles=titles,
        )
    figure = Figure(figsize=(3.2 * count, 2.6))
    for index in range(count):
        ax = figure.add_subplot(1, count, index + 1)
        ax.plot(fake.axis, fake.values[index, 0], color="tab:red", linewidth=1.0)
        ax.set_title(f"generated: {titles[index]}", fontsize=8)
        ax.set_xlabel(fake.axis_name, fontsize=8)
        ax.tick_params(labelsize=7)
    figure.axes[0].set_ylabel(fake.channel_names[0], fontsize=8)
    figure.tight_layout()
    return figure


def _marginals_alone(frame: pd.DataFrame) -> Figure:
    """Histograms and bar charts of generated columns."""
    columns = list(frame.columns)[:MAX_MARGINAL_COLUMNS]
    num_cols = min(4, max(len(columns), 1))
    num_rows = math.ceil(len(columns) / num_cols) or 1
    figure = Figure(figsize=(3.4 * num_cols, 2.4 * num_rows))
    for index, column in enumerate(columns, start=1):
        ax = figure.add_subplot(num_rows, num_cols, index)
        values = frame[column].dropna()
        if pd.api.types.is_numeric_dtype(values):
            ax.hist(values.astype(float), bins=30, color="tab:orange")
        else:
            shares = values.astype(str).value_counts(normalize=True)[:10]
            ax.bar(np.arange(len(shares)), shares.to_numpy(), color="tab:orange")
            labels = [str(t)[:10] for t in shares.index]
            ax.set_xticks(np.arange(len(shares)), labels, rotation=60, fontsize=6)
        ax.set_title(f"{column} (generated)", fontsize=8)
        ax.tick_params(labelsize=6)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Render a figure to PNG (Agg, no pyplot) and write it atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def model_card(
    info: Mapping[str, Any], sampler: SampleGenerator, *, picture_note: str, has_program: bool
) -> str:
    """The bundle's README.md: what it is, its metrics, how to sample, provenance."""
    config = info["config"]
    ranking = info["ranking"]
    where = f" (rank {info['rank']} of sweep `{info['sweep']}`)" if "rank" in info else ""
    lines = [
        f"# Generator `{info['trial_id']}`{where}",
        "",
        f"A GAN generator (family `{config['model']['family']}`) for {sampler.kind} data, "
        f"exported by gan-hpc {info['versions']['gan_hpc']} from the **{info['checkpoint']}** "
        f"checkpoint of trial `{info['trial_id']}` (step {info['step']}, "
        f"{info['weights']} weights).",
        "",
        f"![samples]({PICTURE_FILE})",
        "",
        picture_note,
        "",
        f"## Metrics of this checkpoint (step {info['step']})",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {k} | {_cell(v)} |" for k, v in sorted(info["metrics"].items())),
        "",
        f"Ranking score: `{ranking['score']}` ({ranking['score_mode']}, "
        f"{ranking.get('score_split', 'test')} split) = "
        f"{_cell(ranking['score_value'])}. Gate (d_acc_heldout > {ranking['d_acc_min']} and "
        f"fooling_rate > {ranking['fooling_rate_min']}): "
        f"{'passes' if ranking['gate'] else 'fails'}.",
        "",
        "## Sampling",
        "",
        "```python",
        "import gan_hpc",
        "",
        'generator = gan_hpc.load_generator("path/to/this/folder")',
        f"samples = generator.sample(1000{_condition_example(sampler)}, seed=0)",
        "```",
        "",
        "```bash",
        f"gan-hpc sample path/to/this/folder -n 1000 --seed 0 --out "
        f"{'samples.csv' if sampler.kind != 'image' else 'samples.npz'}",
        "```",
        "",
        *_data_lines(sampler, info),
        "## Training",
        "",
        f"- loss `{config['loss']['name']}`, n_critic {config['loss']['n_critic']}; latent "
        f"{config['model']['latent_dim']} ({config['model']['latent_distribution']})",
        f"- generator lr {config['optim']['generator']['lr']:g}, discriminator lr "
        f"{config['optim']['discriminator']['lr']:g}; batch size {config['train']['batch_size']}"
        f", {config['train']['num_steps']} steps, seed {info['seed']}",
        f"- searched parameters: `{json.dumps(info.get('params') or {}, sort_keys=True)}`",
        f"- versions: {', '.join(f'{k} {v}' for k, v in info['versions'].items())}",
        "",
        "## Files",
        "",
        f"- `{WEIGHTS_FILE}`: weights (safetensors); `{CONFIG_FILE}`: architecture, latent, "
        "conditioning, output and checksums",
        f"- `{TRANSFORM_FILE}`: the fitted data transform; `{METRICS_FILE}`: full trial config "
        "and provenance",
    ]
    if has_program:
        lines.append(
            f"- `{PROGRAM_FILE}`: `torch.export.load(path).module()(z[, cond])` gives model-space "
            "samples with torch alone; decode them with the transform"
        )
    return "\n".join(lines) + "\n"


def _data_lines(sampler: SampleGenerator, info: Mapping[str, Any]) -> list[str]:
    """The card's data section: shape, conditioning, dataset hash."""
    condition = sampler.condition
    lines = [
        "## Data",
        "",
        f"- {sampler.kind} samples of shape {list(sampler.schema.sample_shape)}",
    ]
    if condition is not None and condition.kind == "class":
        lines.append(f"- conditioned on `{sampler.condition_key}`: {', '.join(condition.names)}")
    elif condition is not None:
        ranges = ", ".join(
            f"{n} in [{lo:g}, {hi:g}]"
            for n, (lo, hi) in zip(condition.names, condition.ranges, strict=True)
        )
        lines.append(f"- conditioned on {ranges}")
    lines += [f"- dataset SHA-256 `{info['data']['source_hash']}`", ""]
    return lines


def _condition_example(sampler: SampleGenerator) -> str:
    """A ``condition=`` argument for the card's example."""
    condition = sampler.condition
    if condition is None:
        return ""
    if condition.kind == "class":
        return f", condition={condition.names[0]!r}"
    first, (low, high) = condition.names[0], condition.ranges[0]
    return f", condition={{{first!r}: {(low + high) / 2:.3g}}}"


def _cell(value: Any) -> str:
    """A metric value for the card (None, NaN and infinities are n/a, as metrics.json has them)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
