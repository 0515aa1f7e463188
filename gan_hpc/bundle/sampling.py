"""Sample files from a generator bundle, and the ``gan-hpc sample`` command.

The output suffix picks the format: tables as ``.csv``, ``.arff`` (the training columns and
nominal values) or ``.parquet`` (dtypes and categories kept), images as a ``.png`` grid or
``.npz``, signals as ``.csv`` or ``.parquet`` (long format) or ``.npz``. Files are written
atomically.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import arff
import numpy as np
import pandas as pd
from matplotlib.image import imsave

from gan_hpc.bundle.load import Condition, SampleGenerator, SignalSamples, load_generator
from gan_hpc.data.transform import TabularTransform
from gan_hpc.errors import SpecError
from gan_hpc.files import atomic_write_bytes, atomic_write_text
from gan_hpc.trial.visuals import image_grid

ARFF_DATE_PATTERN = "yyyy-MM-dd'T'HH:mm:ss"  # Java SimpleDateFormat, as ARFF DATE wants
SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "tabular": (".csv", ".arff", ".parquet"),
    "image": (".png", ".npz"),
    "signal": (".csv", ".parquet", ".npz"),
}


def write_samples(
    generator: SampleGenerator,
    path: Path,
    n: int,
    *,
    condition: Condition = None,
    seed: int | None = None,
) -> int:
    """Sample ``n`` and write them to ``path``; the suffix picks the format.

    Tables: ``.csv``, ``.arff`` (the training columns; ARFF declares the training nominal
    values, missing values are ``?``) or ``.parquet`` (the DataFrame's dtypes and categories,
    through pyarrow). Images: ``.png`` (a grid) or ``.npz`` (``images`` in pixel units, plus
    ``labels`` and ``label_names`` when class-conditional). Signals: ``.csv`` or ``.parquet``
    in long format (``sample``, condition columns, the axis, one column per channel) or
    ``.npz`` (``values``, ``axis``, ``conditions``, ``condition_names``, ``channel_names``).

    Returns:
        The seed used (drawn when ``seed`` is None), so the file can be reproduced.

    Raises:
        SpecError: the suffix does not fit the data kind, or the condition is invalid.

    """
    path = Path(path)
    suffix = path.suffix.lower()
    valid = SAMPLE_SUFFIXES[generator.kind]
    if suffix not in valid:
        raise SpecError(
            f"{path}: cannot write {generator.kind} samples as '{suffix or 'no suffix'}'; "
            f"use one of {', '.join(valid)}"
        )
    draw = generator.draw(n, condition, seed)
    samples = generator.decode(draw)
    if suffix == ".parquet":
        frame = samples.to_frame() if isinstance(samples, SignalSamples) else samples
        atomic_write_bytes(path, parquet_bytes(frame, path))
    elif isinstance(samples, pd.DataFrame):
        if suffix == ".arff" and isinstance(generator.transform, TabularTransform):
            atomic_write_text(path, arff_text(samples, generator.transform, relation=path.stem))
        else:
            atomic_write_text(path, samples.to_csv(index=False))
    elif isinstance(samples, SignalSamples):
        if suffix == ".csv":
            atomic_write_text(path, samples.to_frame().to_csv(index=False))
        else:
            conditions = samples.conditions
            _write_npz(
                path,
                values=samples.values,
                axis=samples.axis,
                axis_name=np.array(samples.axis_name),
                channel_names=np.array(samples.channel_names),
                conditions=np.zeros((len(samples), 0))
                if conditions is None
                else conditions.to_numpy(),
                condition_names=np.array([] if conditions is None else list(conditions.columns)),
            )
    elif suffix == ".png":
        atomic_write_bytes(path, _png_grid(draw.x.numpy(), path))
    else:
        arrays = {"images": np.asarray(samples)}
        if draw.cond is not None and generator.condition is not None:
            arrays["labels"] = draw.cond.numpy().astype(np.int64)
            arrays["label_names"] = np.array(generator.condition.names)
        _write_npz(path, **arrays)
    return draw.seed


def parquet_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    """A DataFrame as Parquet bytes (pyarrow keeps categories, their order and every dtype).

    Raises:
        SpecError: pyarrow is not installed.

    """
    try:
        import pyarrow  # noqa: F401  # pandas' Parquet engine; installed with Ray
    except ImportError:
        raise SpecError(f"{path}: writing .parquet needs pyarrow (pip install pyarrow)") from None
    buffer = io.BytesIO()
    frame.to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write plain (non-object) arrays to a compressed .npz atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buffer.getvalue())


def _png_grid(images: np.ndarray, path: Path) -> bytes:
    """A PNG of model-space images (N, C, H, W) in [-1, 1], tiled in a near-square grid."""
    channels = images.shape[1]
    if channels not in (1, 3, 4):
        raise SpecError(f"{path}: {channels}-channel images cannot be a PNG; use .npz")
    grid = image_grid(images, num_columns=math.ceil(math.sqrt(len(images))))
    picture = grid[0] if channels == 1 else grid.transpose(1, 2, 0)
    buffer = io.BytesIO()
    imsave(buffer, picture, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buffer.getvalue()


def arff_text(frame: pd.DataFrame, transform: TabularTransform, *, relation: str) -> str:
    """Render generated rows as ARFF with the training attributes.

    Numeric columns are NUMERIC, categorical ones nominal with every training category in
    order, short string columns STRING, dates DATE (ISO pattern); missing values are ``?``.
    """
    attributes: list[tuple[str, Any]] = []
    date_indices = set()
    columns = []
    for index, codec in enumerate(codec.to_dict() for codec in transform.codecs):
        series = frame[codec["name"]]
        if codec["codec"] == "numeric" and codec["origin"] == "date":
            date_indices.add(index)
            attributes.append((codec["name"], "STRING"))  # liac-arff has no DATE; fixed below
            values = [None if pd.isna(v) else v.strftime("%Y-%m-%dT%H:%M:%S") for v in series]
        elif codec["codec"] == "numeric":
            attributes.append((codec["name"], "NUMERIC"))
            values = series.astype(object).where(series.notna(), None).tolist()
        else:
            categories = [str(c) for c in codec["categories"]]
            attributes.append(
                (codec["name"], "STRING" if codec["origin"] == "string" else categories)
            )
            values = [None if pd.isna(v) else str(v) for v in series]
        columns.append(values)
    text = arff.dumps(
        {
            "relation": relation,
            "description": "generated by gan-hpc",
            "attributes": attributes,
            "data": [list(row) for row in zip(*columns, strict=True)],
        }
    )
    lines = text.split("\n")
    attribute = -1
    for number, line in enumerate(lines):
        if line.upper().startswith("@ATTRIBUTE"):
            attribute += 1
            if attribute in date_indices:
                lines[number] = line[: -len("STRING")] + f'DATE "{ARFF_DATE_PATTERN}"'
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ the CLI


def parse_conditions(items: Sequence[str]) -> dict[str, str] | None:
    """``KEY=VALUE`` strings as a dict (None when there are none)."""
    conditions: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise SpecError(f"--condition {item!r}: expected KEY=VALUE (e.g. y=yes or x_m=0.3)")
        conditions[key.strip()] = value.strip()
    return conditions or None


def run_sample(args: argparse.Namespace) -> int:
    """Run ``gan-hpc sample``: write the samples and report the seed on stdout."""
    generator = load_generator(args.bundle)
    seed = write_samples(
        generator,
        args.out,
        args.num_samples,
        condition=parse_conditions(args.condition),
        seed=args.seed,
    )
    sys.stdout.write(f"{args.out}: {args.num_samples} {generator.kind} samples (seed {seed})\n")
    return 0
