"""Generator bundles: the folder ``gan-hpc export`` writes, loading it safely, and sampling.

A bundle samples with torch, safetensors and gan-hpc's JSON transforms alone; nothing in it is
unpickled::

    <bundle>/config.json            format version, architecture (ModelConfig + DataSchema),
                                    latent, conditioning, output shape and range, file checksums
    <bundle>/generator.safetensors  the generator's weights (the EMA copy when trained with one)
    <bundle>/transform.json         the fitted data transform: samples back to the data's units
    <bundle>/metrics.json           provenance: trial, config, checkpoint step, metrics, versions
    <bundle>/README.md, samples.png the model card
    <bundle>/generator.pt2          optional torch.export program: (z[, cond]) -> model-space x

:func:`load_generator` checks the format version, the required files, their SHA-256 against
``config.json`` and every tensor shape before it builds anything; each failure is a one-line
:class:`~gan_hpc.errors.CheckpointError` naming the file and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import safetensors.torch
import torch
from torch import Tensor, nn

from gan_hpc.config import ModelConfig
from gan_hpc.config_validation import config_from_dict
from gan_hpc.data.transform import (
    DataTransform,
    SignalTransform,
    TabularTransform,
    transform_from_dict,
)
from gan_hpc.data.types import ConditionSchema, DataKind, DataSchema
from gan_hpc.errors import CheckpointError, GanHpcError, SpecError
from gan_hpc.files import read_json
from gan_hpc.trial.latents import sample_condition, sample_latent
from gan_hpc.trial.layers import resolve_output_activation
from gan_hpc.trial.models import get_family

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "gan-hpc-generator"
BUNDLE_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "generator.safetensors"
TRANSFORM_FILE = "transform.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
PICTURE_FILE = "samples.png"
PROGRAM_FILE = "generator.pt2"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, TRANSFORM_FILE)
CHECKSUMMED_FILES = (WEIGHTS_FILE, TRANSFORM_FILE)
_CONFIG_KEYS = ("format", "format_version", "model", "schema", "latent", "condition", "output")

GENERATE_BATCH = 4096  # rows per forward pass: bounds memory for large n
IMAGE_LABEL_KEY = "label"  # the condition key of class-conditional images

Condition: TypeAlias = str | int | Mapping[str, Any] | None


@dataclass(frozen=True)
class Draw:
    """Model-space samples: latent codes, encoded conditions and generator outputs.

    ``cond`` is int64 class indices ``(N,)`` or float32 ``(N, K)`` in [-1, 1], or None;
    ``seed`` reproduces the draw.
    """

    z: Tensor
    cond: Tensor | None
    x: Tensor
    seed: int


@dataclass(frozen=True)
class SignalSamples:
    """Generated signals in the data's units, with their axis and conditions.

    ``values`` is ``(N, C, L)``; ``axis`` the ``L`` positions (e.g. frequencies) named
    ``axis_name``; ``channel_names`` the ``C`` channels; ``conditions`` a DataFrame of the
    ``N`` conditions in data units (one column per coordinate), or None when unconditional.
    """

    values: np.ndarray
    axis: np.ndarray
    axis_name: str
    channel_names: tuple[str, ...]
    conditions: pd.DataFrame | None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """Long format: ``sample``, the condition columns, the axis, one column per channel."""
        count, _, length = self.values.shape
        columns: dict[str, Any] = {"sample": np.repeat(np.arange(count), length)}
        if self.conditions is not None:
            for name in self.conditions.columns:
                columns[str(name)] = np.repeat(self.conditions[name].to_numpy(), length)
        columns[self.axis_name] = np.tile(self.axis, count)
        for index, name in enumerate(self.channel_names):
            columns[name] = self.values[:, index, :].reshape(-1)
        return pd.DataFrame(columns)


Samples: TypeAlias = pd.DataFrame | np.ndarray | SignalSamples


class SampleGenerator:
    """A trained generator from a bundle: draws samples in the data's own units.

    :meth:`sample` returns a DataFrame for tables (the training columns, dtypes and
    categories, the condition column included), a ``(N, C, H, W)`` array in pixel units for
    images, and :class:`SignalSamples` for signals. Build it with :func:`load_generator`.

    Example:
        >>> generator = load_generator("export/01-trial_0003")
        >>> rows = generator.sample(1000, condition="yes", seed=0)  # class of the condition column
        >>> curves = generator.sample(8, condition={"x_m": 0.3}, seed=0)  # y_m drawn uniformly

    """

    def __init__(
        self,
        *,
        module: nn.Module,
        transform: DataTransform,
        schema: DataSchema,
        model_config: ModelConfig,
        path: Path,
        device: torch.device,
    ) -> None:
        self.module = module
        self.transform = transform
        self.schema = schema
        self.model_config = model_config
        self.path = path
        self.device = device

    @property
    def kind(self) -> DataKind:
        """``"tabular"``, ``"image"`` or ``"signal"``."""
        return self.schema.kind

    @property
    def condition(self) -> ConditionSchema | None:
        """What the generator is conditioned on, or None."""
        return self.schema.condition

    @property
    def condition_key(self) -> str | None:
        """The key of a class condition: the tabular column, or ``"label"`` for images."""
        condition = self.schema.condition
        if condition is None or condition.kind != "class":
            return None
        return condition.column or IMAGE_LABEL_KEY

    def sample(self, n: int, condition: Condition = None, seed: int | None = None) -> Samples:
        """Draw ``n`` samples in the data's units; the same seed gives the same samples.

        Args:
            n: number of samples.
            condition: class conditions: a class name (or ``{key: name}``; an int is matched
                as a name, e.g. ``3`` for the class ``"3"``); None draws classes in their
                training proportions. Continuous conditions: ``{name: value}`` in data
                units (coordinates left out are drawn uniformly over their training range);
                None draws every coordinate uniformly.
            seed: None draws a fresh seed.

        Raises:
            SpecError: ``n`` or ``condition`` is not valid for this generator.

        """
        return self.decode(self.draw(n, condition, seed))

    def draw(self, n: int, condition: Condition = None, seed: int | None = None) -> Draw:
        """Model-space samples (see :meth:`sample` for the arguments)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(f"{self.path}: number of samples must be a positive int, got {n!r}")
        seed = secrets.randbits(63) if seed is None else int(seed)
        rng = torch.Generator().manual_seed(seed)
        z = sample_latent(
            n, self.model_config.latent_dim, self.model_config.latent_distribution, generator=rng
        )
        cond = self._encode_condition(n, condition, rng)
        on_accelerator = self.device.type != "cpu"
        with torch.random.fork_rng(
            devices=[self.device] if on_accelerator else [],
            device_type=self.device.type if on_accelerator else None,
        ):
            torch.manual_seed(seed)  # a Gumbel-softmax head draws from the global stream
            x = self.generate(z, cond)
        return Draw(z=z, cond=cond, x=x, seed=seed)

    @torch.no_grad()
    def generate(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """Run the generator on latent codes and encoded conditions; model-space, on CPU."""
        parts = []
        for start in range(0, len(z), GENERATE_BATCH):
            stop = start + GENERATE_BATCH
            batch_cond = None if cond is None else cond[start:stop].to(self.device)
            parts.append(self.module(z[start:stop].to(self.device), batch_cond).float().cpu())
        return torch.cat(parts)

    def decode(self, draw: Draw) -> Samples:
        """Turn a :class:`Draw` into the data's units (see :meth:`sample`)."""
        x = draw.x.numpy()
        cond = None if draw.cond is None else draw.cond.numpy()
        if not isinstance(self.transform, SignalTransform):
            return self.transform.inverse_transform(x, cond)
        transform = self.transform
        conditions = None
        if cond is not None and self.condition is not None:
            conditions = pd.DataFrame(
                transform.inverse_condition(cond), columns=list(self.condition.names)
            )
        values = np.asarray(transform.inverse_transform(x, cond))
        length = values.shape[-1]
        axis = transform.axis if transform.axis is not None else np.arange(length, dtype=float)
        channels = transform.channel_names or tuple(f"channel_{i}" for i in range(values.shape[1]))
        return SignalSamples(
            values=values,
            axis=np.asarray(axis),
            axis_name=transform.axis_name or "index",
            channel_names=tuple(channels),
            conditions=conditions,
        )

    def _encode_condition(
        self, n: int, condition: Condition, rng: torch.Generator
    ) -> Tensor | None:
        """Encoded conditions for ``n`` samples (see :meth:`sample`)."""
        schema = self.schema.condition
        if schema is None:
            if condition is not None and condition != {}:
                raise SpecError(f"{self.path}: this generator is unconditional; drop the condition")
            return None
        drawn = sample_condition(self.schema, n, rng)  # real proportions, or uniform in [-1, 1]
        if condition is None or drawn is None:
            return drawn
        if schema.kind == "class":
            return torch.full((n,), self._class_index(condition, schema), dtype=torch.int64)
        if not isinstance(condition, Mapping):
            raise SpecError(
                f"{self.path}: condition: expected {{name: value}} in data units for "
                f"{', '.join(schema.names)}, got {condition!r}"
            )
        for name, value in condition.items():
            index = self._condition_index(str(name), schema.names)
            low, high = schema.ranges[index]
            number = _as_float(value, f"{self.path}: condition {name}")
            if not low <= number <= high:
                logger.warning(
                    "condition %s=%g is outside the training range %g..%g: the generator "
                    "extrapolates",
                    name,
                    number,
                    low,
                    high,
                )
            drawn[:, index] = 0.0 if high == low else 2.0 * (number - low) / (high - low) - 1.0
        return drawn

    def _class_index(self, condition: Condition, schema: ConditionSchema) -> int:
        """Index of the class named by ``condition``."""
        key = self.condition_key or IMAGE_LABEL_KEY
        value: Any = condition
        if isinstance(condition, Mapping):
            if set(condition) != {key}:
                raise SpecError(
                    f"{self.path}: condition: expected the one key '{key}', got "
                    f"{', '.join(map(str, condition)) or 'none'}"
                )
            value = condition[key]
        name = str(value)
        if name not in schema.names:
            close = difflib.get_close_matches(name, schema.names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(
                f"{self.path}: condition {key}={name!r} is not a class of this generator{hint}; "
                f"valid: {', '.join(schema.names)}"
            )
        return schema.names.index(name)

    def _condition_index(self, name: str, names: Sequence[str]) -> int:
        """Index of a continuous condition's coordinate."""
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(
                f"{self.path}: condition: unknown coordinate '{name}'{hint}; "
                f"valid: {', '.join(names)}"
            )
        return list(names).index(name)


def _as_float(value: Any, where: str) -> float:
    """``value`` as a finite float, or a SpecError naming ``where``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    return number


# ------------------------------------------------------------------------------- the format


def describe_bundle(
    model_config: ModelConfig, schema: DataSchema, transform: DataTransform
) -> dict[str, Any]:
    """The human-readable parts of ``config.json``: latent, conditioning, output.

    Derived from the model config, the schema and the transform; :func:`load_generator`
    recomputes them and refuses a ``config.json`` whose copies disagree.
    """
    condition = schema.condition
    condition_entry: dict[str, Any] | None = None
    if condition is not None and condition.kind == "class":
        condition_entry = {
            "kind": "class",
            "key": condition.column or IMAGE_LABEL_KEY,
            "names": list(condition.names),
            "frequencies": list(condition.frequencies),
        }
    elif condition is not None:
        condition_entry = {
            "kind": "continuous",
            "names": list(condition.names),
            "ranges": [list(r) for r in condition.ranges],
        }
    state = transform.to_dict()
    data: dict[str, Any]
    if isinstance(transform, TabularTransform):
        parents = {r.column: r.parent for r in transform.recodings}
        data = {
            "columns": [
                _column_entry(codec.to_dict(), parents.get(codec.name))
                for codec in transform.codecs
            ]
        }
    elif isinstance(transform, SignalTransform):
        axis = transform.axis
        data = {
            "axis_name": transform.axis_name,
            "axis_range": None if axis is None else [float(axis.min()), float(axis.max())],
            "channel_names": list(transform.channel_names),
            "value_range": [float(np.min(transform.low)), float(np.max(transform.high))],
            "dtype": transform.dtype,
        }
    else:
        data = {"pixel_range": [state["low"], state["high"]], "dtype": state["dtype"]}
    return {
        "latent": {
            "dim": model_config.latent_dim,
            "distribution": model_config.latent_distribution,
        },
        "condition": condition_entry,
        "output": {
            "kind": schema.kind,
            "sample_shape": list(schema.sample_shape),
            "model_value_range": None if schema.value_range is None else list(schema.value_range),
            "activation": resolve_output_activation(model_config, schema),
            "data": data,
        },
    }


def _column_entry(codec: Mapping[str, Any], parent: str | None) -> dict[str, Any]:
    """One tabular output column: name, kind, dtype, range or categories.

    A recoded column (``data.derive_recodings``) also names the column it is decoded from.
    """
    entry: dict[str, Any]
    if codec["codec"] == "numeric" and codec["origin"] == "date":
        entry = {"name": codec["name"], "kind": "date", "dtype": codec["date_dtype"]}
    elif codec["codec"] == "numeric":
        entry = {
            "name": codec["name"],
            "kind": "numeric",
            "dtype": "int64" if codec["is_integer"] else "float64",
            "range": [codec["low"], codec["high"]],
        }
    else:
        entry = {
            "name": codec["name"],
            "kind": "string" if codec["origin"] == "string" else "categorical",
            "categories": [str(c) for c in codec["categories"]],
        }
    return entry if parent is None else {**entry, "decoded_from": parent}


def load_generator(bundle: Path | str, *, device: str | torch.device = "cpu") -> SampleGenerator:
    """Load and check a bundle written by ``gan-hpc export``.

    Weights are read with safetensors only; nothing is unpickled.

    Raises:
        CheckpointError: a file is missing, changed since export (checksum), truncated, from a
            newer bundle format, or the weights do not fit the architecture in config.json.

    """
    path = Path(bundle)
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: not a generator bundle (no such folder); pass a folder "
            "written by `gan-hpc export`"
        )
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise CheckpointError(
                f"{path / name}: missing from the bundle; copy the whole folder or re-export it"
            )
    config_path = path / CONFIG_FILE
    config = _read_bundle_json(config_path)
    _check_format(config, config_path)
    contents = {name: (path / name).read_bytes() for name in CHECKSUMMED_FILES}
    _check_checksums(config, contents, path)
    try:
        model_config = config_from_dict(
            ModelConfig, config["model"], source=str(config_path), prefix="model"
        )
        schema = DataSchema.from_dict(config["schema"])
        transform = transform_from_dict(_read_bundle_json(path / TRANSFORM_FILE))
    except (GanHpcError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{config_path}: unreadable architecture or transform ({_reason(exc)}); re-export"
        ) from None
    if transform.schema.to_dict() != schema.to_dict():
        raise CheckpointError(
            f"{path / TRANSFORM_FILE}: does not match the schema in {CONFIG_FILE}; the files come "
            "from different exports, re-export the bundle"
        )
    described = describe_bundle(model_config, schema, transform)
    for key, value in described.items():
        if _plain(config[key]) != _plain(value):
            raise CheckpointError(
                f"{config_path}: '{key}' disagrees with 'model'/'schema' (the file was edited); "
                "re-export the bundle"
            )
    module = _build_generator(model_config, schema, contents[WEIGHTS_FILE], path / WEIGHTS_FILE)
    torch_device = torch.device(device)
    module.to(torch_device)
    return SampleGenerator(
        module=module,
        transform=transform,
        schema=schema,
        model_config=model_config,
        path=path,
        device=torch_device,
    )


def _read_bundle_json(path: Path) -> Any:
    """Read a JSON file of the bundle; errors become CheckpointErrors."""
    try:
        return read_json(path)
    except GanHpcError as exc:
        raise CheckpointError(f"{exc}; re-export the bundle") from None


def _check_format(config: Any, path: Path) -> None:
    """Refuse anything but a complete config.json of a format this version reads."""
    if not isinstance(config, dict) or config.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(
            f"{path}: not a gan-hpc generator bundle (format is not "
            f"'{BUNDLE_FORMAT}'); pass a folder written by `gan-hpc export`"
        )
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(
            f"{path}: format_version {version!r} is not a bundle version; re-export the bundle"
        )
    if version > BUNDLE_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: bundle format {version} is newer than this gan-hpc reads "
            f"({BUNDLE_FORMAT_VERSION}); upgrade gan-hpc (the bundle was written by gan-hpc "
            f"{config.get('gan_hpc_version', '?')})"
        )
    missing = [key for key in (*_CONFIG_KEYS, "files") if key not in config]
    if missing:
        raise CheckpointError(f"{path}: missing key(s) {', '.join(missing)}; re-export the bundle")


def _check_checksums(config: Mapping[str, Any], contents: Mapping[str, bytes], path: Path) -> None:
    """Compare each checksummed file's SHA-256 with config.json's record of it."""
    files = config["files"]
    for name, data in contents.items():
        expected = files.get(name) if isinstance(files, Mapping) else None
        if expected != hashlib.sha256(data).hexdigest():
            raise CheckpointError(
                f"{path / name}: content does not match its SHA-256 in {CONFIG_FILE} (changed or "
                "corrupted after export); restore the file or re-export the bundle"
            )


def _build_generator(
    model_config: ModelConfig, schema: DataSchema, data: bytes, path: Path
) -> nn.Module:
    """Build the generator and load safetensors weights into it, checking every shape."""
    try:
        weights = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own Rust-side error type for bad files
        raise CheckpointError(
            f"{path}: not a valid safetensors file ({_reason(exc)}); it is truncated or "
            "corrupt, re-export the bundle"
        ) from None
    try:
        module = get_family(model_config.family)[0](config=model_config, schema=schema)
    except SpecError as exc:
        raise CheckpointError(f"{path.parent / CONFIG_FILE}: {exc}; re-export") from None
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in weights]
    problems += [f"unexpected {k}" for k in weights if k not in expected]
    problems += [
        f"{k} has shape {list(weights[k].shape)}, the architecture needs {list(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if problems[3:] else ""
        )
        raise CheckpointError(
            f"{path}: weights do not fit the architecture in {CONFIG_FILE} ({shown}); "
            "re-export the bundle"
        )
    module.load_state_dict(weights)
    return module.eval().requires_grad_(False)


def _reason(exc: BaseException) -> str:
    """First line of an exception's message, shortened."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so JSON-read and computed values compare equal."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
