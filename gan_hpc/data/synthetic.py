"""Built-in FRF data: a simply supported rectangular Kirchhoff plate by modal superposition.

The physics (Leissa, *Vibration of Plates*, NASA SP-160, 1969, ch. 4; Ewins, *Modal Testing*,
2nd ed., 2000, sec. 2.7) for a plate of sides ``a`` x ``b``, thickness ``h``, Young's modulus
``E``, Poisson ratio ``nu`` and density ``rho``:

- flexural rigidity ``D = E h^3 / (12 (1 - nu^2))``;
- natural frequencies ``omega_mn = pi^2 (m^2/a^2 + n^2/b^2) sqrt(D / (rho h))`` (rad/s);
- mode shapes ``phi_mn(x, y) = sin(m pi x / a) sin(n pi y / b)``, whose modal mass is
  ``M_mn = integral of rho h phi_mn^2 over the plate = rho h a b / 4``;
- receptance (displacement per unit force) between an excitation point ``p`` and a response
  point ``r``, with modal damping ratio ``zeta``::

      H(omega) = sum_mn phi_mn(p) phi_mn(r)
                 / (M_mn (omega_mn^2 - omega^2 + 2 i zeta omega_mn omega))

  for ``m, n`` in ``1..num_modes_per_axis``. It is symmetric in ``p`` and ``r`` (Maxwell's
  reciprocity).

:func:`simulate_plate_frf` evaluates this for many excitation points at once;
:func:`write_frf_excel` writes the result in the coordinates-plus-one-Excel-file-per-point layout
that the ``frf_excel`` reader reads.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gan_hpc.config import SyntheticFrfConfig

logger = logging.getLogger(__name__)

COORDINATE_NAMES = ("x_m", "y_m")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlateFrfs:
    """Simulated FRFs of one plate: one complex receptance curve per excitation point.

    Attributes:
        frequencies_hz: (L,) frequency axis.
        coordinates_m: (N, 2) excitation points (x, y) in metres, named by ``coordinate_names``.
        frf: (N, L) complex128 receptance in m/N at the response point.
        natural_frequencies_hz: every mode's natural frequency, sorted ascending.
        coordinate_names: names of the two coordinate columns.

    """

    frequencies_hz: np.ndarray
    coordinates_m: np.ndarray
    frf: np.ndarray
    natural_frequencies_hz: np.ndarray
    coordinate_names: tuple[str, str] = COORDINATE_NAMES


def _mode_numbers(config: SyntheticFrfConfig) -> tuple[np.ndarray, np.ndarray]:
    """Mode indices (m, n) for m, n in 1..num_modes_per_axis, flattened to (K,) each."""
    orders = np.arange(1, config.num_modes_per_axis + 1, dtype=np.float64)
    m, n = np.meshgrid(orders, orders, indexing="ij")
    return m.ravel(), n.ravel()


def _natural_angular_frequencies(config: SyntheticFrfConfig) -> np.ndarray:
    """``omega_mn`` in rad/s for every (m, n) of :func:`_mode_numbers`, in that order."""
    a, b, h = config.length_x_m, config.length_y_m, config.thickness_m
    rigidity = config.youngs_modulus_pa * h**3 / (12.0 * (1.0 - config.poisson_ratio**2))
    m, n = _mode_numbers(config)
    return (
        math.pi**2 * (m**2 / a**2 + n**2 / b**2) * math.sqrt(rigidity / (config.density_kg_m3 * h))
    )


def natural_frequencies_hz(config: SyntheticFrfConfig) -> np.ndarray:
    """Natural frequencies of all ``num_modes_per_axis**2`` modes in Hz, sorted ascending."""
    return np.sort(_natural_angular_frequencies(config) / (2.0 * math.pi))


def _mode_shapes(config: SyntheticFrfConfig, points_m: np.ndarray) -> np.ndarray:
    """``phi_mn`` at (P, 2) points in metres, as (P, K)."""
    m, n = _mode_numbers(config)
    x = points_m[:, :1] / config.length_x_m
    y = points_m[:, 1:2] / config.length_y_m
    return np.sin(m * math.pi * x) * np.sin(n * math.pi * y)


def receptance(
    config: SyntheticFrfConfig,
    excitation_m: np.ndarray,
    response_m: np.ndarray,
    frequencies_hz: np.ndarray,
) -> np.ndarray:
    """Receptance of the plate by modal superposition (see the module docstring).

    Args:
        config: the plate (geometry, material, damping, modes).
        excitation_m: (N, 2) excitation points (x, y) in metres.
        response_m: (2,) response point in metres.
        frequencies_hz: (L,) frequencies.

    Returns:
        (N, L) complex128 displacement at ``response_m`` per unit force at each excitation point.

    """
    omega_modes = _natural_angular_frequencies(config)[:, None]  # (K, 1)
    omega = 2.0 * math.pi * np.asarray(frequencies_hz, dtype=np.float64)[None, :]  # (1, L)
    plate_mass = config.density_kg_m3 * config.thickness_m * config.length_x_m * config.length_y_m
    modal_mass = plate_mass / 4.0
    denominator = modal_mass * (
        omega_modes**2 - omega**2 + 2j * config.damping_ratio * omega_modes * omega
    )  # (K, L)
    phi_excitation = _mode_shapes(config, np.asarray(excitation_m, dtype=np.float64))  # (N, K)
    phi_response = _mode_shapes(config, np.asarray(response_m, dtype=np.float64).reshape(1, 2))
    return (phi_excitation * phi_response) @ (1.0 / denominator)


def _excitation_points(config: SyntheticFrfConfig, rng: np.random.Generator) -> np.ndarray:
    """(N, 2) excitation points: an interior grid or seeded uniform draws over the plate."""
    a, b = config.length_x_m, config.length_y_m
    if config.layout == "random":
        return rng.uniform((0.0, 0.0), (a, b), size=(config.num_points, 2))
    # Grid spacing roughly equal in x and y, so the side with more length gets more points;
    # the count is num_points rounded to nx * ny.
    num_x = max(2, round(math.sqrt(config.num_points * a / b)))
    num_y = max(2, round(config.num_points / num_x))
    xs = a * np.arange(1, num_x + 1) / (num_x + 1)
    ys = b * np.arange(1, num_y + 1) / (num_y + 1)
    grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
    return np.column_stack([grid_x.ravel(), grid_y.ravel()])


def simulate_plate_frf(config: SyntheticFrfConfig) -> PlateFrfs:
    """Simulate one receptance curve per excitation point (vectorised; deterministic per seed).

    Relative noise, when ``noise_std > 0``, is complex Gaussian with standard deviation
    ``noise_std * |H|`` at each frequency, drawn after the (random) excitation points.
    """
    rng = np.random.default_rng(config.seed)
    frequencies = np.linspace(config.freq_min_hz, config.freq_max_hz, config.num_frequencies)
    points = _excitation_points(config, rng)
    response = np.array(config.response_point) * (config.length_x_m, config.length_y_m)
    frf = receptance(config, points, response, frequencies)
    if config.noise_std > 0:
        noise = rng.standard_normal(frf.shape) + 1j * rng.standard_normal(frf.shape)
        frf = frf + config.noise_std * np.abs(frf) * noise / math.sqrt(2.0)
    logger.debug("simulated %d plate FRFs x %d frequencies", len(points), len(frequencies))
    return PlateFrfs(
        frequencies_hz=frequencies,
        coordinates_m=points,
        frf=frf,
        natural_frequencies_hz=natural_frequencies_hz(config),
    )


def write_frf_excel(
    frfs: PlateFrfs,
    out_dir: Path,
    *,
    layout: Literal["real_imag", "magnitude_phase"] = "real_imag",
) -> Path:
    """Write ``out_dir/coordinates.xlsx`` plus ``out_dir/frf/point_0001.xlsx``, ... .

    ``coordinates.xlsx`` has the coordinate columns and a ``file`` column naming each point's
    FRF file; each FRF file has ``frequency_hz`` and either ``real``, ``imag`` or
    ``magnitude``, ``phase_deg``.

    Returns:
        The path of ``coordinates.xlsx``.

    """
    out_dir = Path(out_dir)
    frf_dir = out_dir / "frf"
    frf_dir.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(frfs.frf))))
    names = [f"point_{i + 1:0{width}d}.xlsx" for i in range(len(frfs.frf))]
    for name, curve in zip(names, frfs.frf, strict=True):
        if layout == "real_imag":
            values = {"real": curve.real, "imag": curve.imag}
        else:
            values = {"magnitude": np.abs(curve), "phase_deg": np.degrees(np.angle(curve))}
        frame = pd.DataFrame({"frequency_hz": frfs.frequencies_hz, **values})
        frame.to_excel(frf_dir / name, index=False, engine="openpyxl")
    coordinates = pd.DataFrame(frfs.coordinates_m, columns=list(frfs.coordinate_names))
    coordinates["file"] = names
    coordinates_path = out_dir / "coordinates.xlsx"
    coordinates.to_excel(coordinates_path, index=False, engine="openpyxl")
    return coordinates_path
