"""Small configs and fixtures shared by tests (importable, unlike conftest)."""

from __future__ import annotations

from gan_hpc.config import TrialConfig


def small_frf_base(*, width: int = 16, **train: object) -> dict:
    """A conditional MLP GAN on a small simulated FRF set, as a spec's ``base:`` block."""
    return {
        "data": {
            "format": "synthetic_frf",
            "conditional": True,
            "synthetic": {"num_points": 64, "num_frequencies": 32},
        },
        "model": {
            "latent_dim": 8,
            "generator": {"depth": 1, "width": width},
            "discriminator": {"depth": 1, "width": width},
        },
        "train": {"batch_size": 16, "num_steps": 20, "eval_every_steps": 5, **train},
    }


def small_frf_config(**train: object) -> TrialConfig:
    """A conditional MLP GAN on a small simulated FRF set: trains in a second or two on CPU."""
    document = {**small_frf_base(**train), "convergence": {"num_eval_samples": 32}}
    return TrialConfig.from_dict(document, source="test")
