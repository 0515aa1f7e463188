from __future__ import annotations

import copy
import math
from typing import get_args

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gan_hpc.config import (
    Activation,
    GeneratorNetworkConfig,
    ModelConfig,
    ModelFamily,
    NetworkConfig,
    Norm,
)
from gan_hpc.data.types import ColumnBlock, ConditionSchema, DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.trial.conv_models import conv_depth
from gan_hpc.trial.ema import ExponentialMovingAverage
from gan_hpc.trial.latents import sample_condition, sample_latent
from gan_hpc.trial.layers import resolve_output_activation
from gan_hpc.trial.losses import get_loss, gradient_penalty
from gan_hpc.trial.models import (
    DISCRIMINATORS,
    GENERATORS,
    TabularHead,
    build_models,
    get_family,
    unwrap_model,
)

BLOCKS = (
    ColumnBlock("age", "numeric", 1),
    ColumnBlock("workclass", "categorical", 3),
    ColumnBlock("hours", "numeric", 1),
    ColumnBlock("education", "categorical", 4),
)
SCHEMAS = {
    "tabular": DataSchema(kind="tabular", sample_shape=(9,), blocks=BLOCKS),
    "image": DataSchema(kind="image", sample_shape=(1, 8, 8)),
    "signal": DataSchema(kind="signal", sample_shape=(2, 20)),
}
CONDITIONS = {
    "none": None,
    "class": ConditionSchema(
        kind="class", dim=3, names=("a", "b", "c"), frequencies=(0.5, 0.3, 0.2)
    ),
    "continuous": ConditionSchema(kind="continuous", dim=2, names=("x", "y")),
}
KINDS_FOR_FAMILY = {
    "mlp": ("tabular", "image", "signal"),
    "dcgan": ("image",),
    "conv1d": ("signal",),
}
LATENT_DIM = 4
BATCH = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def schema_for(
    kind: str, condition: str | ConditionSchema = "none", **changes: object
) -> DataSchema:
    base = SCHEMAS[kind]
    fields = {
        "kind": base.kind,
        "sample_shape": base.sample_shape,
        "value_range": base.value_range,
        "blocks": base.blocks,
        "condition": CONDITIONS[condition] if isinstance(condition, str) else condition,
    }
    fields.update(changes)
    return DataSchema(**fields)  # type: ignore[arg-type]


def tiny_config(family: str, **changes: object) -> ModelConfig:
    fields: dict[str, object] = {
        "family": family,
        "latent_dim": LATENT_DIM,
        "generator": NetworkConfig(depth=2, width=8, norm="batch"),
        "discriminator": NetworkConfig(depth=2, width=8),
        "condition_embedding_dim": 3,
    }
    fields.update(changes)
    return ModelConfig(**fields)  # type: ignore[arg-type]


def real_batch(schema: DataSchema, batch: int = BATCH) -> torch.Tensor:
    return torch.rand(batch, *schema.sample_shape) * 2 - 1


def contract_cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for family, kinds in KINDS_FOR_FAMILY.items():
        for kind in kinds:
            for condition in CONDITIONS:
                for conditioning in ("concat", "projection"):
                    if condition == "none" and conditioning == "projection":
                        continue  # conditioning is irrelevant without a condition
                    cases.append((family, kind, condition, conditioning))
    return cases


def assert_every_parameter_has_grad(*modules: nn.Module) -> None:
    for module in modules:
        missing = [name for name, p in module.named_parameters() if p.grad is None]
        assert not missing, f"unused parameters: {missing}"


