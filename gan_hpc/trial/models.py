"""The GAN zoo: generator and discriminator families, built from a ModelConfig and a DataSchema.

What feeds them lives apart: latent codes and conditions in :mod:`gan_hpc.trial.latents`, the
weights' moving average in :mod:`gan_hpc.trial.ema`.

Every generator maps ``(z[B, latent_dim], cond)`` to ``x[B, *schema.sample_shape]``; every
discriminator maps ``(x, cond)`` to raw scores ``[B]`` (logits: no sigmoid, the losses apply it).
``cond`` is ``None`` for unconditional data, int64 class indices ``[B]`` for ``class`` conditions
and float ``[B, dim]`` in [-1, 1] for ``continuous`` ones.

Families (``model.family``):

- ``mlp``: fully connected; takes any data by flattening. Tabular schemas get a
  :class:`TabularHead` so each categorical block is a softmax or a hard Gumbel-softmax one-hot.
- ``dcgan``: 2-D transposed/strided convolutions for images ``(C, H, W)`` of any size.
- ``conv1d``: the same in 1-D for signals ``(C, L)``, e.g. FRF curves.

The convolutional families are in :mod:`gan_hpc.trial.conv_models`; the layers every family
builds on (initialised layers, norms, output activations, conditioning) in
:mod:`gan_hpc.trial.layers`.

Shared conventions (documented once here):

- Weights start DCGAN-style: conv/linear/embedding N(0, 0.02) with zero bias, norm weight
  N(1, 0.02); deterministic under ``torch.manual_seed``. Spectral norm is applied after init.
- ``norm``: ``batch`` (BatchNorm), ``layer`` (LayerNorm; GroupNorm(1, C) for conv maps),
  ``spectral`` (spectral norm on every linear/conv layer of the network), ``none``. A
  discriminator's first layer never gets batch/layer norm (DCGAN guideline), so an MLP
  discriminator of depth 1 has no norm layer.
- Conditioning: the generator concatenates an embedding of ``cond`` (``nn.Embedding`` for
  classes, ``nn.Linear`` of Fourier features for continuous vectors, ``condition_embedding_dim``
  wide) to ``z``. The discriminator either takes that embedding at its input (``concat``:
  appended to the flattened sample, or extra constant channels of an image or signal), so
  all its layers can judge whether ``x`` fits ``y``, or adds the projection term
  ``<embed(y), h>`` with an embedding as wide as the last features ``h`` (``projection``,
  Miyato & Koyama 2018). Nothing condition-related is built for unconditional data, so every
  parameter is used in every forward (DDP needs no ``find_unused_parameters``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from gan_hpc.config import ModelConfig, NetworkConfig
from gan_hpc.data.types import ColumnBlock, DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.trial.conv_models import ConvDiscriminator, ConvGenerator
from gan_hpc.trial.layers import (
    ScoreHead,
    generator_embedding,
    generator_input,
    hidden_block,
    input_condition,
    linear,
    output_module,
    resolve_output_activation,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "MlpDiscriminator",
    "MlpGenerator",
    "TabularHead",
    "build_models",
    "get_family",
    "unwrap_model",
]


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP-like wrapper (anything with a ``.module``), or itself."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


# ----------------------------------------------------------------------------- output & heads


class TabularHead(nn.Module):
    """Turns a generator's raw tabular outputs into valid rows, block by block.

    Numeric blocks get the output activation; each categorical (one-hot) block gets a softmax
    (``head='softmax'``: rows sum to 1) or a hard straight-through Gumbel-softmax
    (``head='gumbel'``: exact one-hot rows whose gradient is the soft sample's), so every
    generated row decodes to valid categories. A mixed block's [at the spike, elsewhere] pair
    is such a one-hot, and its value is multiplied by "elsewhere": 0 at the spike, as in the
    data. The Gumbel noise of all blocks is one draw per forward.
    """

    def __init__(
        self,
        *,
        blocks: Sequence[ColumnBlock],
        numeric_activation: str,
        head: str,
        gumbel_tau: float,
    ) -> None:
        super().__init__()
        self.widths = [block.width for block in blocks]
        self.kinds = [block.kind for block in blocks]
        self.numeric = output_module(numeric_activation)
        self.head = head
        self.gumbel_tau = gumbel_tau

    def forward(self, logits: Tensor) -> Tensor:
        """Map ``[B, F]`` raw outputs to ``[B, F]`` features."""
        raw_blocks = logits.split(self.widths, dim=1)
        score_blocks = raw_blocks
        if self.head == "gumbel":
            scores = (logits + _gumbel_noise(logits)) / self.gumbel_tau
            score_blocks = scores.split(self.widths, dim=1)
        parts = []
        for raw, score, kind in zip(raw_blocks, score_blocks, self.kinds, strict=True):
            if kind == "numeric":
                parts.append(self.numeric(raw))
            elif kind == "categorical":
                parts.append(self._one_hot(score))
            else:
                at_spike = self._one_hot(score[:, :2])
                parts += [at_spike, self.numeric(raw[:, 2:]) * at_spike[:, 1:]]
        return torch.cat(parts, dim=1)

    def _one_hot(self, scores: Tensor) -> Tensor:
        """The softmax of ``scores``, made an exact one-hot (straight-through) by ``head``."""
        soft = torch.softmax(scores, dim=1)
        if self.head != "gumbel":
            return soft
        hard = torch.zeros_like(soft).scatter_(1, soft.argmax(dim=1, keepdim=True), 1.0)
        return hard - soft.detach() + soft


def _gumbel_noise(like: Tensor) -> Tensor:
    """Standard Gumbel noise ``-log(E)``, ``E ~ Exp(1)``, shaped like ``like``.

    ``E`` is drawn as ``-log(1 - U)``: uniform draws are several times faster on CPU than
    ``exponential_``, which dominated the Gumbel-softmax head. ``E`` is kept above 0 so the
    noise stays finite.
    """
    exponential = torch.log1p(-torch.rand_like(like)).neg_()
    return exponential.clamp_min_(torch.finfo(like.dtype).tiny).log_().neg_()


def _generator_output(config: ModelConfig, schema: DataSchema) -> nn.Module:
    """Build the generator's last activation: a :class:`TabularHead` for tables with blocks."""
    activation = resolve_output_activation(config, schema)
    if schema.kind != "tabular" or not schema.blocks:
        return output_module(activation)
    total = sum(block.width for block in schema.blocks)
    if total != schema.num_features:
        raise SpecError(
            f"data schema: blocks cover {total} features but sample_shape has "
            f"{schema.num_features}; rebuild the schema from the fitted transformer"
        )
    return TabularHead(
        blocks=schema.blocks,
        numeric_activation=activation,
        head=config.tabular_head,
        gumbel_tau=config.gumbel_tau,
    )


# ------------------------------------------------------------------------------------- MLP


def _mlp_trunk(in_features: int, network: NetworkConfig, *, is_discriminator: bool) -> nn.Module:
    """``depth`` hidden layers of ``width`` units."""
    modules: list[nn.Module] = []
    for index in range(network.depth):
        use_norm = not (is_discriminator and index == 0)
        layer = linear(
            in_features if index == 0 else network.width,
            network.width,
            norm=network.norm,
            bias=not (use_norm and network.norm in ("batch", "layer")),  # norms carry the shift
        )
        modules += hidden_block(layer, network, network.width, spatial_dims=0, use_norm=use_norm)
    return nn.Sequential(*modules)


class _ResidualBlock(nn.Module):
    """``cat([act(norm(linear(x))), x])``: a hidden block that passes its input on (CTGAN)."""

    def __init__(self, in_features: int, network: NetworkConfig) -> None:
        super().__init__()
        use_bias = network.norm not in ("batch", "layer")  # norms carry the shift
        layer = linear(in_features, network.width, norm=network.norm, bias=use_bias)
        block = hidden_block(layer, network, network.width, spatial_dims=0, use_norm=True)
        self.block = nn.Sequential(*block)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in]`` -> ``[B, width + in]``."""
        return torch.cat([self.block(x), x], dim=1)


def _residual_trunk(in_features: int, network: NetworkConfig) -> tuple[nn.Module, int]:
    """``depth`` residual blocks and the width of their output."""
    blocks = []
    for _ in range(network.depth):
        blocks.append(_ResidualBlock(in_features, network))
        in_features += network.width
    return nn.Sequential(*blocks), in_features


class MlpGenerator(nn.Module):
    """Fully connected generator for any data kind (outputs are reshaped to the sample shape).

    With ``generator.residual`` the hidden blocks are residual (:class:`_ResidualBlock`).
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema) -> None:
        super().__init__()
        network = config.generator
        self.sample_shape = tuple(schema.sample_shape)
        self.embedding = generator_embedding(config, schema)
        in_features = config.latent_dim + (config.condition_embedding_dim if self.embedding else 0)
        features = network.width
        if getattr(network, "residual", False):  # a plain NetworkConfig has none
            self.trunk, features = _residual_trunk(in_features, network)
        else:
            self.trunk = _mlp_trunk(in_features, network, is_discriminator=False)
        self.project = linear(features, schema.num_features, norm=network.norm)
        self.output = _generator_output(config, schema)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, latent_dim]`` -> ``[B, *sample_shape]``."""
        flat = self.output(self.project(self.trunk(generator_input(self.embedding, z, cond))))
        return flat.reshape(z.shape[0], *self.sample_shape)


class MlpDiscriminator(nn.Module):
    """Fully connected discriminator on flattened samples.

    With ``concat`` conditioning the condition embedding joins the flattened input; with
    ``projection`` it is projected onto the last hidden features.
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema) -> None:
        super().__init__()
        network = config.discriminator
        self.input_condition = input_condition(config, schema)
        self.pac = config.pac
        row_features = schema.num_features + (
            config.condition_embedding_dim if self.input_condition is not None else 0
        )
        self.trunk = _mlp_trunk(row_features * self.pac, network, is_discriminator=True)
        self.score = ScoreHead(
            condition=None if self.input_condition is not None else schema.condition,
            config=config,
            features=network.width,
            norm=network.norm,
        )

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, *sample_shape]`` -> raw scores ``[B]``."""
        flat = x.reshape(x.shape[0], -1)
        if self.input_condition is not None:
            flat = self.input_condition(flat, cond)
            cond = None  # consumed at the input; the score head is unconditional
        if self.pac == 1:
            return self.score(self.trunk(flat), cond)
        return _unpack(self.score(self.trunk(_pack(flat, self.pac)), cond), self.pac, len(flat))


def _pack(rows: Tensor, pac: int) -> Tensor:
    """``[B, F]`` -> ``[ceil(B / pac), pac * F]``: consecutive rows side by side (PacGAN).

    A batch that does not divide evenly is completed with its own first rows.
    """
    missing = -len(rows) % pac
    if missing:
        rows = torch.cat([rows, rows.repeat(math.ceil(missing / len(rows)), 1)[:missing]])
    return rows.reshape(len(rows) // pac, -1)


def _unpack(pack_scores: Tensor, pac: int, num_rows: int) -> Tensor:
    """Each pack's score given to each of its rows: ``[P]`` -> ``[num_rows]``."""
    return pack_scores.repeat_interleave(pac)[:num_rows]


