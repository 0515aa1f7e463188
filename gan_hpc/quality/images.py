"""Held-out quality of generated images in the feature space of a classifier gan-hpc trains.

No downloaded weights: a tiny CNN (two strided 3x3 convolutions, a 4x4 average pool and a
64-unit ReLU layer, :class:`FeatureNet`) is trained on the real training images, with their
labels when there are any. Without labels it learns a self-supervised pretext task instead:
which of four rotations (square images) or flips (other shapes) was applied (Gidaris et al.,
ICLR 2018), and k-means clusters of the real features stand in for classes. The trained
weights are cached as safetensors under ``<cache dir>/quality/``, keyed by a hash of the
training images, labels, architecture and training settings, so every trial of a sweep shares
one classifier.

Metrics, all on the 64-d penultimate features of ``n`` generated and ``n`` held-out real
images (``n = min(num_image_samples, available)``, recorded in ``sample_sizes``):

- ``quality/frechet_distance``: the Frechet distance between Gaussians fitted to the two sets
  (as FID, with this feature space instead of Inception's).
- ``quality/precision`` / ``quality/recall``: k-NN manifold precision and recall (Kynkaanniemi
  et al., NeurIPS 2019): the share of generated samples inside the union of the real samples'
  k-NN balls, and vice versa.
- ``quality/class_coverage``: the share of classes (those the classifier predicts for real
  images) that receive at least half their real share among the generated images' predicted
  classes; with balanced classes that is ``>= 1 / (2 num_classes)`` of the samples.
- ``quality/class_tv``: total variation between the predicted class shares of generated and
  real images.
- ``quality/conditional_accuracy``: for a conditional generator, the classifier's accuracy on
  the labels the images were generated for; ``quality/feature_classifier_accuracy``: its
  accuracy on the labelled held-out real images (how much to trust the feature space).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from scipy import linalg
from sklearn.cluster import KMeans
from torch import nn

from gan_hpc.config import QualityConfig
from gan_hpc.data.cache import CACHE_DIR_ENV
from gan_hpc.errors import DataError
from gan_hpc.files import atomic_write_bytes
from gan_hpc.quality.types import (
    ImageInputs,
    QualityInputs,
    QualityReport,
    subsample_indices,
)
from gan_hpc.quality_names import (
    IMG_CLASS_COVERAGE,
    IMG_CLASS_TV,
    IMG_CLASSIFIER_ACCURACY,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    IMG_PRECISION,
    IMG_RECALL,
)

logger = logging.getLogger(__name__)


FEATURE_DIM = 64
ARCHITECTURE = "conv32s2-conv64s2-avgpool4-fc64-v1"  # part of the cache key: bump on change
_NUM_PRETEXT_CLASSES = 4
_BATCH = 512  # feature extraction and distance chunks


class FeatureNet(nn.Module):
    """The small CNN whose penultimate layer is the feature space (module docstring)."""

    def __init__(self, *, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(64 * 16, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.features(x))


def _scaled(images: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Images in ``value_range`` -> float32 in [-1, 1]; non-finite values are clipped."""
    low, high = value_range
    x = (np.asarray(images, dtype=np.float32) - low) * (2.0 / (high - low)) - 1.0
    return np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)