@pytest.mark.parametrize(("family", "kind", "condition", "conditioning"), contract_cases())
def test_model_contract(family: str, kind: str, condition: str, conditioning: str) -> None:
    torch.manual_seed(0)
    schema = schema_for(kind, condition)
    generator, discriminator = build_models(tiny_config(family, conditioning=conditioning), schema)
    z = sample_latent(BATCH, LATENT_DIM, "normal")
    cond = sample_condition(schema, BATCH)
    assert (cond is None) == (condition == "none")

    fake = generator(z, cond)
    assert fake.shape == (BATCH, *schema.sample_shape)
    assert torch.isfinite(fake).all()
    assert fake.min() >= -1 and fake.max() <= 1  # value_range (-1, 1): tanh (and softmax blocks)
    if kind == "tabular":
        for block in fake.split([b.width for b in BLOCKS], dim=1)[1::2]:
            torch.testing.assert_close(block.sum(dim=1), torch.ones(BATCH))

    real_scores = discriminator(real_batch(schema), cond)
    fake_scores = discriminator(fake, cond)
    assert real_scores.shape == fake_scores.shape == (BATCH,)
    assert torch.isfinite(real_scores).all() and torch.isfinite(fake_scores).all()

    (real_scores.mean() - fake_scores.mean()).backward()
    assert_every_parameter_has_grad(generator, discriminator)
    for parameter in [*generator.parameters(), *discriminator.parameters()]:
        assert torch.isfinite(parameter.grad).all()


def test_registries_match_config_choices() -> None:
    assert set(get_args(ModelFamily)) == set(GENERATORS) == set(DISCRIMINATORS)


def test_unknown_family_lists_valid_names() -> None:
    with pytest.raises(
        SpecError, match=r"model.family: unknown family 'gan' \(valid: conv1d, dcgan, mlp\)"
    ):
        get_family("gan")
    assert get_family("mlp") == (GENERATORS["mlp"], DISCRIMINATORS["mlp"])


@pytest.mark.parametrize(
    ("family", "kind", "hint"),
    [
        ("dcgan", "tabular", "needs image data.*use model.family 'mlp'"),
        ("dcgan", "signal", "needs image data.*use model.family 'conv1d' or 'mlp'"),
        ("conv1d", "image", "needs signal data.*use model.family 'dcgan' or 'mlp'"),
        ("conv1d", "tabular", "needs signal data.*use model.family 'mlp'"),
    ],
)
def test_family_that_does_not_fit_the_data_is_a_spec_error(
    family: str, kind: str, hint: str
) -> None:
    with pytest.raises(SpecError, match=hint) as info:
        build_models(tiny_config(family), schema_for(kind))
    assert "\n" not in str(info.value)


def test_conv_family_rejects_sides_below_two() -> None:
    schema = DataSchema(kind="signal", sample_shape=(1, 1))
    with pytest.raises(SpecError, match="every side >= 2"):
        build_models(tiny_config("conv1d"), schema)


@pytest.mark.parametrize("family", list(KINDS_FOR_FAMILY))
@pytest.mark.parametrize("norm", get_args(Norm))
@pytest.mark.parametrize("activation", get_args(Activation))
def test_every_norm_and_activation_builds(family: str, norm: str, activation: str) -> None:
    network = NetworkConfig(depth=2, width=8, norm=norm, activation=activation, dropout=0.1)
    schema = schema_for(KINDS_FOR_FAMILY[family][-1], "class")
    config = tiny_config(family, generator=network, discriminator=network)
    generator, discriminator = build_models(config, schema)
    cond = sample_condition(schema, BATCH)
    scores = discriminator(generator(sample_latent(BATCH, LATENT_DIM, "uniform"), cond), cond)
    assert scores.shape == (BATCH,) and torch.isfinite(scores).all()
    scores.sum().backward()
    assert_every_parameter_has_grad(generator, discriminator)


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (1, 69, 69), (3, 8, 8), (3, 7, 9)])
@pytest.mark.parametrize("depth", [1, 3, 8])
def test_dcgan_any_image_size(shape: tuple[int, ...], depth: int) -> None:
    schema = DataSchema(kind="image", sample_shape=shape, value_range=(0.0, 1.0))
    network = NetworkConfig(depth=depth, width=4, norm="batch")
    generator, discriminator = build_models(
        tiny_config("dcgan", generator=network, discriminator=network), schema
    )
    fake = generator(sample_latent(2, LATENT_DIM, "normal"))
    assert fake.shape == (2, *shape)
    assert fake.min() >= 0 and fake.max() <= 1  # auto: sigmoid for (0, 1)
    assert discriminator(fake).shape == (2,)