# -------------------------------------------------------------------------------- registries

GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MlpGenerator,
    "dcgan": functools.partial(ConvGenerator, spatial_dims=2),
    "conv1d": functools.partial(ConvGenerator, spatial_dims=1),
}
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MlpDiscriminator,
    "dcgan": functools.partial(ConvDiscriminator, spatial_dims=2),
    "conv1d": functools.partial(ConvDiscriminator, spatial_dims=1),
}


def get_family(name: str) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module]]:
    """Return the (generator, discriminator) constructors of family ``name``.

    Raises:
        SpecError: ``name`` is not a family; the message lists the valid ones.

    """
    if name not in GENERATORS:
        raise SpecError(
            f"model.family: unknown family {name!r} (valid: {', '.join(sorted(GENERATORS))})"
        )
    return GENERATORS[name], DISCRIMINATORS[name]


def build_models(config: ModelConfig, schema: DataSchema) -> tuple[nn.Module, nn.Module]:
    """Build the (generator, discriminator) pair for ``schema``.

    Raises:
        SpecError: unknown family, or a family that does not fit the data kind.

    """
    generator_cls, discriminator_cls = get_family(config.family)
    generator = generator_cls(config=config, schema=schema)
    discriminator = discriminator_cls(config=config, schema=schema)
    logger.debug(
        "%s models: generator %d parameters, discriminator %d parameters",
        config.family,
        sum(p.numel() for p in generator.parameters()),
        sum(p.numel() for p in discriminator.parameters()),
    )
    return generator, discriminator
