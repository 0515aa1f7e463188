"""Validity of the image quality metrics on scikit-learn's 8x8 digits (ships with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.datasets import load_digits

from gan_hpc.errors import DataError
from gan_hpc.quality import (
    IMG_CLASS_COVERAGE,
    IMG_CLASS_TV,
    IMG_CLASSIFIER_ACCURACY,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    IMG_PRECISION,
    IMG_RECALL,
    ImageInputs,
    QualityConfig,
    QualityReport,
    SignalInputs,
    evaluate_quality,
)
from gan_hpc.quality.baselines import image_baselines, independent_pixels
from gan_hpc.quality_names import BASELINE_PIXELS, BASELINE_REAL

PIXELS = (0.0, 16.0)  # the digits' pixel range


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    """Disjoint splits: the classifier's training set, the held-out set, a stand-in generator."""
    data = load_digits()
    images, labels = data.images[:, None].astype(np.float32), data.target
    order = np.random.default_rng(0).permutation(len(images))
    train, test, other = order[:900], order[900:1350], order[1350:]
    return {
        "train": images[train],
        "train_labels": labels[train],
        "test": images[test],
        "test_labels": labels[test],
        "other": images[other],
        "other_labels": labels[other],
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quality_cache")


def score(
    digits: dict[str, np.ndarray],
    generated: np.ndarray,
    cache_dir: Path,
    *,
    is_labelled: bool = True,
    generated_labels: np.ndarray | None = None,
) -> QualityReport:
    inputs = ImageInputs(
        real_train=digits["train"],
        real_test=digits["test"],
        generated=generated,
        value_range=PIXELS,
        train_labels=digits["train_labels"] if is_labelled else None,
        test_labels=digits["test_labels"] if is_labelled else None,
        generated_labels=generated_labels,
    )
    return evaluate_quality("image", inputs, config=QualityConfig(cache_dir=str(cache_dir)))


def noisy(images: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return images + rng.normal(0.0, sigma, images.shape).astype(np.float32)


@pytest.fixture(scope="module")
def real_report(digits: dict[str, np.ndarray], cache_dir: Path) -> QualityReport:
    return score(digits, digits["other"], cache_dir, generated_labels=digits["other_labels"])


def test_a_disjoint_real_split_scores_near_the_ceiling(
    digits: dict[str, np.ndarray], cache_dir: Path, real_report: QualityReport
) -> None:
    metrics = real_report.metrics
    uniform = np.random.default_rng(2).uniform(*PIXELS, digits["other"].shape)
    noise = score(digits, uniform.astype(np.float32), cache_dir).metrics
    assert metrics[IMG_FD] < 0.05 * noise[IMG_FD]
    assert metrics[IMG_PRECISION] > 0.8 and metrics[IMG_RECALL] > 0.8
    assert noise[IMG_PRECISION] < 0.1 and noise[IMG_RECALL] < 0.1
    assert metrics[IMG_CLASS_COVERAGE] == 1.0 and metrics[IMG_CLASS_TV] < 0.15
    assert metrics[IMG_CLASSIFIER_ACCURACY] > 0.9  # the feature space knows the digits
    assert metrics[IMG_CONDITIONAL_ACCURACY] > 0.9
    assert real_report.sample_sizes["image_samples"] == len(digits["other"])
    assert any("fewer available" in note for note in real_report.notes)


def test_frechet_distance_rises_monotonically_with_noise(
    digits: dict[str, np.ndarray], cache_dir: Path, real_report: QualityReport
) -> None:
    distances = [real_report.metrics[IMG_FD]]
    precisions = [real_report.metrics[IMG_PRECISION]]
    for sigma in (1.0, 2.0, 4.0, 8.0):
        metrics = score(digits, noisy(digits["other"], sigma), cache_dir).metrics
        distances.append(metrics[IMG_FD])
        precisions.append(metrics[IMG_PRECISION])
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False))
    assert precisions[-1] < precisions[0] - 0.5


def test_dropping_classes_lowers_coverage_and_recall_not_precision(
    digits: dict[str, np.ndarray], cache_dir: Path, real_report: QualityReport
) -> None:
    keep = np.isin(digits["other_labels"], [0, 1, 2])
    report = score(digits, digits["other"][keep], cache_dir)
    metrics = report.metrics
    assert metrics[IMG_CLASS_COVERAGE] <= 0.3
    assert metrics[IMG_CLASS_TV] > 0.5
    assert metrics[IMG_PRECISION] > 0.8
    assert metrics[IMG_RECALL] < real_report.metrics[IMG_RECALL] - 0.4
    assert metrics[IMG_FD] > 10 * real_report.metrics[IMG_FD]
    assert report.sample_sizes["image_samples"] == keep.sum()


def test_the_classifier_is_cached_and_reused(
    digits: dict[str, np.ndarray], cache_dir: Path, real_report: QualityReport
) -> None:
    again = score(digits, digits["other"], cache_dir, generated_labels=digits["other_labels"])
    assert "feature classifier from cache" in again.notes
    assert again.metrics == real_report.metrics
    files = sorted((cache_dir / "quality").glob("feature_net_*.safetensors"))
    assert files
    with safe_open(str(files[0]), framework="pt") as handle:
        assert len(handle.metadata()["key"]) == 64


