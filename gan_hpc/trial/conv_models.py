"""The convolutional families: DCGAN for images ``(C, H, W)``, its 1-D twin for signals ``(C, L)``.

:mod:`gan_hpc.trial.models` registers them as ``dcgan`` and ``conv1d`` and documents the
conventions every family keeps. Conv depth (blocks up/down) is clamped so the smallest side
stays >= 2 after downsampling (at least one block); the generator starts from
``ceil(side / 2**depth)`` per side and center-crops its ``2**depth``-times-upsampled map to the
exact sample size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from torch import Tensor, nn

from gan_hpc.config import ModelConfig, NetworkConfig
from gan_hpc.data.types import DataSchema
from gan_hpc.errors import SpecError
from gan_hpc.trial.layers import (
    ScoreHead,
    activation,
    feature_norm,
    generator_embedding,
    generator_input,
    hidden_block,
    init_affine,
    input_condition,
    linear,
    maybe_spectral,
    output_module,
    resolve_output_activation,
)

logger = logging.getLogger(__name__)

__all__ = ["ConvDiscriminator", "ConvGenerator", "conv_depth"]

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


def _conv_layout(
    network: NetworkConfig, schema: DataSchema, spatial_dims: int
) -> tuple[str, int, list[int], int]:
    """The family's name, the sample's channels and sides, and the blocks used (checked fit)."""
    family = "dcgan" if spatial_dims == 2 else "conv1d"
    _check_conv_fit(family, schema, spatial_dims)
    channels, *spatial = schema.sample_shape
    return family, channels, spatial, conv_depth(network.depth, spatial)


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
        network = config.generator
        family, channels, spatial, depth = _conv_layout(network, schema, spatial_dims)
        if depth != network.depth:
            logger.info("%s generator: depth %d clamped to %d", family, network.depth, depth)
        self.sample_spatial = tuple(spatial)
        self.start_spatial = tuple(math.ceil(side / 2**depth) for side in spatial)
        self.start_channels = network.width * 2 ** (depth - 1)
        has_norm = network.norm in ("batch", "layer")
        self.embedding = generator_embedding(config, schema)
        in_features = config.latent_dim + (config.condition_embedding_dim if self.embedding else 0)
        self.project = linear(
            in_features,
            self.start_channels * math.prod(self.start_spatial),
            norm=network.norm,
            bias=not has_norm,
        )
        transpose = (nn.ConvTranspose1d, nn.ConvTranspose2d)[spatial_dims - 1]
        modules: list[nn.Module] = []
        norm = feature_norm(network.norm, self.start_channels, spatial_dims=spatial_dims)
        if norm is not None:
            modules.append(norm)
        modules.append(activation(network.activation))
        in_channels = self.start_channels
        for _ in range(depth - 1):
            out_channels = in_channels // 2
            layer = init_affine(transpose(in_channels, out_channels, 4, 2, 1, bias=not has_norm))
            layer = maybe_spectral(layer, network.norm == "spectral")
            modules += hidden_block(
                layer, network, out_channels, spatial_dims=spatial_dims, use_norm=True
            )
            in_channels = out_channels
        last = init_affine(transpose(in_channels, channels, 4, 2, 1))
        modules.append(maybe_spectral(last, network.norm == "spectral"))
        self.blocks = nn.Sequential(*modules)
        self.output = output_module(resolve_output_activation(config, schema))

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, latent_dim]`` -> ``[B, C, *sides]``."""
        h = self.project(generator_input(self.embedding, z, cond))
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
    (``projection``); see :mod:`gan_hpc.trial.models`.
    """

    def __init__(self, *, config: ModelConfig, schema: DataSchema, spatial_dims: int) -> None:
        super().__init__()
        network = config.discriminator
        _, channels, spatial, depth = _conv_layout(network, schema, spatial_dims)
        conv = (nn.Conv1d, nn.Conv2d)[spatial_dims - 1]
        has_norm = network.norm in ("batch", "layer")
        self.input_condition = input_condition(config, schema)
        if self.input_condition is not None:
            channels += config.condition_embedding_dim
        modules: list[nn.Module] = []
        in_channels, sides = channels, list(spatial)
        for index in range(depth):
            out_channels = network.width * 2**index
            use_norm = index > 0
            layer = init_affine(
                conv(in_channels, out_channels, 4, 2, 1, bias=not (has_norm and use_norm))
            )
            layer = maybe_spectral(layer, network.norm == "spectral")
            modules += hidden_block(
                layer, network, out_channels, spatial_dims=spatial_dims, use_norm=use_norm
            )
            in_channels, sides = out_channels, [side // 2 for side in sides]
        self.blocks = nn.Sequential(*modules)
        self.score = ScoreHead(
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
