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

Shared conventions (documented once here):

- Weights start DCGAN-style: conv/linear/embedding N(0, 0.02) with zero bias, norm weight
  N(1, 0.02); deterministic under ``torch.manual_seed``. Spectral norm is applied after init.
- ``norm``: ``batch`` (BatchNorm), ``layer`` (LayerNorm; GroupNorm(1, C) for conv maps),
  ``spectral`` (spectral norm on every linear/conv layer of the network), ``none``. A
  discriminator's first layer never gets batch/layer norm (DCGAN guideline), so an MLP
  discriminator of depth 1 has no norm layer.
- Conv depth (blocks up/down) is clamped so the smallest side stays >= 2 after downsampling
  (at least one block); the generator starts from ``ceil(side / 2**depth)`` per side and
  center-crops its ``2**depth``-times-upsampled map to the exact sample size.
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
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_hpc.config import ModelConfig, NetworkConfig
from gan_hpc.data.types import ColumnBlock, ConditionSchema, DataSchema
from gan_hpc.errors import SpecError

logger = logging.getLogger(__name__)

INIT_STD = 0.02  # DCGAN (Radford et al. 2016) initialisation
LEAKY_SLOPE = 0.2

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "ConditionEmbedding",
    "ConvDiscriminator",
    "ConvGenerator",
    "MlpDiscriminator",
    "MlpGenerator",
    "TabularHead",
    "build_models",
    "conv_depth",
    "get_family",
    "resolve_output_activation",
    "unwrap_model",
]


# ------------------------------------------------------------------------------ layer helpers


def _activation(name: str) -> nn.Module:
    """Build the hidden-layer activation named by :data:`gan_hpc.config.Activation`."""
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


def _init_affine(layer: nn.Module) -> nn.Module:
    """DCGAN init of a linear/conv/embedding layer; zero bias."""
    nn.init.normal_(cast(Tensor, layer.weight), 0.0, INIT_STD)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        nn.init.zeros_(bias)
    return layer


def _maybe_spectral(layer: nn.Module, use_spectral: bool) -> nn.Module:
    """Wrap ``layer`` in spectral norm (after init, so the power iteration sees final weights)."""
    return spectral_norm(layer) if use_spectral else layer


def _linear(in_features: int, out_features: int, *, norm: str, bias: bool = True) -> nn.Module:
    """Build an initialised ``nn.Linear``, spectrally normalised when ``norm == 'spectral'``."""
    layer = _init_affine(nn.Linear(in_features, out_features, bias=bias))
    return _maybe_spectral(layer, norm == "spectral")


def _feature_norm(norm: str, features: int, *, spatial_dims: int) -> nn.Module | None:
    """Batch/layer norm over ``features`` channels (``spatial_dims`` 0 for vectors), or None."""
    if norm == "batch":
        batch_norm = (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[spatial_dims](features)
        nn.init.normal_(batch_norm.weight, 1.0, INIT_STD)
        nn.init.zeros_(batch_norm.bias)
        return batch_norm
    if norm == "layer":
        layer_norm = nn.LayerNorm(features) if spatial_dims == 0 else nn.GroupNorm(1, features)
        nn.init.normal_(layer_norm.weight, 1.0, INIT_STD)
        nn.init.zeros_(layer_norm.bias)
        return layer_norm
    return None


def _hidden_block(
    layer: nn.Module, network: NetworkConfig, features: int, *, spatial_dims: int, use_norm: bool
) -> list[nn.Module]:
    """``layer`` -> [norm] -> activation -> [dropout], as a list of modules."""
    modules = [layer]
    norm = _feature_norm(network.norm, features, spatial_dims=spatial_dims) if use_norm else None
    if norm is not None:
        modules.append(norm)
    modules.append(_activation(network.activation))
    if network.dropout > 0:
        modules.append(nn.Dropout(network.dropout))
    return modules


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside a DDP-like wrapper (anything with a ``.module``), or itself."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


# ----------------------------------------------------------------------------- output & heads


def resolve_output_activation(config: ModelConfig, schema: DataSchema) -> str:
    """Return the generator's output activation: ``tanh``, ``sigmoid`` or ``none``.

    ``auto`` picks tanh for data in (-1, 1), sigmoid for (0, 1) and none otherwise (unbounded
    quantile-normal numerics or other ranges); an explicit choice wins.
    """
    if config.output_activation != "auto":
        return config.output_activation
    value_range = None if schema.value_range is None else tuple(schema.value_range)
    if value_range == (-1.0, 1.0):
        return "tanh"
    if value_range == (0.0, 1.0):
        return "sigmoid"
    return "none"


def _output_module(name: str) -> nn.Module:
    """Build the module for a resolved output activation name."""
    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity}[name]()


