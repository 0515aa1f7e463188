"""Pictures of generated samples next to real ones: image grids, FRF curves, tabular marginals.

Used for TensorBoard during training and for model cards at export. Figures are built with
matplotlib's object API (no pyplot, no global backend switch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from gan_hpc.data.datasets import PreparedData
from gan_hpc.trial.latents import sample_condition

Sampler = Callable[[torch.Tensor | None, int], torch.Tensor]

MAX_MARGINAL_COLUMNS = 12
NUM_FRF_PANELS = 4


def image_grid(images: np.ndarray, num_columns: int = 8) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into one ``(C, H', W')`` array in [0, 1]."""
    count, channels, height, width = images.shape
    num_rows = int(np.ceil(count / num_columns))
    pad = 1
    grid = np.ones((channels, num_rows * (height + pad) + pad, num_columns * (width + pad) + pad))
    scaled = np.clip((images + 1.0) / 2.0, 0.0, 1.0)
    for index in range(count):
        row, col = divmod(index, num_columns)
        top, left = pad + row * (height + pad), pad + col * (width + pad)
        grid[:, top : top + height, left : left + width] = scaled[index]
    return grid.astype(np.float32)


def frf_figure(
    axis: np.ndarray,
    real: np.ndarray,
    fake: np.ndarray,
    *,
    axis_name: str,
    channel_name: str,
    titles: list[str],
) -> Figure:
    """Panels of real vs generated curves at the same conditions (one channel)."""
    panels = len(real)
    figure = Figure(figsize=(3.2 * panels, 2.6))
    for index in range(panels):
        ax = figure.add_subplot(1, panels, index + 1)
        ax.plot(axis, real[index], label="real", color="black", linewidth=1.2)
        ax.plot(axis, fake[index], label="generated", color="tab:red", linewidth=1.0, alpha=0.85)
        ax.set_title(titles[index], fontsize=8)
        ax.set_xlabel(axis_name, fontsize=8)
        if index == 0:
            ax.set_ylabel(channel_name, fontsize=8)
            ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def marginals_figure(real: pd.DataFrame, fake: pd.DataFrame) -> Figure:
    """Histograms (numeric) and bar charts (categorical) of real vs generated columns."""
    columns = [c for c in real.columns if c in fake.columns][:MAX_MARGINAL_COLUMNS]
    num_cols = min(4, max(len(columns), 1))
    num_rows = int(np.ceil(len(columns) / num_cols)) or 1
    figure = Figure(figsize=(3.4 * num_cols, 2.4 * num_rows))
    for index, column in enumerate(columns):
        ax = figure.add_subplot(num_rows, num_cols, index + 1)
        if pd.api.types.is_numeric_dtype(real[column]):
            real_values = real[column].dropna().astype(float)
            fake_values = fake[column].dropna().astype(float)
            edges = np.histogram_bin_edges(pd.concat([real_values, fake_values]), bins=30)
            for values, label in ((real_values, "real"), (fake_values, "generated")):
                density, _ = np.histogram(values, bins=edges, density=len(values) > 0)
                ax.stairs(density, edges, fill=True, alpha=0.6, label=label)
        else:
            real_share = real[column].astype(str).value_counts(normalize=True)
            fake_share = fake[column].astype(str).value_counts(normalize=True)
            top = real_share.index[:10]
            positions = np.arange(len(top))
            ax.bar(positions - 0.2, real_share.reindex(top).fillna(0), width=0.4, label="real")
            ax.bar(positions + 0.2, fake_share.reindex(top).fillna(0), width=0.4, label="generated")
            ax.set_xticks(positions, [str(t)[:10] for t in top], rotation=60, fontsize=6)
        ax.set_title(str(column), fontsize=8)
        ax.tick_params(labelsize=6)
        if index == 0:
            ax.legend(fontsize=6)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.12, top=0.94, wspace=0.3, hspace=0.8)
    return figure


def sample_pictures(data: PreparedData, sample: Sampler, count: int) -> dict[str, Any]:
    """Pictures of generated vs real data, by data kind.

    Returns:
        ``{"samples/generated": grid, "samples/real": grid}`` (image arrays) for images, or
        ``{"samples/frf": Figure}`` / ``{"samples/marginals": Figure}`` for signals and tables.

    """
    kind = data.schema.kind
    if kind == "image":
        cond = sample_condition(
            data.schema, count, torch.Generator().manual_seed(0), torch.device("cpu")
        )
        fake = sample(cond, count).numpy()
        return {
            "samples/generated": image_grid(fake),
            "samples/real": image_grid(data.val.x[:count].numpy()),
        }
    if kind == "signal":
        panels = min(NUM_FRF_PANELS, len(data.val))
        cond = data.val.cond[:panels] if data.val.cond is not None else None
        fake = sample(cond, panels).numpy()
        real_units = np.asarray(data.transform.inverse_transform(data.val.x[:panels].numpy(), None))
        fake_units = np.asarray(data.transform.inverse_transform(fake, None))
        titles = _condition_titles(data, cond, panels)
        transform: Any = data.transform
        axis = transform.axis if transform.axis is not None else np.arange(real_units.shape[-1])
        return {
            "samples/frf": frf_figure(
                np.asarray(axis),
                real_units[:, 0],
                fake_units[:, 0],
                axis_name=transform.axis_name or "index",
                channel_name=(transform.channel_names or ("value",))[0],
                titles=titles,
            )
        }
    count = min(max(count, 500), len(data.val)) if len(data.val) else count
    cond = sample_condition(
        data.schema, count, torch.Generator().manual_seed(0), torch.device("cpu")
    )
    fake = data.transform.inverse_transform(
        sample(cond, count).numpy(), cond.numpy() if cond is not None else None
    )
    real_cond = data.val.cond[:count].numpy() if data.val.cond is not None else None
    real = data.transform.inverse_transform(data.val.x[:count].numpy(), real_cond)
    return {"samples/marginals": marginals_figure(real, fake)}


def log_sample_pictures(
    writer: Any, step: int, data: PreparedData, sample: Sampler, count: int
) -> None:
    """Add :func:`sample_pictures` to a TensorBoard ``SummaryWriter``."""
    for tag, picture in sample_pictures(data, sample, count).items():
        if isinstance(picture, Figure):
            writer.add_figure(tag, picture, step, close=False)
        else:
            writer.add_image(tag, picture, step, dataformats="CHW")


def _condition_titles(data: PreparedData, cond: torch.Tensor | None, panels: int) -> list[str]:
    """Panel titles naming each condition in the data's own units."""
    schema = data.schema.condition
    if cond is None or schema is None or schema.kind != "continuous":
        return [f"sample {i}" for i in range(panels)]
    values = cond.numpy()
    titles = []
    for row in values:
        parts = []
        for name, value, (low, high) in zip(schema.names, row, schema.ranges, strict=False):
            parts.append(f"{name}={low + (value + 1.0) / 2.0 * (high - low):.3g}")
        titles.append(", ".join(parts))
    return titles
