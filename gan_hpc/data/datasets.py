"""Model-ready datasets: read, split (seeded), fit the transform on train, encode, cache.

:func:`load_dataset` is the one entry point. The validation split feeds the convergence
metrics during training; the test split is held out for the final quality metrics. With
``data.test_path`` the test split is that file, read with the same reader and encoded with
the train-fitted transform, and the main file is split into train and validation only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan_hpc.config import DataConfig
from gan_hpc.data import cache, readers
from gan_hpc.data.transform import (
    DataTransform,
    drop_missing_rows,
    fit_transform,
    transform_from_dict,
)
from gan_hpc.data.types import DataSchema, Encoded, RawData, Table
from gan_hpc.errors import DataError
from gan_hpc.files import sha256_file

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split as tensors: ``x`` float32 ``(N, *sample_shape)``, ``cond`` or None.

    ``cond`` is int64 ``(N,)`` class indices or float32 ``(N, K)`` continuous conditions.
    ``labels`` are int64 ``(N,)`` class indices the data gives (image labels), also when the
    model is not conditioned on them: quality scoring trains its feature classifier on them.
    """

    x: torch.Tensor
    cond: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class PreparedData:
    """A dataset ready to train on, with the transform that maps samples back.

    ``source_hash`` is the SHA-256 over the input files' content only; ``num_raw_rows`` the
    number of samples in the main file as read (before dropping rows and subsampling).
    """

    config: DataConfig
    schema: DataSchema
    transform: DataTransform
    train: Split
    val: Split
    test: Split
    source_hash: str
    num_raw_rows: int