class TabularHead(nn.Module):
    """Turns a generator's raw tabular outputs into valid rows, block by block.

    Numeric blocks get the output activation; each categorical (one-hot) block gets a softmax
    (``head='softmax'``: rows sum to 1) or a hard straight-through Gumbel-softmax
    (``head='gumbel'``: exact one-hot rows whose gradient is the soft sample's), so every
    generated row decodes to valid categories.
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
        self.is_categorical = [block.kind == "categorical" for block in blocks]
        self.numeric = _output_module(numeric_activation)
        self.head = head
        self.gumbel_tau = gumbel_tau

    def forward(self, logits: Tensor) -> Tensor:
        """Map ``[B, F]`` raw outputs to ``[B, F]`` features."""
        parts = []
        for part, is_categorical in zip(
            logits.split(self.widths, dim=1), self.is_categorical, strict=True
        ):
            if not is_categorical:
                parts.append(self.numeric(part))
            elif self.head == "gumbel":
                parts.append(F.gumbel_softmax(part, tau=self.gumbel_tau, hard=True))
            else:
                parts.append(torch.softmax(part, dim=1))
        return torch.cat(parts, dim=1)


def _generator_output(config: ModelConfig, schema: DataSchema) -> nn.Module:
    """Build the generator's last activation: a :class:`TabularHead` for tables with blocks."""
    activation = resolve_output_activation(config, schema)
    if schema.kind != "tabular" or not schema.blocks:
        return _output_module(activation)
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


# ------------------------------------------------------------------------------- conditioning


class ConditionEmbedding(nn.Module):
    """Embeds a condition: ``nn.Embedding`` for class indices, ``nn.Linear`` for vectors.

    Continuous conditions in [-1, 1] are first expanded to Fourier features: the coordinates
    ``y`` with ``sin(k pi t)`` and ``cos(k pi t)``, ``t = (y + 1) / 2``, for ``k = 1..K``
    (``num_frequencies``; 0 keeps the raw coordinates). A network fed raw coordinates must
    build every oscillation out of its own layers, which a small GAN does not manage within a
    sweep's budget; with the sin/cos basis a response that varies like a plate's mode shapes
    is a linear function of the input.
    """

    def __init__(
        self, *, condition: ConditionSchema, dim: int, num_frequencies: int = 0, norm: str = "none"
    ) -> None:
        super().__init__()
        self.kind = condition.kind
        # a constant of the config, not a weight: kept out of state dicts and bundles
        self.register_buffer(
            "frequencies",
            math.pi * torch.arange(1, num_frequencies + 1, dtype=torch.float32),
            persistent=False,
        )
        if condition.kind == "class":
            layer: nn.Module = _init_affine(nn.Embedding(condition.dim, dim))
        else:
            in_features = condition.dim * (1 + 2 * num_frequencies)
            layer = _init_affine(nn.Linear(in_features, dim))
        self.layer = _maybe_spectral(layer, norm == "spectral")

    def forward(self, cond: Tensor) -> Tensor:
        """``[B]`` class indices or ``[B, dim]`` vectors -> ``[B, embedding dim]``."""
        if self.kind == "class":
            return self.layer(cond.reshape(-1).long())
        values = cond.float()
        frequencies = cast(Tensor, self.frequencies)
        if len(frequencies):
            phases = ((values + 1) / 2).unsqueeze(-1) * frequencies  # [B, dim, K]
            values = torch.cat([values, phases.sin().flatten(1), phases.cos().flatten(1)], dim=1)
        return self.layer(values)


