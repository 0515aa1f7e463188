"""The layers every GAN family builds on: initialised layers, norms, output activations, conditions.

The conventions they keep (DCGAN initialisation, what each ``norm`` builds, how a condition
reaches each network) are documented once, in :mod:`gan_hpc.trial.models`.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_hpc.config import ModelConfig, NetworkConfig
from gan_hpc.data.types import ConditionSchema, DataSchema

INIT_STD = 0.02  # DCGAN (Radford et al. 2016) initialisation
LEAKY_SLOPE = 0.2

__all__ = [
    "ConditionEmbedding",
    "ScoreHead",
    "activation",
    "feature_norm",
    "generator_embedding",
    "generator_input",
    "hidden_block",
    "init_affine",
    "input_condition",
    "linear",
    "maybe_spectral",
    "output_module",
    "resolve_output_activation",
]


# ------------------------------------------------------------------------------ layer helpers


def activation(name: str) -> nn.Module:
    """Build the hidden-layer activation named by :data:`gan_hpc.config.Activation`."""
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[name]()


def init_affine(layer: nn.Module) -> nn.Module:
    """DCGAN init of a linear/conv/embedding layer; zero bias."""
    nn.init.normal_(cast(Tensor, layer.weight), 0.0, INIT_STD)
    bias = getattr(layer, "bias", None)
    if bias is not None:
        nn.init.zeros_(bias)
    return layer


def maybe_spectral(layer: nn.Module, use_spectral: bool) -> nn.Module:
    """Wrap ``layer`` in spectral norm (after init, so the power iteration sees final weights)."""
    return spectral_norm(layer) if use_spectral else layer


def linear(in_features: int, out_features: int, *, norm: str, bias: bool = True) -> nn.Module:
    """Build an initialised ``nn.Linear``, spectrally normalised when ``norm == 'spectral'``."""
    layer = init_affine(nn.Linear(in_features, out_features, bias=bias))
    return maybe_spectral(layer, norm == "spectral")


def feature_norm(norm: str, features: int, *, spatial_dims: int) -> nn.Module | None:
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


def hidden_block(
    layer: nn.Module, network: NetworkConfig, features: int, *, spatial_dims: int, use_norm: bool
) -> list[nn.Module]:
    """``layer`` -> [norm] -> activation -> [dropout], as a list of modules."""
    modules = [layer]
    norm = feature_norm(network.norm, features, spatial_dims=spatial_dims) if use_norm else None
    if norm is not None:
        modules.append(norm)
    modules.append(activation(network.activation))
    if network.dropout > 0:
        modules.append(nn.Dropout(network.dropout))
    return modules


# ------------------------------------------------------------------------------------ outputs


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


def output_module(name: str) -> nn.Module:
    """Build the module for a resolved output activation name."""
    return {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "none": nn.Identity}[name]()


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
            layer: nn.Module = init_affine(nn.Embedding(condition.dim, dim))
        else:
            in_features = condition.dim * (1 + 2 * num_frequencies)
            layer = init_affine(nn.Linear(in_features, dim))
        self.layer = maybe_spectral(layer, norm == "spectral")

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


class ScoreHead(nn.Module):
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
        self.head = linear(features, 1, norm=norm)

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


def input_condition(config: ModelConfig, schema: DataSchema) -> _InputCondition | None:
    """The input conditioning of a discriminator, or None (unconditional or projection)."""
    if schema.condition is None or config.conditioning != "concat":
        return None
    return _InputCondition(config=config, condition=schema.condition)


def generator_embedding(config: ModelConfig, schema: DataSchema) -> ConditionEmbedding | None:
    """Build the generator's condition embedding, or None for unconditional data."""
    if schema.condition is None:
        return None
    return _condition_embedding(config, schema.condition)


def generator_input(embedding: nn.Module | None, z: Tensor, cond: Tensor | None) -> Tensor:
    """``z``, with the condition embedding concatenated when conditional."""
    _require_condition(embedding, cond, "the generator")
    if embedding is None or cond is None:
        return z
    return torch.cat([z, embedding(cond)], dim=1)