def split_indices(
    n: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, disjoint train/val/test indices covering ``range(n)``, each sorted.

    A non-zero fraction gets at least one sample; a zero fraction gets none.

    Raises:
        ValueError: when ``n`` is too small to leave a training sample.

    """
    num_val = _split_size(n, val_fraction)
    num_test = _split_size(n, test_fraction)
    if num_val + num_test >= n:
        raise ValueError(
            f"{n} samples are too few for val_fraction {val_fraction} and test_fraction "
            f"{test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(n)
    test = np.sort(order[:num_test])
    val = np.sort(order[num_test : num_test + num_val])
    train = np.sort(order[num_test + num_val :])
    return train, val, test


def _split_size(n: int, fraction: float) -> int:
    """Size a split: ``n * fraction`` rounded, at least one unless the fraction is 0."""
    return 0 if fraction <= 0 else max(1, round(n * fraction))


def load_dataset(config: DataConfig) -> PreparedData:
    """Read, split, fit on train, encode every split; use the cache when ``data.use_cache``.

    Raises:
        DataError: the data cannot be read, or is too small to split.

    """
    file_hashes = [sha256_file(path) for path in cache.input_files(config)]
    source_hash = cache.source_hash(file_hashes)
    if not config.use_cache:
        return _prepare(config, source_hash)
    key = cache.cache_key(config, file_hashes)
    directory = cache.cache_root(config) / key
    entry = cache.read_entry(directory, key)
    if entry is not None:
        try:
            prepared = _from_entry(config, entry)
        except (KeyError, TypeError, ValueError, DataError) as exc:
            logger.warning("dataset cache entry %s is invalid (%r); rebuilding it", directory, exc)
        else:
            logger.debug("loaded the dataset from the cache %s", directory)
            return prepared
    prepared = _prepare(config, source_hash)
    meta = {
        "source_hash": prepared.source_hash,
        "num_raw_rows": prepared.num_raw_rows,
        "schema": prepared.schema.to_dict(),
        "transform": prepared.transform.to_dict(),
    }
    cache.write_entry(directory, key, _split_arrays(prepared), meta)
    return prepared


def _prepare(config: DataConfig, source_hash: str) -> PreparedData:
    """Build the dataset from the files (the cache miss path)."""
    raw = readers.read_data(config)
    num_raw_rows = _num_samples(raw)
    raw = _drop_missing(raw, config)
    if config.max_rows is not None and _num_samples(raw) > config.max_rows:
        # A separate stream from the split's, so max_rows does not shift the split pattern.
        rng = np.random.default_rng([config.split_seed, 1])
        raw = _take(raw, np.sort(rng.choice(_num_samples(raw), config.max_rows, replace=False)))
    test_fraction = 0.0 if config.test_path is not None else config.test_fraction
    try:
        train_idx, val_idx, test_idx = split_indices(
            _num_samples(raw), config.val_fraction, test_fraction, config.split_seed
        )
    except ValueError as exc:
        raise DataError(f"{raw.source}: {exc} (fix: use more data or smaller fractions)") from None
    if config.test_path is not None:
        test_raw = _drop_missing(readers.read_data(config, Path(config.test_path)), config)
    else:
        test_raw = _take(raw, test_idx)
    train_raw = _take(raw, train_idx)
    transform = fit_transform(train_raw, config)
    encoded = {
        "train": transform.transform(train_raw),
        "val": transform.transform(_take(raw, val_idx)),
        "test": transform.transform(test_raw),
    }
    logger.info(
        "%s: %d train, %d val, %d test samples",
        raw.source,
        *(len(encoded[name].x) for name in SPLIT_NAMES),
    )
    splits = {name: _to_split(encoded[name]) for name in SPLIT_NAMES}
    return PreparedData(
        config=config,
        schema=transform.schema,
        transform=transform,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        source_hash=source_hash,
        num_raw_rows=num_raw_rows,
    )


def _drop_missing(raw: RawData, config: DataConfig) -> RawData:
    """Apply the drop_rows policy to a table (arrays have no missing-value policy)."""
    return drop_missing_rows(raw, config) if isinstance(raw, Table) else raw


def _num_samples(raw: RawData) -> int:
    """Rows of a table or samples of arrays."""
    return len(raw.frame) if isinstance(raw, Table) else len(raw.samples)


def _take(raw: RawData, indices: np.ndarray) -> RawData:
    """Select the samples at ``indices`` (a table gets a fresh 0..n-1 index)."""
    if isinstance(raw, Table):
        frame = raw.frame.iloc[indices].reset_index(drop=True)
        return Table(frame=frame, columns=raw.columns, source=raw.source)
    return dataclasses.replace(
        raw,
        samples=raw.samples[indices],
        labels=None if raw.labels is None else raw.labels[indices],
        conditions=None if raw.conditions is None else raw.conditions[indices],
    )


def _to_split(encoded: Encoded) -> Split:
    """Turn encoded numpy arrays into tensors."""
    x = torch.from_numpy(np.ascontiguousarray(encoded.x, dtype=np.float32))
    return Split(x=x, cond=_tensor_or_none(encoded.cond), labels=_tensor_or_none(encoded.labels))


def _tensor_or_none(array: np.ndarray | None) -> torch.Tensor | None:
    """A tensor sharing ``array``'s (contiguous) memory, or None for no array."""
    return None if array is None else torch.from_numpy(np.ascontiguousarray(array))


def _split_arrays(prepared: PreparedData) -> dict[str, np.ndarray]:
    """Collect the splits as named numpy arrays for the cache."""
    arrays: dict[str, np.ndarray] = {}
    for name in SPLIT_NAMES:
        split: Split = getattr(prepared, name)
        arrays[f"{name}_x"] = split.x.numpy()
        for field in ("cond", "labels"):
            tensor = getattr(split, field)
            if tensor is not None:
                arrays[f"{name}_{field}"] = tensor.numpy()
    return arrays


def _from_entry(config: DataConfig, entry: cache.CacheEntry) -> PreparedData:
    """Rebuild the dataset from a verified cache entry."""
    arrays: Mapping[str, np.ndarray] = entry.arrays
    splits = {
        name: Split(
            x=torch.from_numpy(arrays[f"{name}_x"]),
            cond=_tensor_or_none(arrays.get(f"{name}_cond")),
            labels=_tensor_or_none(arrays.get(f"{name}_labels")),
        )
        for name in SPLIT_NAMES
    }
    return PreparedData(
        config=config,
        schema=DataSchema.from_dict(entry.meta["schema"]),
        transform=transform_from_dict(entry.meta["transform"]),
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        source_hash=entry.meta["source_hash"],
        num_raw_rows=int(entry.meta["num_raw_rows"]),
    )