def _condition_embedding(
    config: ModelConfig, condition: ConditionSchema, *, dim: int | None = None, norm: str = "none"
) -> ConditionEmbedding:
    """The condition embedding of ``config`` (``condition_embedding_dim`` wide by default)."""
    return ConditionEmbedding(
        condition=condition,
        dim=config.condition_embedding_dim if dim is None else dim,
        num_frequencies=config.condition_num_frequencies,
        norm=norm,
    )


def _require_condition(embedding: nn.Module | None, cond: Tensor | None, owner: str) -> None:
    """Check ``cond`` is given exactly when the model is conditional."""
    if embedding is not None and cond is None:
        raise ValueError(f"{owner} is conditional: pass cond (see sample_condition)")
    if embedding is None and cond is not None:
        raise ValueError(f"{owner} is unconditional: pass cond=None")


class _ScoreHead(nn.Module):
    """A discriminator's linear score head; with projection conditioning, ``+ <e(y), h>``."""

    def __init__(
        self,
        *,
        condition: ConditionSchema | None,
        config: ModelConfig,
        features: int,
        norm: str,
    ) -> None:
        super().__init__()
        self.embedding: ConditionEmbedding | None = None
        if condition is not None and config.conditioning == "projection":
            self.embedding = _condition_embedding(config, condition, dim=features, norm=norm)
        self.head = _linear(features, 1, norm=norm)

    def forward(self, features: Tensor, cond: Tensor | None) -> Tensor:
        """``[B, features]`` -> scores ``[B]``."""
        _require_condition(self.embedding, cond, "the discriminator")
        scores = self.head(features).squeeze(1)
        if self.embedding is None or cond is None:
            return scores
        return scores + (self.embedding(cond) * features).sum(dim=1)


class _InputCondition(nn.Module):
    """Concat conditioning: the condition embedding joins the discriminator's input.

    Vectors get it appended; image and signal maps get it as extra channels, the same at every
    position, so every layer can judge whether ``x`` fits ``y`` (a condition that met only the
    last linear layer would add a term independent of ``x``, which judges nothing).
    """

    def __init__(self, *, config: ModelConfig, condition: ConditionSchema) -> None:
        super().__init__()
        self.embedding = _condition_embedding(config, condition)

    def forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """``[B, F]`` or ``[B, C, *sides]`` -> the same with the embedding appended."""
        _require_condition(self.embedding, cond, "the discriminator")
        embedded = self.embedding(cond)
        if x.dim() > 2:
            embedded = embedded.reshape(*embedded.shape, *([1] * (x.dim() - 2)))
            embedded = embedded.expand(-1, -1, *x.shape[2:])
        return torch.cat([x, embedded.to(x.dtype)], dim=1)


def _input_condition(config: ModelConfig, schema: DataSchema) -> _InputCondition | None:
    """The input conditioning of a discriminator, or None (unconditional or projection)."""
    if schema.condition is None or config.conditioning != "concat":
        return None
    return _InputCondition(config=config, condition=schema.condition)


def _generator_embedding(config: ModelConfig, schema: DataSchema) -> ConditionEmbedding | None:
    """Build the generator's condition embedding, or None for unconditional data."""
    if schema.condition is None:
        return None
    return _condition_embedding(config, schema.condition)


def _generator_input(embedding: nn.Module | None, z: Tensor, cond: Tensor | None) -> Tensor:
    """``z``, with the condition embedding concatenated when conditional."""
    _require_condition(embedding, cond, "the generator")
    if embedding is None or cond is None:
        return z
    return torch.cat([z, embedding(cond)], dim=1)


# ------------------------------------------------------------------------------------- MLP


def _mlp_trunk(in_features: int, network: NetworkConfig, *, is_discriminator: bool) -> nn.Module:
    """``depth`` hidden layers of ``width`` units."""
    modules: list[nn.Module] = []
    for index in range(network.depth):
        use_norm = not (is_discriminator and index == 0)
        layer = _linear(
            in_features if index == 0 else network.width,
            network.width,
            norm=network.norm,
            bias=not (use_norm and network.norm in ("batch", "layer")),  # norms carry the shift
        )
        modules += _hidden_block(layer, network, network.width, spatial_dims=0, use_norm=use_norm)
    return nn.Sequential(*modules)