def _pretext(x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
    """Apply rotation ``task * 90`` degrees (square images) or flip ``task`` to each image."""
    out = torch.empty_like(x)
    square = x.shape[-1] == x.shape[-2]
    for k in range(_NUM_PRETEXT_CLASSES):
        rows = task == k
        if square:
            out[rows] = torch.rot90(x[rows], k, dims=(2, 3))
        else:
            dims = [d for d, bit in ((2, 1), (3, 2)) if k & bit]
            out[rows] = torch.flip(x[rows], dims=dims) if dims else x[rows]
    return out


def _train(
    images: np.ndarray, labels: np.ndarray | None, num_classes: int, config: QualityConfig
) -> FeatureNet:
    """Train a :class:`FeatureNet` on [-1, 1] images (labels, else the pretext task)."""
    with torch.random.fork_rng(devices=[]):  # leave the caller's (the trainer's) RNG alone
        torch.manual_seed(config.seed)
        net = FeatureNet(in_channels=images.shape[1], num_classes=num_classes)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        x_all = torch.from_numpy(images)
        y_all = None if labels is None else torch.from_numpy(labels.astype(np.int64))
        rng = np.random.default_rng(config.seed)
        net.train()
        for _ in range(config.num_classifier_steps):
            index = torch.from_numpy(rng.integers(0, len(images), config.classifier_batch_size))
            x = x_all[index]
            if y_all is None:
                y = torch.from_numpy(rng.integers(0, _NUM_PRETEXT_CLASSES, len(index)))
                x = _pretext(x, y)
            else:
                y = y_all[index]
            loss = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    logger.debug("feature classifier trained: final loss %.4f", loss.item())
    return net


def _cache_dir(config: QualityConfig) -> Path:
    """``quality.cache_dir``, else ``$GAN_HPC_CACHE_DIR``, else ``~/.cache/gan_hpc``; + quality/."""
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser() / "quality"
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser() / "quality"
    return Path.home() / ".cache" / "gan_hpc" / "quality"


def _cache_key(images: np.ndarray, labels: np.ndarray | None, config: QualityConfig) -> str:
    """SHA-256 of the training images, labels, architecture and training settings."""
    digest = hashlib.sha256()
    for array in (images, labels):
        if array is not None:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.data)
    settings = {
        "architecture": ARCHITECTURE,
        "has_labels": labels is not None,
        "steps": config.num_classifier_steps,
        "batch": config.classifier_batch_size,
        "seed": config.seed,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _load_cached(path: Path, key: str, *, in_channels: int, num_classes: int) -> FeatureNet | None:
    """The cached network, or None when missing, for another key, or unreadable."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("key") != key:
                return None
            state = {name: handle.get_tensor(name) for name in handle.keys()}
        net = FeatureNet(in_channels=in_channels, num_classes=num_classes)
        net.load_state_dict(state)
    except Exception as exc:  # a truncated or foreign file: retrain rather than trust it
        logger.warning("%s: unreadable feature classifier (%s); retraining", path, exc)
        return None
    net.eval()
    return net


def feature_classifier(
    train_images: np.ndarray,
    train_labels: np.ndarray | None,
    num_classes: int,
    config: QualityConfig,
) -> tuple[FeatureNet, bool]:
    """The feature classifier for these training images: from the cache, or trained and cached.

    Args:
        train_images: (N, C, H, W) float32 in [-1, 1].
        train_labels: (N,) class indices, or None for the self-supervised fallback.
        num_classes: classes of the labels (ignored without labels).
        config: sample size, steps, seed and cache settings.

    Returns:
        The network (eval mode) and whether it came from the cache.

    """
    rng = np.random.default_rng(config.seed)
    index = subsample_indices(len(train_images), config.num_classifier_images, rng)
    images = np.ascontiguousarray(train_images[index])
    labels = None if train_labels is None else np.asarray(train_labels, np.int64)[index]
    outputs = num_classes if labels is not None else _NUM_PRETEXT_CLASSES
    key = _cache_key(images, labels, config)
    path = _cache_dir(config) / f"feature_net_{key[:32]}.safetensors"
    if config.use_cache:
        cached = _load_cached(path, key, in_channels=images.shape[1], num_classes=outputs)
        if cached is not None:
            return cached, True
    net = _train(images, labels, outputs, config)
    if config.use_cache:
        state = {name: t.contiguous() for name, t in net.state_dict().items()}
        atomic_write_bytes(path, safetensors_bytes(state, metadata={"key": key}))
        logger.debug("cached feature classifier at %s", path)
    return net, False


@torch.no_grad()
def _embed(net: FeatureNet, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, 64) float64, predicted classes (N,)) in batches."""
    features, predicted = [], []
    for start in range(0, len(images), _BATCH):
        h = net.features(torch.from_numpy(images[start : start + _BATCH]))
        features.append(h.double().numpy())
        predicted.append(net.head(h).argmax(dim=1).numpy())
    return np.concatenate(features), np.concatenate(predicted)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows).

    ``tr sqrtm(C_a C_b)`` is computed as ``tr sqrtm(C_a^1/2 C_b C_a^1/2)``, a symmetric PSD
    matrix with the same eigenvalues, so dead (always-zero) features, which make the
    covariances singular, need no regularising offset.
    """
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
    trace = np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root
    return float(max(0.0, float(((mu_a - mu_b) ** 2).sum() + trace)))


def _kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row to its k-th nearest other row."""
    radii = []
    for chunk in features.split(_BATCH):
        distances = torch.cdist(chunk, features)
        radii.append(distances.topk(k + 1, dim=1, largest=False).values[:, -1])  # 0th: itself
    return torch.cat(radii)


def _inside_manifold(query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of ``query`` rows inside at least one ``support`` row's ball."""
    inside = [
        (torch.cdist(chunk, support) <= radii[None, :]).any(dim=1) for chunk in query.split(_BATCH)
    ]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int) -> tuple[float, float]:
    """k-NN manifold precision and recall (Kynkaanniemi et al., 2019) of ``fake`` vs ``real``."""
    if min(len(real), len(fake)) <= k:
        return math.nan, math.nan
    r, f = torch.from_numpy(real), torch.from_numpy(fake)
    precision = _inside_manifold(f, r, _kth_neighbour_radii(r, k))
    recall = _inside_manifold(r, f, _kth_neighbour_radii(f, k))
    return precision, recall