@pytest.mark.parametrize("shape", [(1, 128), (1, 100), (2, 13), (1, 2)])
@pytest.mark.parametrize("depth", [1, 2, 8])
def test_conv1d_any_signal_length(shape: tuple[int, ...], depth: int) -> None:
    schema = DataSchema(kind="signal", sample_shape=shape, value_range=None)
    network = NetworkConfig(depth=depth, width=4)
    generator, discriminator = build_models(
        tiny_config("conv1d", generator=network, discriminator=network), schema
    )
    fake = generator(sample_latent(2, LATENT_DIM, "normal"))
    assert fake.shape == (2, *shape)
    assert discriminator(fake).shape == (2,)


def test_conv_depth_is_clamped_so_the_smallest_side_stays_two() -> None:
    assert conv_depth(8, (8, 8)) == 2
    assert conv_depth(8, (28, 28)) == 3
    assert conv_depth(8, (69, 69)) == 5
    assert conv_depth(2, (69, 69)) == 2
    assert conv_depth(8, (128,)) == 6
    assert conv_depth(3, (2,)) == 1
    assert conv_depth(3, (3, 100)) == 1


@pytest.mark.parametrize(
    ("value_range", "choice", "expected"),
    [
        ((-1.0, 1.0), "auto", "tanh"),
        ((0.0, 1.0), "auto", "sigmoid"),
        (None, "auto", "none"),
        ((0.0, 255.0), "auto", "none"),
        ((0.0, 1.0), "tanh", "tanh"),
        ((-1.0, 1.0), "sigmoid", "sigmoid"),
        ((-1.0, 1.0), "none", "none"),
    ],
)
def test_output_activation(value_range: object, choice: str, expected: str) -> None:
    schema = schema_for("image", value_range=value_range)
    config = tiny_config("mlp", output_activation=choice)
    assert resolve_output_activation(config, schema) == expected
    generator, _ = build_models(config, schema)
    with torch.no_grad():
        for layer in generator.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(200)  # large pre-activations: bounded outputs must stay bounded
        fake = generator(sample_latent(64, LATENT_DIM, "normal"))
    low, high = {"tanh": (-1, 1), "sigmoid": (0, 1), "none": (-math.inf, math.inf)}[expected]
    assert fake.min() >= low and fake.max() <= high
    if expected == "none":
        assert fake.abs().max() > 1


def test_tabular_numeric_blocks_are_unbounded_for_quantile_data() -> None:
    generator, _ = build_models(tiny_config("mlp"), schema_for("tabular", value_range=None))
    head = generator.output
    assert isinstance(head, TabularHead) and isinstance(head.numeric, nn.Identity)


def test_tabular_gumbel_head_gives_exact_one_hot_rows() -> None:
    torch.manual_seed(0)
    schema = schema_for("tabular", "class")
    generator, discriminator = build_models(tiny_config("mlp", tabular_head="gumbel"), schema)
    cond = sample_condition(schema, 32)
    fake = generator(sample_latent(32, LATENT_DIM, "normal"), cond)
    for block in fake.split([b.width for b in BLOCKS], dim=1)[1::2]:
        assert set(block.unique().tolist()) <= {0.0, 1.0}
        assert (block.sum(dim=1) == 1).all()
    discriminator(fake, cond).sum().backward()  # straight-through: gradients reach G
    assert_every_parameter_has_grad(generator)


