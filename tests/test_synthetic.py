from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from gan_hpc.config import DataConfig, FrfOptions, SyntheticFrfConfig
from gan_hpc.data.readers import frf_channels, read_data
from gan_hpc.data.synthetic import (
    PlateFrfs,
    natural_frequencies_hz,
    receptance,
    simulate_plate_frf,
    write_frf_excel,
)

# A steel square plate: Leissa (1969) gives omega_11 a^2 sqrt(rho h / D) = 2 pi^2 for SSSS.
STEEL = SyntheticFrfConfig(
    length_x_m=0.5,
    length_y_m=0.5,
    thickness_m=0.002,
    youngs_modulus_pa=200e9,
    poisson_ratio=0.3,
    density_kg_m3=7850.0,
)


def _response_m(config: SyntheticFrfConfig) -> np.ndarray:
    return np.array(config.response_point) * (config.length_x_m, config.length_y_m)


def _peak_frequencies(curve: np.ndarray, frequencies: np.ndarray, **kwargs: float) -> np.ndarray:
    peaks, _ = find_peaks(np.log10(np.abs(curve)), **kwargs)
    return frequencies[peaks]


def test_first_natural_frequency_matches_closed_form() -> None:
    first = natural_frequencies_hz(STEEL)[0]
    assert first == pytest.approx(38.389, rel=1e-4)
    rigidity = 200e9 * 0.002**3 / (12 * (1 - 0.3**2))
    frequency_parameter = 2 * math.pi * first * 0.5**2 * math.sqrt(7850 * 0.002 / rigidity)
    assert frequency_parameter == pytest.approx(2 * math.pi**2, rel=1e-12)


def test_natural_frequencies_are_sorted_and_scale_as_m2_plus_n2() -> None:
    frequencies = natural_frequencies_hz(STEEL)
    assert len(frequencies) == STEEL.num_modes_per_axis**2
    assert np.all(np.diff(frequencies) >= 0)
    # Square plate: f_mn = f_11 (m^2 + n^2) / 2, so (1,2) and (2,1) coincide at 2.5 f_11.
    assert frequencies[1] == pytest.approx(2.5 * frequencies[0])
    assert frequencies[2] == pytest.approx(2.5 * frequencies[0])
    assert frequencies[-1] == pytest.approx(36 * frequencies[0])


def test_driving_point_frf_peaks_at_every_mode_in_band() -> None:
    # At a driving point every mode is excited (phi(r)^2 > 0), so each gives a resonance peak.
    config = SyntheticFrfConfig(damping_ratio=0.005)
    frequencies = np.linspace(5.0, 300.0, 600)
    bin_hz = frequencies[1] - frequencies[0]
    response = _response_m(config)
    curve = receptance(config, response[None, :], response, frequencies)[0]
    peaks = _peak_frequencies(curve, frequencies)
    in_band = [f for f in natural_frequencies_hz(config) if f < frequencies[-1]]
    assert len(peaks) == len(in_band) == 5
    np.testing.assert_allclose(peaks, in_band, atol=bin_hz)


def test_excitation_on_a_node_line_leaves_those_modes_out() -> None:
    config = SyntheticFrfConfig(damping_ratio=0.005)
    frequencies = np.linspace(5.0, 300.0, 600)
    bin_hz = frequencies[1] - frequencies[0]
    # x = a/2 is a node line of every mode with even m: (2,1) 127 Hz and (2,2) 265 Hz vanish.
    excitation = np.array([[config.length_x_m / 2, 0.3 * config.length_y_m]])
    curve = receptance(config, excitation, _response_m(config), frequencies)[0]
    peaks = _peak_frequencies(curve, frequencies)
    natural = natural_frequencies_hz(config)
    expected = [natural[0], natural[2], natural[3]]  # (1,1), (1,2), (3,1)
    np.testing.assert_allclose(peaks, expected, atol=bin_hz)
    for missing in (natural[1], natural[4]):
        assert np.min(np.abs(peaks - missing)) > 10 * bin_hz


def test_prominent_peaks_of_simulated_frfs_sit_at_natural_frequencies() -> None:
    config = SyntheticFrfConfig(
        num_points=40, damping_ratio=0.005, freq_max_hz=300.0, num_frequencies=600, seed=1
    )
    frfs = simulate_plate_frf(config)
    bin_hz = frfs.frequencies_hz[1] - frfs.frequencies_hz[0]
    num_peaks = 0
    for curve in frfs.frf:
        for peak in _peak_frequencies(curve, frfs.frequencies_hz, prominence=1.0):
            assert np.min(np.abs(frfs.natural_frequencies_hz - peak)) <= bin_hz
            num_peaks += 1
    assert num_peaks >= 2 * len(frfs.frf)


def test_reciprocity() -> None:
    config = SyntheticFrfConfig()
    frequencies = np.linspace(5.0, 400.0, 64)
    points = np.array([[0.11, 0.07], [0.52, 0.33], [0.3, 0.2]])
    for p in points:
        for r in points:
            forward = receptance(config, p[None, :], r, frequencies)
            backward = receptance(config, r[None, :], p, frequencies)
            np.testing.assert_allclose(forward, backward, rtol=1e-12, atol=0)