class _ResidualBlock(nn.Module):
    """``cat([act(norm(linear(x))), x])``: a hidden block that passes its input on (CTGAN)."""

    def __init__(self, in_features: int, network: NetworkConfig) -> None:
        super().__init__()
        use_bias = network.norm not in ("batch", "layer")  # norms carry the shift
        layer = _linear(in_features, network.width, norm=network.norm, bias=use_bias)
        block = _hidden_block(layer, network, network.width, spatial_dims=0, use_norm=True)
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
        self.embedding = _generator_embedding(config, schema)
        in_features = config.latent_dim + (config.condition_embedding_dim if self.embedding else 0)
        features = network.width
        if getattr(network, "residual", False):  # a plain NetworkConfig has none
            self.trunk, features = _residual_trunk(in_features, network)
        else:
            self.trunk = _mlp_trunk(in_features, network, is_discriminator=False)
        self.project = _linear(features, schema.num_features, norm=network.norm)
        self.output = _generator_output(config, schema)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, latent_dim]`` -> ``[B, *sample_shape]``."""
        flat = self.output(self.project(self.trunk(_generator_input(self.embedding, z, cond))))
        return flat.reshape(z.shape[0], *self.sample_shape)


class MlpDiscriminator(nn.Module):
    """Fully connected discriminator on flattened samples.

    With ``concat`` conditioning the condition embedding joins the flattened input; with
    ``projection`` it is projected onto the last hidden features.
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema) -> None:
        super().__init__()
        network = config.discriminator
        self.input_condition = _input_condition(config, schema)
        self.pac = config.pac
        row_features = schema.num_features + (
            config.condition_embedding_dim if self.input_condition is not None else 0
        )
        self.trunk = _mlp_trunk(row_features * self.pac, network, is_discriminator=True)
        self.score = _ScoreHead(
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


# ----------------------------------------------------------------------------- convolutional

_FAMILY_FOR_KIND = {"tabular": "'mlp'", "image": "'dcgan' or 'mlp'", "signal": "'conv1d' or 'mlp'"}
_CONV_KIND = {1: ("signal", "(C, L)"), 2: ("image", "(C, H, W)")}


def _check_conv_fit(family: str, schema: DataSchema, spatial_dims: int) -> None:
    """Raise SpecError unless ``schema`` is the data kind a conv family handles."""
    kind, layout = _CONV_KIND[spatial_dims]
    shape = tuple(schema.sample_shape)
    if schema.kind != kind or len(shape) != spatial_dims + 1:
        use = _FAMILY_FOR_KIND.get(schema.kind, "'mlp'")
        raise SpecError(
            f"model.family: '{family}' needs {kind} data {layout}, got {schema.kind} data of "
            f"shape {shape}; use model.family {use}"
        )
    if min(shape[1:]) < 2:
        raise SpecError(
            f"model.family: '{family}' needs every side >= 2, got shape {shape}; "
            "use model.family 'mlp'"
        )


def conv_depth(requested: int, spatial: Sequence[int]) -> int:
    """Up/down blocks actually used: ``requested``, clamped so the smallest side stays >= 2.

    Always at least one block (a side of 2 or 3 then ends at 1).
    """
    limit = max(1, int(math.floor(math.log2(min(spatial) / 2))))
    return max(1, min(requested, limit))


class ConvGenerator(nn.Module):
    """DCGAN generator in 1-D (signals) or 2-D (images).

    z (+ condition embedding) is projected to a ``(width * 2**(k-1), *ceil(side / 2**k))`` map,
    then ``k`` ConvTranspose(4, stride 2, pad 1) blocks each double the sides and halve the
    channels (norm + activation between blocks, none after the last); the final map is
    center-cropped to the sample size. ``k`` is ``depth`` clamped by :func:`conv_depth`.
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema, spatial_dims: int) -> None:
        super().__init__()
        family = "dcgan" if spatial_dims == 2 else "conv1d"
        _check_conv_fit(family, schema, spatial_dims)
        network = config.generator
        channels, *spatial = schema.sample_shape
        depth = conv_depth(network.depth, spatial)
        if depth != network.depth:
            logger.info("%s generator: depth %d clamped to %d", family, network.depth, depth)
        self.sample_spatial = tuple(spatial)
        self.start_spatial = tuple(math.ceil(side / 2**depth) for side in spatial)
        self.start_channels = network.width * 2 ** (depth - 1)
        has_norm = network.norm in ("batch", "layer")
        self.embedding = _generator_embedding(config, schema)
        in_features = config.latent_dim + (config.condition_embedding_dim if self.embedding else 0)
        self.project = _linear(
            in_features,
            self.start_channels * math.prod(self.start_spatial),
            norm=network.norm,
            bias=not has_norm,
        )
        transpose = (nn.ConvTranspose1d, nn.ConvTranspose2d)[spatial_dims - 1]
        modules: list[nn.Module] = []
        norm = _feature_norm(network.norm, self.start_channels, spatial_dims=spatial_dims)
        if norm is not None:
            modules.append(norm)
        modules.append(_activation(network.activation))
        in_channels = self.start_channels
        for _ in range(depth - 1):
            out_channels = in_channels // 2
            layer = _init_affine(transpose(in_channels, out_channels, 4, 2, 1, bias=not has_norm))
            layer = _maybe_spectral(layer, network.norm == "spectral")
            modules += _hidden_block(
                layer, network, out_channels, spatial_dims=spatial_dims, use_norm=True
            )
            in_channels = out_channels
        last = _init_affine(transpose(in_channels, channels, 4, 2, 1))
        modules.append(_maybe_spectral(last, network.norm == "spectral"))
        self.blocks = nn.Sequential(*modules)
        self.output = _output_module(resolve_output_activation(config, schema))

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, latent_dim]`` -> ``[B, C, *sides]``."""
        h = self.project(_generator_input(self.embedding, z, cond))
        h = self.blocks(h.reshape(z.shape[0], self.start_channels, *self.start_spatial))
        crop = tuple(
            slice((full - side) // 2, (full - side) // 2 + side)
            for full, side in zip(h.shape[2:], self.sample_spatial, strict=True)
        )
        return self.output(h[(slice(None), slice(None), *crop)])


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator in 1-D (signals) or 2-D (images).

    ``k`` strided Conv(4, stride 2, pad 1) blocks (``width * 2**i`` channels; no batch/layer
    norm on the first), then the flattened features go to a linear score head. The condition
    joins the input as extra channels (``concat``) or is projected onto the features
    (``projection``); see the module docstring.
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema, spatial_dims: int) -> None:
        super().__init__()
        family = "dcgan" if spatial_dims == 2 else "conv1d"
        _check_conv_fit(family, schema, spatial_dims)
        network = config.discriminator
        channels, *spatial = schema.sample_shape
        depth = conv_depth(network.depth, spatial)
        conv = (nn.Conv1d, nn.Conv2d)[spatial_dims - 1]
        has_norm = network.norm in ("batch", "layer")
        self.input_condition = _input_condition(config, schema)
        if self.input_condition is not None:
            channels += config.condition_embedding_dim
        modules: list[nn.Module] = []
        in_channels, sides = channels, list(spatial)
        for index in range(depth):
            out_channels = network.width * 2**index
            use_norm = index > 0
            layer = _init_affine(
                conv(in_channels, out_channels, 4, 2, 1, bias=not (has_norm and use_norm))
            )
            layer = _maybe_spectral(layer, network.norm == "spectral")
            modules += _hidden_block(
                layer, network, out_channels, spatial_dims=spatial_dims, use_norm=use_norm
            )
            in_channels, sides = out_channels, [side // 2 for side in sides]
        self.blocks = nn.Sequential(*modules)
        self.score = _ScoreHead(
            condition=None if self.input_condition is not None else schema.condition,
            config=config,
            features=in_channels * math.prod(sides),
            norm=network.norm,
        )

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, C, *sides]`` -> raw scores ``[B]``."""
        if self.input_condition is not None:
            x = self.input_condition(x, cond)
            cond = None  # consumed at the input; the score head is unconditional
        return self.score(self.blocks(x).flatten(1), cond)


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
