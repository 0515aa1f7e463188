"""Validity of the FRF quality metrics on simulated plates with known physics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gan_hpc.config import SyntheticFrfConfig
from gan_hpc.data.synthetic import PlateFrfs, receptance, simulate_plate_frf
from gan_hpc.errors import DataError
from gan_hpc.quality import (
    SIG_DETECTION_AUC,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    SIG_SPECTRAL_ERROR_UNCONDITIONAL,
    QualityConfig,
    QualityReport,
    SignalInputs,
    TabularInputs,
    evaluate_quality,
)
from gan_hpc.quality.baselines import mean_curve, replicate_curves, signal_baselines
from gan_hpc.quality.signals import to_decibels
from gan_hpc.quality_names import BASELINE_MEAN_CURVE, BASELINE_REAL

PLATE = SyntheticFrfConfig(num_points=200, num_frequencies=128, seed=0)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def plate() -> PlateFrfs:
    return simulate_plate_frf(PLATE)


def frfs(plate: PlateFrfs, config: SyntheticFrfConfig, *, seed: int) -> np.ndarray:
    """Complex receptance of ``config``'s plate at the fixture's points, 5 % relative noise."""
    response = np.array(config.response_point) * (config.length_x_m, config.length_y_m)
    h = receptance(config, plate.coordinates_m, response, plate.frequencies_hz)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape)
    return h * (1.0 + 0.05 * noise / np.sqrt(2.0))


def log_magnitude(h: np.ndarray) -> np.ndarray:
    return np.log10(np.abs(h))[:, None, :]


def score(plate: PlateFrfs, real: np.ndarray, generated: np.ndarray, **kw: object) -> QualityReport:
    inputs = SignalInputs(
        real=real,
        generated=generated,
        frequencies=plate.frequencies_hz,
        conditions=plate.coordinates_m,
        **kw,  # type: ignore[arg-type]
    )
    return evaluate_quality("signal", inputs, config=QualityConfig())


@pytest.fixture(scope="module")
def real(plate: PlateFrfs) -> np.ndarray:
    return log_magnitude(frfs(plate, PLATE, seed=1))


def test_the_same_plate_at_the_same_conditions_scores_near_the_ceiling(
    plate: PlateFrfs, real: np.ndarray
) -> None:
    report = score(plate, real, log_magnitude(frfs(plate, PLATE, seed=2)))
    metrics = report.metrics
    assert metrics[SIG_SPECTRAL_ERROR] < 1.0  # dB: only the measurement noise differs
    assert metrics[SIG_SPECTRAL_ERROR] < 0.1 * metrics[SIG_SPECTRAL_ERROR_UNCONDITIONAL]
    assert metrics[SIG_RESONANCE_ERROR] < 0.02
    assert abs(metrics[SIG_DETECTION_AUC] - 0.5) < 0.1
    assert report.sample_sizes == {"signal_pairs": 200, "real_resonances": 600}


def test_stiffer_plates_move_resonances_and_every_error_up(
    plate: PlateFrfs, real: np.ndarray
) -> None:
    resonance, spectral, detection = [], [], []
    for factor in (1.0, 1.05, 1.1, 1.2):  # resonances scale with sqrt(E)
        stiffer = dataclasses.replace(PLATE, youngs_modulus_pa=PLATE.youngs_modulus_pa * factor)
        metrics = score(plate, real, log_magnitude(frfs(plate, stiffer, seed=2))).metrics
        resonance.append(metrics[SIG_RESONANCE_ERROR])
        spectral.append(metrics[SIG_SPECTRAL_ERROR])
        detection.append(metrics[SIG_DETECTION_AUC])
    assert all(a < b for a, b in zip(resonance, resonance[1:], strict=False))
    assert all(a < b for a, b in zip(spectral, spectral[1:], strict=False))
    # sqrt(1.2) - 1 = 9.5 % shift of every resonance, measured through the frequency grid
    assert 0.06 < resonance[-1] < 0.13
    assert detection[-1] > 0.95


def test_realistic_curves_at_the_wrong_condition_are_caught(
    plate: PlateFrfs, real: np.ndarray
) -> None:
    wrong = real[np.random.default_rng(3).permutation(len(real))]
    metrics = score(plate, real, wrong).metrics
    assert metrics[SIG_SPECTRAL_ERROR] > metrics[SIG_SPECTRAL_ERROR_UNCONDITIONAL]
    assert metrics[SIG_DETECTION_AUC] > 0.6  # the conditions are detection features


def test_noise_scores_near_the_floor(plate: PlateFrfs, real: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    metrics = score(plate, real, rng.normal(real.mean(), real.std(), real.shape)).metrics
    assert metrics[SIG_SPECTRAL_ERROR] > metrics[SIG_SPECTRAL_ERROR_UNCONDITIONAL]
    assert metrics[SIG_RESONANCE_ERROR] > 0.2
    assert metrics[SIG_DETECTION_AUC] > 0.95


def test_every_representation_gives_the_same_scores(plate: PlateFrfs) -> None:
    h_real, h_generated = frfs(plate, PLATE, seed=1), frfs(plate, PLATE, seed=2)
    reference = score(plate, log_magnitude(h_real), log_magnitude(h_generated)).metrics
    magnitude = score(
        plate,
        np.abs(h_real)[:, None],
        np.abs(h_generated)[:, None],
        representation="magnitude",
    ).metrics
    real_imag = score(
        plate,
        np.stack([h_real.real, h_real.imag], axis=1),
        np.stack([h_generated.real, h_generated.imag], axis=1),
        representation="real_imag",
    ).metrics
    for metrics in (magnitude, real_imag):
        assert metrics == pytest.approx(reference, rel=1e-6)


def test_non_finite_generated_curves_are_clipped_not_fatal(
    plate: PlateFrfs, real: np.ndarray
) -> None:
    broken = real.copy()
    broken[:10] = np.nan
    report = score(plate, real, broken)
    assert np.isfinite(report.metrics[SIG_SPECTRAL_ERROR])
    assert any("clipped" in note for note in report.notes)


def test_to_decibels_is_20_log10_magnitude() -> None:
    h = np.array([[[1e-3, 1e-5]]])
    np.testing.assert_allclose(to_decibels(np.log10(h), "log_magnitude"), [[[-60.0, -100.0]]])
    np.testing.assert_allclose(to_decibels(h, "magnitude"), [[[-60.0, -100.0]]])
    with pytest.raises(DataError, match=r"real_imag curves need 2 channels"):
        to_decibels(h, "real_imag")


def test_bad_inputs_fail_with_one_line(plate: PlateFrfs, real: np.ndarray) -> None:
    with pytest.raises(DataError, match=r"must be non-empty \(N, C, L\) arrays of one shape"):
        score(plate, real, real[:10])
    with pytest.raises(DataError, match=r"frequencies \(64,\) do not match curve length 128"):
        evaluate_quality(
            "signal",
            SignalInputs(real=real, generated=real, frequencies=np.arange(64.0)),
            config=QualityConfig(),
        )
    with pytest.raises(DataError, match=r"5 conditions for 200 curves"):
        evaluate_quality(
            "signal",
            SignalInputs(
                real=real,
                generated=real,
                frequencies=plate.frequencies_hz,
                conditions=np.zeros((5, 2)),
            ),
            config=QualityConfig(),
        )
    table = TabularInputs(real_train=None, real_test=None, synthetic=None)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"signal metrics need SignalInputs, got TabularInputs"):
        evaluate_quality("signal", table, config=QualityConfig())


# ---- baselines: real curves (ceiling) and the mean curve (floor)


def test_replicates_make_the_ceiling_and_the_mean_curve_the_floor(plate: PlateFrfs) -> None:
    real = log_magnitude(frfs(plate, PLATE, seed=1))
    replicate = log_magnitude(frfs(plate, PLATE, seed=2))  # a second measurement, same points
    test, train = np.arange(150, 200), np.arange(150)
    # the training split also holds a replicate of every held-out point
    train_curves = np.concatenate([real[train], replicate[test]])
    train_points = np.concatenate([plate.coordinates_m[train], plate.coordinates_m[test]])
    reports = signal_baselines(
        train_curves,
        real[test],
        QualityConfig(),
        frequencies=plate.frequencies_hz,
        train_conditions=train_points,
        test_conditions=plate.coordinates_m[test],
    )
    real_data, mean = reports[BASELINE_REAL], reports[BASELINE_MEAN_CURVE]
    assert real_data.sample_sizes["replicate_curves"] == 50 and real_data.notes == ()
    # only the 5 % measurement noise separates a curve from its replicate
    assert 0.0 < real_data.metrics[SIG_SPECTRAL_ERROR] < 1.0
    assert real_data.metrics[SIG_RESONANCE_ERROR] < 0.02
    assert mean.metrics[SIG_SPECTRAL_ERROR] > 5 * real_data.metrics[SIG_SPECTRAL_ERROR]
    # a plate's resonances do not move with the excitation point: the mean curve keeps them
    assert mean.metrics[SIG_RESONANCE_ERROR] > real_data.metrics[SIG_RESONANCE_ERROR]
    assert mean.sample_sizes["mean_curve_train_curves"] == 200


def test_replicates_are_found_in_the_held_out_split_first() -> None:
    curves = np.arange(5.0)[:, None, None] * np.ones((5, 1, 3))
    conditions = np.array([[0.0], [1.0], [0.0], [2.0], [0.0]])
    stand_in, count = replicate_curves(
        curves[:1] + 100, curves, train_conditions=np.array([[1.0]]), test_conditions=conditions
    )
    # condition 0 cycles through its three held-out curves, 1 takes the training replicate,
    # 2 has none and stands in for itself
    assert stand_in[:, 0, 0].tolist() == [2.0, 100.0, 4.0, 3.0, 0.0]
    assert count == 4
    # unconditional curves all share one condition: each is paired with another
    stand_in, count = replicate_curves(curves, curves)
    assert count == 5 and not np.any(stand_in[:, 0, 0] == curves[:, 0, 0])


def test_the_mean_curve_is_the_same_in_every_representation(plate: PlateFrfs) -> None:
    h = frfs(plate, PLATE, seed=1)
    reference = to_decibels(mean_curve(log_magnitude(h), "log_magnitude"), "log_magnitude")
    for curves, representation in (
        (np.abs(h)[:, None], "magnitude"),
        (np.stack([h.real, h.imag], axis=1), "real_imag"),
    ):
        curve = mean_curve(curves, representation)  # type: ignore[arg-type]
        assert curve.shape == (1, curves.shape[1], curves.shape[2])
        decibels = to_decibels(curve, representation)  # type: ignore[arg-type]
        np.testing.assert_allclose(decibels, reference, atol=1e-9)
