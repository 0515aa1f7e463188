from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_hpc.config import LossName, ModelConfig, NetworkConfig
from gan_hpc.data.types import ConditionSchema, DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.trial.latents import sample_condition, sample_latent
from gan_hpc.trial.losses import LOSSES, LossPair, clip_weights, get_loss, gradient_penalty
from gan_hpc.trial.models import build_models

SCHEMA_FOR_FAMILY = {
    "mlp": DataSchema(kind="tabular", sample_shape=(5,)),
    "dcgan": DataSchema(kind="image", sample_shape=(1, 8, 8)),
    "conv1d": DataSchema(kind="signal", sample_shape=(1, 16)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_matches_config_choices() -> None:
    assert set(get_args(LossName)) == set(LOSSES)
    assert all(isinstance(pair, LossPair) for pair in LOSSES.values())


def test_unknown_loss_lists_valid_names() -> None:
    valid = "bce, bce_logits, hinge, lsgan, wasserstein, wgan_gp"
    with pytest.raises(SpecError, match=rf"loss.name: unknown loss 'bse' \(valid: {valid}\)"):
        get_loss("bse")
    assert get_loss("hinge") is LOSSES["hinge"]


def test_flags() -> None:
    assert [n for n, p in LOSSES.items() if p.uses_weight_clipping] == ["wasserstein"]
    assert [n for n, p in LOSSES.items() if p.uses_gradient_penalty] == ["wgan_gp"]


def test_bce_and_bce_logits_agree_including_gradients() -> None:
    torch.manual_seed(0)
    real = (torch.randn(64) * 3).requires_grad_(True)
    fake = (torch.randn(64) * 3).requires_grad_(True)
    bce, logits = LOSSES["bce"], LOSSES["bce_logits"]
    d_bce, d_logits = bce.d_loss(real, fake), logits.d_loss(real, fake)
    torch.testing.assert_close(d_bce, d_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bce.g_loss(fake), logits.g_loss(fake), rtol=1e-5, atol=1e-5)
    grads_bce = torch.autograd.grad(d_bce, (real, fake))
    grads_logits = torch.autograd.grad(d_logits, (real, fake))
    for a, b in zip(grads_bce, grads_logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_bce_matches_nn_bceloss_as_in_the_seeds() -> None:
    real, fake = torch.tensor([0.3, -1.2, 2.0]), torch.tensor([-0.5, 0.1, 1.5])
    criterion = nn.BCELoss()
    expected = criterion(torch.sigmoid(real), torch.ones(3)) + criterion(
        torch.sigmoid(fake), torch.zeros(3)
    )
    torch.testing.assert_close(LOSSES["bce"].d_loss(real, fake), expected)
    torch.testing.assert_close(
        LOSSES["bce"].g_loss(fake), criterion(torch.sigmoid(fake), torch.ones(3))
    )


@pytest.mark.parametrize("name", ["bce", "bce_logits"])
def test_bce_equilibrium_is_two_ln_two_at_zero_scores(name: str) -> None:
    zeros = torch.zeros(16)
    pair = LOSSES[name]
    assert pair.equilibrium_d_loss == pytest.approx(2 * math.log(2))
    assert pair.d_loss(zeros, zeros).item() == pytest.approx(pair.equilibrium_d_loss)
    assert pair.g_loss(zeros).item() == pytest.approx(math.log(2))


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_work_under_autocast(name: str) -> None:
    # BCELoss is banned under CUDA autocast; every loss must run wherever scores come from.
    real, fake = torch.randn(8).bfloat16(), torch.randn(8).bfloat16()
    pair = LOSSES[name]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d_loss, g_loss = pair.d_loss(real, fake), pair.g_loss(fake)
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


def test_bce_stays_finite_for_saturated_scores() -> None:
    real, fake = torch.tensor([-200.0, 200.0]), torch.tensor([200.0, -200.0])
    loss = LOSSES["bce"].d_loss(real, fake)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(-math.log(1e-7), rel=0.02)  # one clamped term per side


def test_hinge_values() -> None:
    pair = LOSSES["hinge"]
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # real: relu(-1), relu(0.5) -> 0.25; fake: relu(-1), relu(1) -> 0.5
    assert pair.d_loss(real, fake).item() == pytest.approx(0.75)
    assert pair.g_loss(fake).item() == pytest.approx(1.0)
    zeros = torch.zeros(4)
    assert pair.d_loss(zeros, zeros).item() == pytest.approx(pair.equilibrium_d_loss)
    assert pair.equilibrium_d_loss == 2.0


def test_lsgan_values() -> None:
    pair = LOSSES["lsgan"]
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert pair.d_loss(real, fake).item() == pytest.approx(0.5 + 0.5)
    assert pair.g_loss(fake).item() == pytest.approx(0.5)
    half = torch.full((4,), 0.5)  # the optimal least-squares D when p_g = p_data
    assert pair.d_loss(half, half).item() == pytest.approx(pair.equilibrium_d_loss)
    assert pair.equilibrium_d_loss == 0.5


@pytest.mark.parametrize("name", ["wasserstein", "wgan_gp"])
def test_wasserstein_values(name: str) -> None:
    pair = LOSSES[name]
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([0.5, -0.5])
    assert pair.d_loss(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert pair.g_loss(fake).item() == pytest.approx(0.0)
    assert pair.d_loss(fake, fake).item() == pair.equilibrium_d_loss == 0.0


class LinearCritic(nn.Module):
    """D(x) = <w, flatten(x)>: its gradient norm is ||w|| everywhere."""

    def __init__(self, features: int, norm: float) -> None:
        super().__init__()
        weight = torch.randn(features)
        self.weight = nn.Parameter(weight / weight.norm() * norm)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return x.flatten(1) @ self.weight


@pytest.mark.parametrize("shape", [(3,), (1, 4, 4), (2, 10)])
def test_gradient_penalty_of_linear_critics(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(8, *shape), torch.randn(8, *shape)
    features = math.prod(shape)
    lipschitz = gradient_penalty(LinearCritic(features, 1.0), real, fake, None)
    assert lipschitz.item() == pytest.approx(0.0, abs=1e-10)
    steep = LinearCritic(features, 5.0)
    penalty = gradient_penalty(steep, real, fake, None)
    assert penalty.item() == pytest.approx(16.0, rel=1e-5)  # (5 - 1)^2
    penalty.backward()  # create_graph: the penalty trains the critic
    assert steep.weight.grad is not None and steep.weight.grad.norm() > 0


def test_gradient_penalty_is_reproducible_with_a_generator() -> None:
    torch.manual_seed(0)
    schema = DataSchema(
        kind="image",
        sample_shape=(1, 8, 8),
        condition=ConditionSchema(kind="class", dim=2, names=("a", "b")),
    )
    config = ModelConfig(family="dcgan", latent_dim=4, discriminator=NetworkConfig(width=8))
    _, discriminator = build_models(config, schema)
    real, fake = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    cond = sample_condition(schema, 4)
    values = [
        gradient_penalty(discriminator, real, fake, cond, torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    assert values[0].item() == values[1].item() and values[0].item() > 0


def test_clip_weights() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(10)
    clip_weights(module, 0.01)
    assert all(p.abs().max() <= 0.01 for p in module.parameters())
    assert all(p.abs().max().item() == pytest.approx(0.01) for p in module.parameters())


def train_few_steps(family: str, name: str, num_steps: int = 3) -> list[tuple[float, float]]:
    torch.manual_seed(0)
    schema = SCHEMA_FOR_FAMILY[family]
    network = NetworkConfig(depth=2, width=8)
    config = ModelConfig(family=family, latent_dim=4, generator=network, discriminator=network)
    generator, discriminator = build_models(config, schema)
    g_optim = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_optim = torch.optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    pair = get_loss(name)
    data = torch.rand(32, *schema.sample_shape) * 2 - 1
    losses = []
    for step in range(num_steps):
        real = data[step * 8 : (step + 1) * 8]
        fake = generator(sample_latent(8, config.latent_dim, "normal"))
        d_loss = pair.d_loss(discriminator(real), discriminator(fake.detach()))
        if pair.uses_gradient_penalty:
            d_loss = d_loss + 10.0 * gradient_penalty(discriminator, real, fake, None)
        d_optim.zero_grad()
        d_loss.backward()
        d_optim.step()
        if pair.uses_weight_clipping:
            clip_weights(discriminator, 0.01)
        g_loss = pair.g_loss(discriminator(fake))
        g_optim.zero_grad()
        g_loss.backward()
        g_optim.step()
        losses.append((d_loss.item(), g_loss.item()))
    return losses


@pytest.mark.parametrize("family", list(SCHEMA_FOR_FAMILY))
@pytest.mark.parametrize("name", list(LOSSES))
def test_every_loss_trains_every_family(family: str, name: str) -> None:
    losses = train_few_steps(family, name)
    assert len(losses) == 3
    assert all(math.isfinite(d) and math.isfinite(g) for d, g in losses)


def test_non_saturating_generator_gradient_is_large_when_d_wins() -> None:
    # D confidently rejects the fakes: -log D(G(z)) still pushes hard, log(1 - D) would not.
    fake = torch.full((4,), -6.0, requires_grad=True)
    (grad,) = torch.autograd.grad(LOSSES["bce_logits"].g_loss(fake), fake)
    assert grad.abs().mean().item() > 0.2
    saturating = -F.softplus(fake).mean()  # log(1 - sigmoid(s)) = -softplus(s)
    (weak,) = torch.autograd.grad(saturating, fake)
    assert weak.abs().mean().item() < 0.01


def test_marginal_gap_compares_each_class_with_itself() -> None:
    from gan_hpc.trial.steps import marginal_gap

    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    real_cond = torch.tensor([0, 0, 1, 1])
    # the same rows per class in another order: no gap
    order = [1, 0, 3, 2]
    same = marginal_gap(real[order], real_cond[order], real, real_cond, num_classes=3)
    assert same.item() == 0.0
    # class 0 is half and half in the real batch; all-first-category fakes miss it by 0.5 twice
    fake = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    gap = marginal_gap(fake, real_cond, real, real_cond, num_classes=3)
    assert gap.item() == pytest.approx(0.25)  # (0.5 + 0) / 2
    # the same rows without classes: pooled shares 0.75 / 0.25 against 1 / 0
    assert marginal_gap(fake, None, real, None, num_classes=0).item() == pytest.approx(0.125)
    # a class only one batch has is left out rather than compared with nothing
    only_real = marginal_gap(
        fake[:2], real_cond[:2], real, torch.tensor([0, 0, 2, 2]), num_classes=3
    )
    assert only_real.item() == pytest.approx(0.5)
    # it is differentiable in the fake rows
    rows = fake.clone().requires_grad_(True)
    marginal_gap(rows, real_cond, real, real_cond, num_classes=3).backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0


def test_marginal_weight_is_for_tables_only() -> None:
    from gan_hpc.config import LossConfig
    from gan_hpc.trial.steps import check_marginal

    image = DataSchema(kind="image", sample_shape=(1, 8, 8))
    with pytest.raises(SpecError, match="marginal_weight"):
        check_marginal(LossConfig(marginal_weight=1.0), image)
    check_marginal(LossConfig(), image)
