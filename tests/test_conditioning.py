"""Conditional GANs learn their condition: samples at each condition match that condition's data.

Each test trains a real trial at toy size on data where ``x`` depends strongly on ``y``, then
checks the EMA generator of its last checkpoint condition by condition. The negative control
trains the same trial with a discriminator that ignores ``y`` (the condition embedding that
joins its input is replaced by zeros) and asserts that the same check fails: a test a
discriminator blind to the condition passes would not test conditioning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

from gan_hpc.bundle.load import SampleGenerator
from gan_hpc.config import TrialConfig
from gan_hpc.data.datasets import PreparedData, load_dataset
from gan_hpc.trial.checkpoint import generator_weights, load_checkpoint
from gan_hpc.trial.latents import sample_latent
from gan_hpc.trial.layers import _InputCondition
from gan_hpc.trial.models import build_models
from gan_hpc.trial.train import train_trial

pytestmark = pytest.mark.slow  # four toy trials: about 25 s on one core

CLASS_CENTERS = {"a": (-3.0, 0.0), "b": (3.0, 0.0), "c": (0.0, 4.0)}
CLASS_SPREAD = 0.4
# margins, from training seeds 0-2: class accuracy trained >= 0.998, blind D 0.13-0.53 per class
# (chance: 1/3); curve error ratio trained 0.52-0.62, blind D 1.21-1.39 (sqrt 2 in theory)
MIN_CLASS_ACCURACY = 0.9
MAX_CURVE_ERROR_RATIO = 0.8


def _blind_discriminator(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every discriminator ignore the condition: zeros where its embedding joins the input.

    Returns:
        A one-element call counter, so a test can check the patch was really used.

    """
    calls = [0]
    original = _InputCondition.forward

    def ignore_condition(self: _InputCondition, x: Tensor, cond: Tensor | None) -> Tensor:
        calls[0] += 1
        joined = original(self, x, cond)
        return torch.cat([x, torch.zeros_like(joined[:, x.shape[1] :])], dim=1)

    monkeypatch.setattr(_InputCondition, "forward", ignore_condition)
    return calls


def _trained_sampler(config: TrialConfig, run_dir: Path) -> tuple[SampleGenerator, PreparedData]:
    """Train the trial and load the EMA generator of its last checkpoint, as export does."""
    result = train_trial(config, run_dir)
    assert result.state == "finished"
    checkpoint = max(
        (run_dir / "checkpoints").glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1])
    )
    state = load_checkpoint(checkpoint)
    weights, source = generator_weights(state, checkpoint)
    assert source == "ema"
    data = load_dataset(config.data)
    generator, _ = build_models(config.model, data.schema)
    generator.load_state_dict(weights)
    generator.eval()
    sampler = SampleGenerator(
        module=generator,
        transform=data.transform,
        schema=data.schema,
        model_config=config.model,
        path=checkpoint,
        device=torch.device("cpu"),
    )
    return sampler, data


# ---- (a) a class condition: three well separated 2-D modes, one per class


def _class_config(tmp_path: Path) -> TrialConfig:
    """An MLP cGAN on a CSV whose rows sit at their class's mode (seeded, 900 rows)."""
    rng = np.random.default_rng(0)
    frames = [
        pd.DataFrame(
            {
                "u": cx + CLASS_SPREAD * rng.standard_normal(300),
                "v": cy + CLASS_SPREAD * rng.standard_normal(300),
                "label": name,
            }
        )
        for name, (cx, cy) in CLASS_CENTERS.items()
    ]
    path = tmp_path / "modes.csv"
    pd.concat(frames).sample(frac=1.0, random_state=0).to_csv(path, index=False)
    document: dict[str, Any] = {
        "data": {
            "format": "csv",
            "path": str(path),
            "conditional": True,
            "condition_column": "label",
            "numeric_transform": "minmax",
        },
        "model": {
            "latent_dim": 4,
            "generator": {"depth": 2, "width": 32},
            "discriminator": {"depth": 2, "width": 32},
            "ema_decay": 0.99,
        },
        "optim": {"generator": {"lr": 1e-3}, "discriminator": {"lr": 1e-3}},
        "train": {"batch_size": 64, "num_steps": 300, "eval_every_steps": 300},
        "convergence": {"num_eval_samples": 64},
        "quality": {"use_at_trial_end": False},
    }
    return TrialConfig.from_dict(document, source="test")