def class_coverage(real_classes: np.ndarray, fake_classes: np.ndarray, num_classes: int) -> float:
    """Share of the real classes whose generated share is at least half their real share."""
    p = np.bincount(real_classes, minlength=num_classes) / len(real_classes)
    q = np.bincount(fake_classes, minlength=num_classes) / len(fake_classes)
    present = p > 0
    return float((q[present] >= 0.5 * p[present]).mean())


def _checked(inputs: QualityInputs) -> ImageInputs:
    """The inputs, if they are images of one shape; else a DataError."""
    if not isinstance(inputs, ImageInputs):
        raise DataError(f"quality: image metrics need ImageInputs, got {type(inputs).__name__}")
    shapes = {k: np.shape(getattr(inputs, k)) for k in ("real_train", "real_test", "generated")}
    if any(len(s) != 4 or s[0] == 0 for s in shapes.values()):
        raise DataError(f"quality: images must be non-empty (N, C, H, W) arrays, got {shapes}")
    if len({s[1:] for s in shapes.values()}) > 1:
        raise DataError(f"quality: image shapes differ {shapes}; generate images like the data")
    low, high = inputs.value_range
    if not low < high:
        raise DataError(f"quality: value_range {inputs.value_range} must have low < high")
    return inputs


def image_quality(inputs: QualityInputs, config: QualityConfig) -> QualityReport:
    """Score generated images against held-out real ones (module docstring).

    Raises:
        DataError: ``inputs`` are not :class:`ImageInputs` or the arrays do not fit.

    """
    inputs = _checked(inputs)
    notes: list[str] = []
    if not np.all(np.isfinite(inputs.generated)):
        notes.append("generated images hold NaN/inf: clipped to the value range")
    train = _scaled(inputs.real_train, inputs.value_range)
    labels = inputs.train_labels
    num_classes = config.num_pseudo_classes
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        num_classes = inputs.num_classes or int(labels.max()) + 1
    net, is_cached = feature_classifier(train, labels, num_classes, config)
    notes.append("feature classifier " + ("from cache" if is_cached else "trained"))

    rng = np.random.default_rng(config.seed)
    n = min(config.num_image_samples, len(inputs.real_test), len(inputs.generated))
    real_index = subsample_indices(len(inputs.real_test), n, rng)
    fake_index = subsample_indices(len(inputs.generated), n, rng)
    real_features, real_classes = _embed(
        net, _scaled(inputs.real_test[real_index], inputs.value_range)
    )
    fake_features, fake_classes = _embed(
        net, _scaled(inputs.generated[fake_index], inputs.value_range)
    )
    if labels is None:
        notes.append(f"no labels: rotation/flip pretext features, {num_classes} k-means classes")
        train_features, _ = _embed(net, train[subsample_indices(len(train), n, rng)])
        clusters = KMeans(num_classes, n_init=3, random_state=config.seed).fit(train_features)
        real_classes, fake_classes = (
            clusters.predict(real_features),
            clusters.predict(fake_features),
        )

    precision, recall = precision_recall(real_features, fake_features, k=config.nearest_k)
    p = np.bincount(real_classes, minlength=num_classes) / n
    q = np.bincount(fake_classes, minlength=num_classes) / n
    metrics = {
        IMG_FD: frechet_distance(real_features, fake_features),
        IMG_PRECISION: precision,
        IMG_RECALL: recall,
        IMG_CLASS_COVERAGE: class_coverage(real_classes, fake_classes, num_classes),
        IMG_CLASS_TV: 0.5 * float(np.abs(p - q).sum()),
    }
    if labels is not None and inputs.generated_labels is not None:
        wanted = np.asarray(inputs.generated_labels, dtype=np.int64)[fake_index]
        metrics[IMG_CONDITIONAL_ACCURACY] = float((fake_classes == wanted).mean())
    if labels is not None and inputs.test_labels is not None:
        truth = np.asarray(inputs.test_labels, dtype=np.int64)[real_index]
        metrics[IMG_CLASSIFIER_ACCURACY] = float((real_classes == truth).mean())
    if n < config.num_image_samples:
        notes.append(f"{n} images per side (fewer available than num_image_samples)")
    sizes = {
        "image_samples": n,
        "classifier_train_images": min(len(train), config.num_classifier_images),
        "num_classes": num_classes,
    }
    return QualityReport(metrics=metrics, sample_sizes=sizes, notes=tuple(notes))