def test_the_gumbel_head_draws_each_category_at_its_softmax_probability() -> None:
    # the Gumbel-max trick: argmax(logits + Gumbel noise) ~ softmax(logits), in every block of
    # the one noise draw
    torch.manual_seed(0)
    blocks = [ColumnBlock("wide", "categorical", 3), ColumnBlock("narrow", "categorical", 2)]
    head = TabularHead(blocks=blocks, numeric_activation="none", head="gumbel", gumbel_tau=0.2)
    probabilities = torch.tensor([0.6, 0.3, 0.1, 0.8, 0.2])
    logits = torch.cat([probabilities[:3].log(), probabilities[3:].log()]).expand(40_000, 5)
    rows = head(logits)
    assert set(rows.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(rows[:, :3].sum(dim=1), torch.ones(40_000))
    torch.testing.assert_close(rows[:, 3:].sum(dim=1), torch.ones(40_000))
    torch.testing.assert_close(rows.mean(dim=0), probabilities, atol=0.01, rtol=0)


@pytest.mark.parametrize("head", ["gumbel", "softmax"])
def test_a_mixed_block_is_zero_at_its_spike_and_trains_both_parts(head: str) -> None:
    torch.manual_seed(0)
    blocks = (ColumnBlock("gain", "mixed", 3), ColumnBlock("age", "numeric", 1))
    schema = DataSchema(kind="tabular", sample_shape=(4,), blocks=blocks)
    generator, discriminator = build_models(tiny_config("mlp", tabular_head=head), schema)
    fake = generator(sample_latent(256, LATENT_DIM, "normal"))
    flag, value = fake[:, :2], fake[:, 2]
    torch.testing.assert_close(flag.sum(dim=1), torch.ones(256))
    if head == "gumbel":
        assert set(flag.unique().tolist()) <= {0.0, 1.0}
        assert (value[flag[:, 0] == 1] == 0).all() and (value[flag[:, 1] == 1] != 0).any()
    discriminator(fake).sum().backward()
    assert_every_parameter_has_grad(generator)


def test_tabular_blocks_must_cover_the_features() -> None:
    schema = schema_for("tabular", sample_shape=(10,))
    with pytest.raises(SpecError, match="blocks cover 9 features but sample_shape has 10"):
        build_models(tiny_config("mlp"), schema)


def test_conditional_models_require_cond_and_unconditional_reject_it() -> None:
    generator, discriminator = build_models(tiny_config("mlp"), schema_for("image", "class"))
    z = sample_latent(2, LATENT_DIM, "normal")
    with pytest.raises(ValueError, match="generator is conditional"):
        generator(z)
    with pytest.raises(ValueError, match="discriminator is conditional"):
        discriminator(torch.zeros(2, 1, 8, 8))
    generator, _ = build_models(tiny_config("mlp"), schema_for("image"))
    with pytest.raises(ValueError, match="unconditional"):
        generator(z, torch.zeros(2, dtype=torch.long))


def test_weight_init_is_deterministic_and_dcgan_style() -> None:
    config = tiny_config(
        "dcgan",
        generator=NetworkConfig(depth=2, width=64, norm="batch"),
        discriminator=NetworkConfig(depth=2, width=64, norm="spectral"),
    )
    states = []
    for _ in range(2):
        torch.manual_seed(3)
        generator, discriminator = build_models(config, schema_for("image", "class"))
        states.append({**generator.state_dict(), **discriminator.state_dict()})
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=0, atol=0)
    conv_weights = torch.cat(
        [m.weight.flatten() for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    )
    assert conv_weights.std().item() == pytest.approx(0.02, rel=0.1)
    assert conv_weights.mean().abs().item() < 0.002
    bn_weights = torch.cat(
        [m.weight for m in generator.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    )
    assert bn_weights.mean().item() == pytest.approx(1.0, abs=0.01)
    first_conv = discriminator.blocks[0]
    original = first_conv.parametrizations.weight.original  # spectral norm wraps the init
    assert original.std().item() == pytest.approx(0.02, rel=0.2)


def test_sample_latent() -> None:
    normal = sample_latent(4000, 3, "normal", generator=torch.Generator().manual_seed(1))
    again = sample_latent(4000, 3, "normal", generator=torch.Generator().manual_seed(1))
    assert normal.shape == (4000, 3) and torch.equal(normal, again)
    assert normal.std().item() == pytest.approx(1.0, abs=0.05)
    uniform = sample_latent(4000, 3, "uniform", generator=torch.Generator().manual_seed(1))
    assert uniform.min() >= -1 and uniform.max() <= 1 and uniform.min() < -0.99
    with pytest.raises(SpecError, match="valid: normal, uniform"):
        sample_latent(2, 3, "cauchy")


def test_sample_condition() -> None:
    assert sample_condition(schema_for("image"), 5) is None
    rng = torch.Generator().manual_seed(0)
    skewed = ConditionSchema(
        kind="class", dim=3, names=("a", "b", "c"), frequencies=(0.7, 0.3, 0.0)
    )
    labels = sample_condition(schema_for("image", condition=skewed), 4000, generator=rng)
    assert labels is not None and labels.dtype == torch.int64 and labels.shape == (4000,)
    assert (labels != 2).all()
    assert (labels == 0).float().mean().item() == pytest.approx(0.7, abs=0.03)
    uniform = ConditionSchema(kind="class", dim=4, names=("a", "b", "c", "d"))
    labels = sample_condition(schema_for("image", condition=uniform), 4000, generator=rng)
    assert labels is not None and set(labels.tolist()) == {0, 1, 2, 3}
    vectors = sample_condition(schema_for("signal", "continuous"), 100, generator=rng)
    assert vectors is not None and vectors.shape == (100, 2)
    assert vectors.min() >= -1 and vectors.max() <= 1


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: the real model lives in ``.module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.module(*args)


def test_ema_moves_between_old_and_new_weights_and_copies_buffers() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ExponentialMovingAverage(model=model, decay=0.9)
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    old = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    model(torch.randn(8, 3))  # train mode: BatchNorm running statistics change
    ema.num_updates = 1000  # past the warm-up: the configured decay applies
    ema.update(model)
    for averaged, before, after in zip(
        ema.module.parameters(), old.parameters(), model.parameters(), strict=True
    ):
        torch.testing.assert_close(averaged, before + 0.1)
        assert (averaged > before).all() and (averaged < after).all()
    torch.testing.assert_close(ema.module[1].running_mean, model[1].running_mean)
    assert ema.module[1].num_batches_tracked.item() == 1
    assert ema.num_updates == 1001


def test_ema_decay_warms_up_so_early_averages_follow_the_trained_weights() -> None:
    model = nn.Linear(3, 4)
    ema = ExponentialMovingAverage(model=model, decay=0.999)
    before = copy.deepcopy(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # decay min(0.999, 1/10): the average moves 90 % of the way
    torch.testing.assert_close(ema.module.weight, before.weight + 0.9)


def test_ema_state_dict_round_trip() -> None:
    config = tiny_config("mlp", generator=NetworkConfig(width=8, norm="spectral"))
    torch.manual_seed(0)
    generator, _ = build_models(config, schema_for("image"))
    ema = ExponentialMovingAverage(model=generator, decay=0.5)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.mul_(3)
    ema.update(generator)
    ema.update(generator)
    torch.manual_seed(1)
    restored = ExponentialMovingAverage(
        model=build_models(config, schema_for("image"))[0], decay=0.5
    )
    restored.load_state_dict(ema.state_dict())
    assert restored.num_updates == 2
    z = sample_latent(4, LATENT_DIM, "normal")
    torch.testing.assert_close(restored.module(z), ema.module(z))


def test_ema_unwraps_ddp_like_wrappers() -> None:
    torch.manual_seed(0)
    generator, _ = build_models(tiny_config("mlp"), schema_for("image"))
    wrapped = Wrapper(generator)
    assert unwrap_model(wrapped) is generator and unwrap_model(generator) is generator
    ema = ExponentialMovingAverage(model=wrapped, decay=0.99)
    assert not isinstance(ema.module, Wrapper)
    assert set(ema.module.state_dict()) == set(generator.state_dict())
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(1.0)
    ema.update(wrapped)
    first = next(ema.module.parameters())
    live = next(generator.parameters())
    assert (first < live).all() and (first > live - 1.0).all()


@pytest.fixture(scope="module")
def gloo_world(tmp_path_factory):
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("family", list(KINDS_FOR_FAMILY))
@pytest.mark.parametrize("loss_name", ["bce_logits", "wgan_gp"])
def test_models_train_under_ddp_without_unused_parameters(
    gloo_world, family: str, loss_name: str
) -> None:
    # DDP (even with one rank) fails on the second step if any parameter went unused.
    torch.manual_seed(0)
    schema = schema_for(KINDS_FOR_FAMILY[family][-1], "class")
    generator, discriminator = build_models(tiny_config(family, conditioning="projection"), schema)
    generator, discriminator = (
        DistributedDataParallel(generator),
        DistributedDataParallel(discriminator),
    )
    ema = ExponentialMovingAverage(model=generator, decay=0.9)
    g_optim = torch.optim.Adam(generator.parameters(), lr=1e-3)
    d_optim = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    pair = get_loss(loss_name)
    for _ in range(3):
        cond = sample_condition(schema, BATCH)
        fake = generator(sample_latent(BATCH, LATENT_DIM, "normal"), cond)
        d_loss = pair.d_loss(
            discriminator(real_batch(schema), cond), discriminator(fake.detach(), cond)
        )
        if pair.uses_gradient_penalty:
            d_loss = d_loss + 10.0 * gradient_penalty(discriminator, real_batch(schema), fake, cond)
        d_optim.zero_grad()
        d_loss.backward()
        d_optim.step()
        with discriminator.no_sync():
            g_loss = pair.g_loss(discriminator(fake, cond))
            g_optim.zero_grad()
            g_loss.backward()
        g_optim.step()
        ema.update(generator)
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)


@pytest.mark.slow
def test_mlp_gan_learns_a_ring_of_eight_gaussians() -> None:
    # A product requirement: a small MLP GAN must visibly learn a multi-modal distribution.
    torch.manual_seed(0)
    std, batch = 0.05, 256
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
    schema = DataSchema(kind="tabular", sample_shape=(2,), value_range=None)
    config = ModelConfig(
        latent_dim=8,
        generator=NetworkConfig(depth=2, width=64, norm="batch"),
        discriminator=NetworkConfig(depth=2, width=64),
    )
    generator, discriminator = build_models(config, schema)
    g_optim = torch.optim.Adam(generator.parameters(), lr=5e-4, betas=(0.5, 0.999))
    d_optim = torch.optim.Adam(discriminator.parameters(), lr=5e-4, betas=(0.5, 0.999))
    pair = get_loss("bce_logits")
    for _ in range(3000):
        real = centers[torch.randint(0, 8, (batch,))] + std * torch.randn(batch, 2)
        fake = generator(sample_latent(batch, config.latent_dim, "normal"))
        d_loss = pair.d_loss(discriminator(real), discriminator(fake.detach()))
        d_optim.zero_grad()
        d_loss.backward()
        d_optim.step()
        g_loss = pair.g_loss(discriminator(fake))
        g_optim.zero_grad()
        g_loss.backward()
        g_optim.step()
    generator.eval()
    with torch.no_grad():
        samples = generator(sample_latent(4000, config.latent_dim, "normal"))
    distance, mode = torch.cdist(samples, centers).min(dim=1)
    shares = torch.stack([((mode == k) & (distance < 3 * std)).float().mean() for k in range(8)])
    assert (shares >= 0.02).sum().item() >= 7, f"modes covered: {shares.tolist()}"
    assert (distance < 0.5).float().mean().item() >= 0.8


@pytest.mark.parametrize(
    ("family", "kind", "condition"),
    [
        (family, kind, condition)
        for family, kinds in KINDS_FOR_FAMILY.items()
        for kind in kinds
        for condition in ("class", "continuous")
    ],
)
def test_concat_discriminator_judges_x_and_y_together(
    family: str, kind: str, condition: str
) -> None:
    # A condition that meets only the last linear layer adds u.e(y) to w.h(x): the effect of y
    # on the score is then the same for every x. Input conditioning must break that.
    torch.manual_seed(0)
    schema = schema_for(kind, condition)
    _, discriminator = build_models(tiny_config(family, conditioning="concat"), schema)
    with torch.no_grad():  # weights of order 1: DCGAN's N(0, 0.02) leaves effects near 1e-7
        for parameter in discriminator.parameters():
            parameter.normal_(0.0, 0.5)
    x = real_batch(schema, 2)
    cond_a = sample_condition(schema, 1)
    cond_a = cond_a.repeat(2, 1) if condition == "continuous" else cond_a.repeat(2)
    cond_b = cond_a.clone()
    if condition == "class":
        cond_b[:] = (cond_a[0] + 1) % 3
    else:
        cond_b = -cond_a
    with torch.no_grad():
        effect = discriminator(x, cond_b) - discriminator(x, cond_a)  # [2]: one per x
    assert (effect[0] - effect[1]).abs() > 1e-3 * effect.abs().max()


def test_fourier_condition_features() -> None:
    from gan_hpc.trial.layers import ConditionEmbedding

    condition = CONDITIONS["continuous"]
    plain = ConditionEmbedding(condition=condition, dim=5, num_frequencies=0)
    fourier = ConditionEmbedding(condition=condition, dim=5, num_frequencies=3)
    assert plain.layer.in_features == 2
    assert fourier.layer.in_features == 2 * (1 + 2 * 3)
    cond = torch.tensor([[-1.0, 1.0]])
    with torch.no_grad():
        fourier.layer.weight.zero_()
        fourier.layer.weight[0, 2] = 1.0  # sin(pi * t) of the first coordinate, t = 0 at -1
        fourier.layer.weight[1, 4] = 1.0  # sin(3 pi t) of the first coordinate
        out = fourier(cond)
    assert out[0, :2].abs().max() < 1e-6
    with pytest.raises(ValueError, match="condition_num_frequencies"):
        ModelConfig(condition_num_frequencies=-1)


def test_residual_generator_passes_its_input_on() -> None:
    torch.manual_seed(0)
    schema = schema_for("tabular", "class")
    generator = GENERATORS["mlp"](
        config=tiny_config(
            "mlp", generator=GeneratorNetworkConfig(depth=3, width=8, residual=True)
        ),
        schema=schema,
    )
    in_features = LATENT_DIM + 3  # z and the condition embedding
    assert generator.project.in_features == in_features + 3 * 8
    fake = generator(sample_latent(BATCH, LATENT_DIM, "normal"), sample_condition(schema, BATCH))
    assert fake.shape == (BATCH, *schema.sample_shape)
    fake.sum().backward()
    assert_every_parameter_has_grad(generator)
    with pytest.raises(ValueError, match="generator.residual"):
        ModelConfig(family="dcgan", generator=GeneratorNetworkConfig(residual=True))


def test_a_packing_discriminator_judges_packs_of_samples() -> None:
    torch.manual_seed(0)
    schema = schema_for("tabular", "class")
    discriminator = DISCRIMINATORS["mlp"](config=tiny_config("mlp", pac=4), schema=schema)
    in_features = 9 + 3  # a row and its condition embedding, four of them side by side
    assert discriminator.trunk[0].in_features == 4 * in_features
    rows = torch.randn(10, 9)  # 10 rows: two full packs and one completed with the first rows
    cond = sample_condition(schema, 10)
    scores = discriminator(rows, cond)
    assert scores.shape == (10,)
    assert torch.equal(scores[:4], scores[0].expand(4)) and torch.equal(
        scores[4:8], scores[4].expand(4)
    )
    assert scores[0] != scores[4]
    # a pack's score depends on every row in it, and on no row of another pack
    changed = rows.clone()
    changed[5] += 1.0
    moved = discriminator(changed, cond)
    assert torch.equal(moved[:4], scores[:4]) and not torch.equal(moved[4:8], scores[4:8])
    moved.sum().backward()
    assert_every_parameter_has_grad(discriminator)
    gradient_penalty(discriminator, rows, torch.randn(10, 9), cond).backward()


def test_packs_exist_for_concat_mlp_discriminators_only() -> None:
    with pytest.raises(ValueError, match="pac"):
        ModelConfig(family="dcgan", pac=2)
    with pytest.raises(ValueError, match="pac"):
        ModelConfig(conditioning="projection", pac=2)
    with pytest.raises(ValueError, match="pac"):
        ModelConfig(pac=0)