def _class_accuracy(sampler: SampleGenerator) -> dict[str, float]:
    """Per class: the share of 500 samples asked for it that lie nearest its own mode."""
    names = list(CLASS_CENTERS)
    centers = np.array([CLASS_CENTERS[name] for name in names])
    accuracy = {}
    for name in names:
        rows = sampler.sample(500, condition=name, seed=1)
        assert (rows["label"] == name).all()
        points = rows[["u", "v"]].to_numpy(dtype=float)
        nearest = ((points[:, None, :] - centers[None]) ** 2).sum(axis=-1).argmin(axis=1)
        accuracy[name] = float((np.array(names)[nearest] == name).mean())
    return accuracy


def _learned_classes(accuracy: dict[str, float]) -> bool:
    """The check: every class's samples sit at that class's mode."""
    return min(accuracy.values()) >= MIN_CLASS_ACCURACY


def test_class_condition_is_learned(tmp_path: Path) -> None:
    sampler, _ = _trained_sampler(_class_config(tmp_path), tmp_path / "trial")
    accuracy = _class_accuracy(sampler)
    assert _learned_classes(accuracy), accuracy
    for name, center in CLASS_CENTERS.items():  # and the class's mean is its mode's centre
        rows = sampler.sample(500, condition=name, seed=2)
        mean = rows[["u", "v"]].to_numpy(dtype=float).mean(axis=0)
        assert np.abs(mean - np.array(center)).max() < 0.75, (name, mean)


def test_class_check_fails_when_discriminator_ignores_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _blind_discriminator(monkeypatch)
    sampler, _ = _trained_sampler(_class_config(tmp_path), tmp_path / "trial")
    assert calls[0] > 0
    accuracy = _class_accuracy(sampler)
    assert not _learned_classes(accuracy), accuracy
    assert np.mean(list(accuracy.values())) < 0.6, accuracy  # near chance (1/3)


# ---- (b) a continuous condition: plate FRFs as a function of the excitation point


def _curve_config() -> TrialConfig:
    """A conv1d cGAN on 300 simulated plate FRFs (16 modes, 32 frequencies)."""
    document: dict[str, Any] = {
        "data": {
            "format": "synthetic_frf",
            "conditional": True,
            "synthetic": {
                "num_points": 300,
                "num_frequencies": 32,
                "num_modes_per_axis": 4,
                "freq_max_hz": 150.0,
            },
        },
        "model": {
            "family": "conv1d",
            "latent_dim": 4,
            "generator": {"depth": 2, "width": 32},
            "discriminator": {"depth": 2, "width": 32},
            "ema_decay": 0.99,
        },
        "optim": {"generator": {"lr": 1e-3}, "discriminator": {"lr": 1e-3}},
        "train": {"batch_size": 32, "num_steps": 500, "eval_every_steps": 500},
        "convergence": {"num_eval_samples": 64},
        "quality": {"use_at_trial_end": False},
    }
    return TrialConfig.from_dict(document, source="test")


def _curve_error_ratio(sampler: SampleGenerator, data: PreparedData) -> float:
    """RMSE of curves generated at held-out conditions over that of the mean training curve.

    Both against the real curve at each condition, in model units, four latent draws per
    condition; below 1 the generator knows more about a condition than the average does.
    """
    test = data.test
    assert test.cond is not None
    repeats = 4
    cond = test.cond.repeat(repeats, 1)
    real = test.x.repeat(repeats, 1, 1)
    model = sampler.model_config
    rng = torch.Generator().manual_seed(1)
    z = sample_latent(len(cond), model.latent_dim, model.latent_distribution, generator=rng)
    generated = sampler.generate(z, cond)
    mean_curve = data.train.x.mean(dim=0, keepdim=True)

    def rmse(curves: Tensor) -> float:
        return float(((curves - real) ** 2).mean().sqrt())

    return rmse(generated) / rmse(mean_curve)


def _learned_curves(ratio: float) -> bool:
    """The check: generated curves are much closer to the real one than the mean curve is."""
    return ratio < MAX_CURVE_ERROR_RATIO


def test_continuous_condition_is_learned(tmp_path: Path) -> None:
    sampler, data = _trained_sampler(_curve_config(), tmp_path / "trial")
    ratio = _curve_error_ratio(sampler, data)
    assert _learned_curves(ratio), ratio


def test_continuous_check_fails_when_discriminator_ignores_condition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _blind_discriminator(monkeypatch)
    sampler, data = _trained_sampler(_curve_config(), tmp_path / "trial")
    assert calls[0] > 0
    ratio = _curve_error_ratio(sampler, data)
    assert not _learned_curves(ratio), ratio
    assert ratio > 1.0, ratio  # no better than the mean curve