def test_a_corrupt_cache_entry_is_retrained(
    digits: dict[str, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = score(digits, digits["other"], tmp_path)
    (path,) = (tmp_path / "quality").glob("feature_net_*.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    second = score(digits, digits["other"], tmp_path)
    assert "feature classifier trained" in second.notes
    assert "unreadable feature classifier" in caplog.text
    assert second.metrics == first.metrics  # seeded training: the same network again


def test_the_callers_torch_rng_is_left_alone(digits: dict[str, np.ndarray], tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    score(digits, digits["other"][:100], tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_without_labels_the_self_supervised_features_still_rank(
    digits: dict[str, np.ndarray], cache_dir: Path
) -> None:
    real = score(digits, digits["other"], cache_dir, is_labelled=False)
    noise = score(digits, noisy(digits["other"], 4.0), cache_dir, is_labelled=False)
    keep = np.isin(digits["other_labels"], [0, 1, 2])
    dropped = score(digits, digits["other"][keep], cache_dir, is_labelled=False)
    assert any("no labels" in note for note in real.notes)
    assert real.metrics[IMG_FD] < noise.metrics[IMG_FD]
    assert real.metrics[IMG_FD] < dropped.metrics[IMG_FD]
    assert dropped.metrics[IMG_CLASS_COVERAGE] < real.metrics[IMG_CLASS_COVERAGE]
    assert dropped.metrics[IMG_RECALL] < real.metrics[IMG_RECALL] - 0.2
    assert IMG_CLASSIFIER_ACCURACY not in real.metrics


def test_bad_inputs_fail_with_one_line(digits: dict[str, np.ndarray], cache_dir: Path) -> None:
    with pytest.raises(DataError, match=r"image shapes differ"):
        score(digits, np.zeros((10, 1, 9, 9), np.float32), cache_dir)
    flat = ImageInputs(
        real_train=digits["train"][:, 0], real_test=digits["test"], generated=digits["other"]
    )
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        evaluate_quality("image", flat, config=QualityConfig())
    curves = SignalInputs(
        real=np.zeros((2, 1, 8)), generated=np.zeros((2, 1, 8)), frequencies=np.arange(8.0)
    )
    with pytest.raises(DataError, match=r"image metrics need ImageInputs, got SignalInputs"):
        evaluate_quality("image", curves, config=QualityConfig())


# ---- baselines: real images (ceiling) and independent pixels (floor)


def test_independent_pixels_keep_each_pixels_marginal(digits: dict[str, np.ndarray]) -> None:
    train = digits["train"]
    pixels = independent_pixels(train, 5000, np.random.default_rng(0))
    assert pixels.shape == (5000, *train.shape[1:]) and pixels.dtype == train.dtype
    np.testing.assert_allclose(pixels.mean(axis=0), train.mean(axis=0), atol=0.6)
    # ...and nothing else: neighbouring pixels, correlated in digits, are independent here
    left, right = train[:, 0, 3, 3], train[:, 0, 3, 4]
    drawn_left, drawn_right = pixels[:, 0, 3, 3], pixels[:, 0, 3, 4]
    assert np.corrcoef(left, right)[0, 1] > 0.3
    assert abs(np.corrcoef(drawn_left, drawn_right)[0, 1]) < 0.05


def test_image_baselines_bracket_real_and_trivial(
    digits: dict[str, np.ndarray], cache_dir: Path, real_report: QualityReport
) -> None:
    reports = image_baselines(
        digits["train"],
        digits["test"],
        digits["other"],
        QualityConfig(cache_dir=str(cache_dir)),
        value_range=PIXELS,
        train_labels=digits["train_labels"],
        test_labels=digits["test_labels"],
        other_labels=digits["other_labels"],
        is_conditional=True,
    )
    real, floor = reports[BASELINE_REAL], reports[BASELINE_PIXELS]
    # the ceiling is exactly a held-out real split scored as a generator
    assert real.metrics == real_report.metrics
    assert real.sample_sizes["baseline_images"] == len(digits["other"])
    assert floor.sample_sizes["baseline_images"] == len(digits["test"])
    assert real.metrics[IMG_FD] < 0.1 * floor.metrics[IMG_FD]
    # blurry averages sit inside the real manifold more often than they cover it (8x8: 0.69, 0.52)
    assert floor.metrics[IMG_PRECISION] < real.metrics[IMG_PRECISION] - 0.15
    assert floor.metrics[IMG_RECALL] < real.metrics[IMG_RECALL] - 0.3
    assert floor.metrics[IMG_CLASS_COVERAGE] < real.metrics[IMG_CLASS_COVERAGE]
    assert floor.metrics[IMG_CONDITIONAL_ACCURACY] < 0.3  # chance is 0.1
    unconditional = image_baselines(
        digits["train"],
        digits["test"],
        digits["other"],
        QualityConfig(cache_dir=str(cache_dir)),
        value_range=PIXELS,
        train_labels=digits["train_labels"],
    )
    assert all(IMG_CONDITIONAL_ACCURACY not in r.metrics for r in unconditional.values())
    without_val = image_baselines(
        digits["train"],
        digits["test"],
        digits["other"][:0],  # no validation split: only the floor
        QualityConfig(cache_dir=str(cache_dir)),
        value_range=PIXELS,
        train_labels=digits["train_labels"],
    )
    assert set(without_val) == {BASELINE_PIXELS}
