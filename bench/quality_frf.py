"""Held-out quality of what an FRF sweep finds, beside a minimal GAN loop, ceiling and floor.

Runs a shipped FRF spec as shipped (default ``sweeps/quickstart.yaml``; ``--set seed=S`` per
sweep seed), exports every trial it ranked and scores each bundle by one protocol on the
held-out test split: a curve is generated at each test point's excitation coordinates and
compared with the real curve there, as the RMSE of ``20 log10 |H|`` in dB
(``gan_hpc.quality.signals.to_decibels``, the figure ``quality/log_spectral_error`` reports).

Rows, on the same split and budget:

- the leaderboard's top-1 and the sweep's best trial by that error;
- a minimal hand-written conditional GAN (torch only, no gan_hpc model or trainer code:
  an MLP generator of z and sin/cos coordinate features, an MLP discriminator of the curve and
  the same features, BCE plus an L1 term to the real curve at the same point), trained for
  the spec's number of steps;
- references: the real curve of the nearest training point (1-NN lookup, a strong non-GAN
  baseline) and the mean training curve (the floor a generator must beat).

    python bench/quality_frf.py [--spec sweeps/quickstart.yaml] [--seeds 0 1 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import nn

from gan_hpc import load_generator
from gan_hpc.config import load_trial_config
from gan_hpc.data.datasets import load_dataset
from gan_hpc.quality.signals import to_decibels

ROOT = Path(__file__).resolve().parents[1]


def spectral_error_db(generated: np.ndarray, real: np.ndarray, representation: str) -> float:
    """RMSE in dB between curves paired row by row (both (N, C, L) in data units)."""
    difference = to_decibels(generated, representation) - to_decibels(real, representation)
    return float(np.sqrt(np.mean(difference**2)))


def fourier(cond: torch.Tensor, num_frequencies: int = 6) -> torch.Tensor:
    """Coordinates in [-1, 1] with sin/cos at ``num_frequencies`` harmonics."""
    phases = ((cond + 1) / 2).unsqueeze(-1) * math.pi * torch.arange(1, num_frequencies + 1)
    return torch.cat([cond, phases.sin().flatten(1), phases.cos().flatten(1)], dim=1)


def minimal_cgan(
    train_x: torch.Tensor,
    train_cond: torch.Tensor,
    test_cond: torch.Tensor,
    *,
    seed: int,
    num_steps: int,
) -> np.ndarray:
    """Train a small cGAN + L1 by hand; return model-space curves at ``test_cond``."""
    torch.manual_seed(seed)
    shape, flat = train_x.shape[1:], train_x.flatten(1)
    latent, width, batch = 16, 64, 64
    features = fourier(train_cond[:1]).shape[1]
    generator = nn.Sequential(
        nn.Linear(latent + features, width),
        nn.BatchNorm1d(width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, width),
        nn.BatchNorm1d(width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, flat.shape[1]),
        nn.Tanh(),
    )
    discriminator = nn.Sequential(
        nn.Linear(flat.shape[1] + features, width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, 1),
    )
    ema = copy.deepcopy(generator).eval()  # averaged with a warm-up, as gan-hpc does
    opt_g = torch.optim.Adam(generator.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 1e-3, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    for step in range(num_steps):
        index = torch.randint(len(flat), (batch,))
        real, cond = flat[index], fourier(train_cond[index])
        fake = generator(torch.cat([torch.randn(batch, latent), cond], 1))
        loss_d = F.binary_cross_entropy_with_logits(
            discriminator(torch.cat([real, cond], 1)), ones
        ) + F.binary_cross_entropy_with_logits(
            discriminator(torch.cat([fake.detach(), cond], 1)), zeros
        )
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = (
            F.binary_cross_entropy_with_logits(discriminator(torch.cat([fake, cond], 1)), ones)
            + 10.0 * (fake - real).abs().mean()
        )
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for averaged, live in zip(ema.parameters(), generator.parameters(), strict=True):
                averaged.lerp_(live, 1 - min(0.999, (1 + step) / (10 + step)))
            for averaged, live in zip(ema.buffers(), generator.buffers(), strict=True):
                averaged.copy_(live)
    with torch.no_grad():
        draw = torch.Generator().manual_seed(seed + 1)
        z = torch.randn(len(test_cond), latent, generator=draw)
        out = ema(torch.cat([z, fourier(test_cond)], 1))
    return out.reshape(len(test_cond), *shape).numpy()


def gan_hpc(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gan_hpc", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=ROOT / "sweeps" / "quickstart.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="sweep seeds")
    parser.add_argument("--out", type=Path, help="where sweeps go (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_trial_config(args.spec)
    data = load_dataset(config.data)
    transform = data.transform
    representation = config.data.frf.representation
    if data.test.cond is None or data.train.cond is None:
        sys.exit(f"{args.spec}: not a conditional FRF spec")
    real_test = np.asarray(transform.inverse_transform(data.test.x.numpy()))
    real_train = np.asarray(transform.inverse_transform(data.train.x.numpy()))
    test_coords = transform.inverse_condition(data.test.cond.numpy())
    names = transform.schema.condition.names  # type: ignore[union-attr]

    nearest = np.argmin(
        ((data.test.cond[:, None, :] - data.train.cond[None, :, :]) ** 2).sum(-1).numpy(), axis=1
    )
    mean_curve = np.repeat(real_train.mean(axis=0, keepdims=True), len(real_test), axis=0)
    references = [
        ("real curve of the nearest training point (1-NN)", real_train[nearest]),
        ("mean training curve (floor)", mean_curve),
    ]
    floor = spectral_error_db(mean_curve, real_test, representation)
    out = args.out or Path(tempfile.mkdtemp(prefix="quality-frf-"))
    print(
        f"{args.spec.name}: {len(real_train)} training curves, {len(real_test)} test curves; "
        f"errors in dB at the test points' coordinates\n",
        flush=True,
    )
    for seed in args.seeds:
        started = time.perf_counter()
        gan_hpc(
            "sweep",
            "run",
            str(args.spec),
            "--out",
            str(out / f"seed{seed}" / "sweep"),
            "--set",
            f"seed={seed}",
        )
        wall = time.perf_counter() - started
        sweep_dir = out / f"seed{seed}" / "sweep"
        board = json.loads(gan_hpc("sweep", "status", str(sweep_dir), "--format", "json").stdout)
        trials = [row for row in board if row.get("rank") is not None and row.get("step")]
        exports = sweep_dir.parent / "bench-exports"
        gan_hpc(
            "export", str(sweep_dir), "--top", str(len(trials)), "--out", str(exports), "--force"
        )
        errors = {}
        for row in trials:
            sampler = load_generator(next(exports.glob(f"*-{row['trial_id']}")))
            curves = [
                sampler.sample(
                    1, condition=dict(zip(names, map(float, point), strict=True)), seed=1 + i
                ).values[0]
                for i, point in enumerate(test_coords)
            ]
            errors[row["trial_id"]] = (
                int(row["rank"]),
                spectral_error_db(np.stack(curves), real_test, representation),
            )
        top = next(t for t, (rank, _) in errors.items() if rank == 1)
        best = min(errors, key=lambda t: errors[t][1])
        tau = kendalltau([r for r, _ in errors.values()], [e for _, e in errors.values()])
        started = time.perf_counter()
        minimal = minimal_cgan(
            data.train.x,
            data.train.cond,
            data.test.cond,
            seed=seed,
            num_steps=config.train.num_steps,
        )
        minimal_wall = time.perf_counter() - started
        minimal_curves = np.asarray(transform.inverse_transform(minimal))
        rows = [
            (f"leaderboard top-1 ({top})", errors[top][1], f"{wall:.0f} (sweep)"),
            (f"best trial ({best}, rank {errors[best][0]})", errors[best][1], ""),
            (
                f"minimal hand-written cGAN + L1 ({config.train.num_steps} steps)",
                spectral_error_db(minimal_curves, real_test, representation),
                f"{minimal_wall:.0f}",
            ),
            *[
                (label, spectral_error_db(c, real_test, representation), "")
                for label, c in references
            ],
        ]
        print(f"### sweep seed {seed}: {len(trials)} trials\n")
        print("| row | log-spectral error dB | ÷ mean curve | wall s |\n|---|---|---|---|")
        for label, error, seconds in rows:
            print(f"| {label} | {error:.2f} | {error / floor:.2f} | {seconds} |")
        print(
            f"\nKendall tau (leaderboard rank vs test error, {len(errors)} trials): "
            f"{tau.statistic:.2f}\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