def test_simulated_frf_equals_receptance_at_the_response_point() -> None:
    config = SyntheticFrfConfig(num_points=10, num_frequencies=16)
    frfs = simulate_plate_frf(config)
    expected = receptance(config, frfs.coordinates_m, _response_m(config), frfs.frequencies_hz)
    np.testing.assert_array_equal(frfs.frf, expected)
    assert frfs.frf.dtype == np.complex128
    assert frfs.frf.shape == (10, 16)
    np.testing.assert_allclose(frfs.frequencies_hz, np.linspace(5.0, 400.0, 16))
    # Well below the first resonance the plate responds in phase with the force.
    low = receptance(config, frfs.coordinates_m, _response_m(config), np.array([1.0]))
    assert np.all(np.sign(low.real) == np.sign(frfs.frf[:, :1].real))


def test_grid_layout_is_regular_interior_and_seed_free() -> None:
    config = SyntheticFrfConfig(num_points=300, layout="grid")
    frfs = simulate_plate_frf(config)
    xs = np.unique(frfs.coordinates_m[:, 0])
    ys = np.unique(frfs.coordinates_m[:, 1])
    assert len(xs) * len(ys) == len(frfs.coordinates_m)
    assert abs(len(frfs.coordinates_m) - 300) <= 0.05 * 300
    np.testing.assert_allclose(np.diff(xs), xs[0])
    np.testing.assert_allclose(np.diff(ys), ys[0])
    assert xs[-1] < config.length_x_m and ys[-1] < config.length_y_m
    other_seed = simulate_plate_frf(dataclasses.replace(config, seed=9))
    np.testing.assert_array_equal(other_seed.coordinates_m, frfs.coordinates_m)


def test_random_layout_is_inside_the_plate_and_seeded() -> None:
    config = SyntheticFrfConfig(num_points=200, layout="random", seed=4)
    first = simulate_plate_frf(config)
    again = simulate_plate_frf(config)
    other = simulate_plate_frf(dataclasses.replace(config, seed=5))
    assert first.coordinates_m.shape == (200, 2)
    assert np.all(first.coordinates_m > 0)
    assert np.all(first.coordinates_m < (config.length_x_m, config.length_y_m))
    np.testing.assert_array_equal(first.frf, again.frf)
    assert not np.allclose(first.coordinates_m, other.coordinates_m)


def test_noise_is_relative_and_seeded() -> None:
    clean_config = SyntheticFrfConfig(num_points=50, num_frequencies=64, seed=2)
    noisy_config = dataclasses.replace(clean_config, noise_std=0.05)
    clean = simulate_plate_frf(clean_config)
    noisy = simulate_plate_frf(noisy_config)
    np.testing.assert_array_equal(noisy.coordinates_m, clean.coordinates_m)
    np.testing.assert_array_equal(noisy.frf, simulate_plate_frf(noisy_config).frf)
    relative = np.abs(noisy.frf - clean.frf) / np.abs(clean.frf)
    assert 0.03 < np.sqrt(np.mean(relative**2)) < 0.07


def test_default_size_and_pickle() -> None:
    frfs = simulate_plate_frf(SyntheticFrfConfig())
    assert frfs.frf.shape == (300, 128)
    assert frfs.coordinate_names == ("x_m", "y_m")
    restored = pickle.loads(pickle.dumps(frfs))
    assert isinstance(restored, PlateFrfs)
    np.testing.assert_array_equal(restored.frf, frfs.frf)


def test_synthetic_reader_matches_the_simulator() -> None:
    synthetic = SyntheticFrfConfig(num_points=12, num_frequencies=32)
    config = DataConfig(
        format="synthetic_frf", synthetic=synthetic, frf=FrfOptions(representation="real_imag")
    )
    arrays = read_data(config)
    frfs = simulate_plate_frf(synthetic)
    assert arrays.kind == "signal"
    assert arrays.samples.shape == (12, 2, 32) and arrays.samples.dtype == np.float32
    assert arrays.channel_names == ("real", "imag")
    np.testing.assert_array_equal(arrays.samples[:, 0], frfs.frf.real.astype(np.float32))
    np.testing.assert_array_equal(arrays.conditions, frfs.coordinates_m)
    assert arrays.condition_names == ("x_m", "y_m")
    np.testing.assert_array_equal(arrays.axis, frfs.frequencies_hz)
    assert arrays.axis_name == "frequency_hz"
    assert arrays.metadata["natural_frequencies_hz"] == frfs.natural_frequencies_hz.tolist()


@pytest.mark.parametrize("layout", ["real_imag", "magnitude_phase"])
@pytest.mark.parametrize("representation", ["log_magnitude", "real_imag", "magnitude"])
def test_excel_round_trip(tmp_path: Path, layout: str, representation: str) -> None:
    frfs = simulate_plate_frf(SyntheticFrfConfig(num_points=5, num_frequencies=12, seed=3))
    coordinates_path = write_frf_excel(frfs, tmp_path / "plate", layout=layout)
    assert coordinates_path == tmp_path / "plate" / "coordinates.xlsx"
    assert sorted(p.name for p in (tmp_path / "plate" / "frf").iterdir())[0] == "point_0001.xlsx"
    for path in (coordinates_path, coordinates_path.parent):
        config = DataConfig(path=str(path), frf=FrfOptions(representation=representation))
        arrays = read_data(config)
        expected, channel_names = frf_channels(frfs.frf, representation)
        assert arrays.channel_names == channel_names
        assert arrays.samples.dtype == np.float32
        np.testing.assert_allclose(arrays.samples, expected, rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(arrays.conditions, frfs.coordinates_m, rtol=1e-12)
        assert arrays.condition_names == ("x_m", "y_m")
        np.testing.assert_allclose(arrays.axis, frfs.frequencies_hz, rtol=1e-12)
