"""The search space of a sweep: distributions over dotted TrialConfig paths, validated once.

A ``search:`` entry maps a leaf field of the trial config to a distribution::

    optim.generator.lr: {loguniform: [1.0e-5, 1.0e-3]}
    loss.name: {choice: [bce_logits, hinge, wasserstein]}
    loss.clip_value: {loguniform: [0.005, 0.05], when: {loss.name: [wasserstein]}}
    model.generator.depth: {int: [1, 3]}

Each entry is checked by applying its endpoints (or each choice) to the base config and running
the TrialConfig validation, so every field rule is reused. ``when`` conditions name other
search keys or base fields; :func:`search_order_of` puts parents first and rejects cycles.
Only ``optuna_search.py`` turns this space into Optuna suggestions.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

from gan_hpc.config import TrialConfig
from gan_hpc.config_validation import config_from_dict
from gan_hpc.errors import SpecError

logger = logging.getLogger(__name__)

_SCALAR_TYPES = (type(None), bool, int, float, str)
# The trial-config blocks every trial of a sweep shares: its ranking rule, and the quality
# settings its scores are computed with (so the scores compare).
_SHARED_BLOCKS = ("convergence.", "quality.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``."""

    kind: ClassVar[str] = "uniform"
    low: float
    high: float
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{uniform: [0.0, 0.5]}``."""
        return _with_when({self.kind: [self.low, self.high]}, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogUniform:
    """A float drawn log-uniformly from ``[low, high]`` (``low > 0``)."""

    kind: ClassVar[str] = "loguniform"
    low: float
    high: float
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{loguniform: [1.0e-5, 1.0e-3]}``."""
        return _with_when({self.kind: [self.low, self.high]}, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive, in multiples of ``step`` from ``low``."""

    kind: ClassVar[str] = "int"
    low: int
    high: int
    step: int = 1
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{int: [1, 3]}`` or ``{int: [16, 256], step: 16}``."""
        data: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step != 1:
            data["step"] = self.step
        return _with_when(data, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """One of a fixed list of scalar values (null, bool, int, float or str)."""

    kind: ClassVar[str] = "choice"
    values: tuple[Any, ...]
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{choice: [hinge, wasserstein]}``."""
        return _with_when({self.kind: list(self.values)}, self.when)


Distribution = Uniform | LogUniform | IntRange | Choice
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
    "int": IntRange,
    "choice": Choice,
}
_DISTRIBUTION_OPTIONS = ("when", "step")


def _with_when(data: dict[str, Any], when: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Add the ``when`` condition to a distribution's YAML form when there is one."""
    if when:
        data["when"] = {key: list(values) for key, values in when.items()}
    return data


def _leaf_types(cls: type[Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> type hint of every non-dataclass field under ``cls``."""
    leaves: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        dotted = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(hint):
            leaves.update(_leaf_types(hint, f"{dotted}."))  # type: ignore[arg-type]
        else:
            leaves[dotted] = hint
    return leaves


TRIAL_LEAVES: dict[str, Any] = _leaf_types(TrialConfig)
SEARCHABLE_PATHS: tuple[str, ...] = tuple(
    p for p in TRIAL_LEAVES if not p.startswith(_SHARED_BLOCKS)
)


def load_search(raw: Any, base: TrialConfig, *, source: str) -> dict[str, Distribution]:
    """Parse and validate every search entry against ``base``."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"{source}: search: expected a mapping of dotted paths to distributions, "
            f"got {type(raw).__name__}"
        )
    base_doc = base.to_dict()
    search: dict[str, Distribution] = {}
    for path, entry in raw.items():
        path = str(path)
        _check_search_path(path, source=source)
        dist = _parse_distribution(entry, where=f"{source}: search.{path}")
        search[path] = _check_values(path, dist, base_doc, source=source)
    # Conditions are checked once every entry is parsed: they may name later entries.
    for path, entry in raw.items():
        if "when" in entry:
            when = _check_when(str(path), entry["when"], search, base, base_doc, source=source)
            search[str(path)] = dataclasses.replace(search[str(path)], when=when)
    search_order_of(search, source=source)  # rejects cycles among conditions
    return search


def _check_search_path(path: str, *, source: str) -> None:
    """Require a search key to be a leaf field of TrialConfig outside ``convergence``."""
    if path in SEARCHABLE_PATHS:
        return
    where = f"{source}: search.{path}"
    if path.startswith("convergence."):
        raise SpecError(
            f"{where}: the ranking rule is shared by every trial; set it under ranking: instead"
        )
    if path.startswith("quality."):
        raise SpecError(
            f"{where}: every trial is scored with the same quality settings, so the scores "
            "compare; set them under base.quality instead"
        )
    if path.startswith("base."):
        raise SpecError(f"{where}: search keys are relative to base; write '{path[5:]}'")
    close = difflib.get_close_matches(path, SEARCHABLE_PATHS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "use a dotted TrialConfig field path"
    raise SpecError(f"{where}: unknown key '{path}' ({hint})")


def _parse_distribution(entry: Any, *, where: str) -> Distribution:
    """Turn ``{kind: args, when?: ..., step?: ...}`` into a typed distribution (shape only)."""
    if not isinstance(entry, Mapping):
        raise SpecError(
            f"{where}: expected a distribution such as {{uniform: [low, high]}} or "
            f"{{choice: [a, b]}}, got {entry!r} (to fix a value, set it in base)"
        )
    valid = (*DISTRIBUTIONS, *_DISTRIBUTION_OPTIONS)
    for key in entry:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid)}"
            raise SpecError(f"{where}: unknown key '{key}' ({hint})")
    kinds = [key for key in entry if key in DISTRIBUTIONS]
    if len(kinds) != 1:
        found = f"got {', '.join(kinds)}" if kinds else "got none"
        raise SpecError(f"{where}: needs exactly one of {', '.join(DISTRIBUTIONS)} ({found})")
    kind = kinds[0]
    args = entry[kind]
    if "step" in entry and kind != "int":
        raise SpecError(f"{where}: step only applies to int ranges (remove it)")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SpecError(f"{where}: choice needs a non-empty list, e.g. {{choice: [a, b]}}")
        for value in args:
            if not isinstance(value, _SCALAR_TYPES):
                raise SpecError(
                    f"{where}: choice values must be scalars (null, bool, int, float or str), "
                    f"got {value!r}"
                )
        return Choice(values=tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise SpecError(f"{where}: {kind} needs [low, high], got {args!r}")
    if kind == "int":
        int_low, int_high = (_integer(v, where=where, what="int bounds") for v in args)
        step = _integer(entry.get("step", 1), where=where, what="step")
        _check_range(int_low, int_high, where=where)
        if step < 1 or (int_high - int_low) % step:
            raise SpecError(
                f"{where}: step {step} must be >= 1 and divide high - low = {int_high - int_low}"
            )
        return IntRange(low=int_low, high=int_high, step=step)
    low, high = (_real(v, where=where, kind=kind) for v in args)
    _check_range(low, high, where=where)
    if kind == "loguniform":
        if low <= 0:
            raise SpecError(
                f"{where}: loguniform needs low > 0, got {low:g} (use a positive low or uniform)"
            )
        return LogUniform(low=low, high=high)
    return Uniform(low=low, high=high)


def _integer(value: Any, *, where: str, what: str) -> int:
    """Read an int from YAML, refusing floats and bools."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SpecError(f"{where}: {what} must be integers, got {value!r} (use uniform for floats)")


def _real(value: Any, *, where: str, kind: str) -> float:
    """Read a float from YAML (which reads ``1e-4`` without a dot as a string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise SpecError(f"{where}: {kind} bounds must be numbers, got {value!r}")


def _check_range(low: float, high: float, *, where: str) -> None:
    """``low < high``, with the fix spelled out."""
    if low > high:
        raise SpecError(f"{where}: low {low:g} > high {high:g} (swap them)")
    if low == high:
        raise SpecError(f"{where}: low == high == {low:g} (set the fixed value in base instead)")


def _check_values(
    path: str, dist: Distribution, base_doc: Mapping[str, Any], *, source: str
) -> Distribution:
    """Validate the values a distribution can take against the field; return them coerced."""
    where = f"{source}: search.{path}"
    hint = _strip_optional(TRIAL_LEAVES[path])
    if isinstance(dist, (Uniform, LogUniform)) and hint is not float:
        raise SpecError(
            f"{where}: {dist.kind} samples floats but {path} is {_hint_name(hint)}; "
            + ("use {int: [low, high]}" if hint is int else "use {choice: [...]}")
        )
    if isinstance(dist, IntRange) and hint not in (int, float):
        raise SpecError(
            f"{where}: int samples integers but {path} is {_hint_name(hint)}; use {{choice: [...]}}"
        )
    if isinstance(dist, Choice):
        values = tuple(_validate_value(path, v, base_doc, source, where) for v in dist.values)
        for i, value in enumerate(values):
            if value in values[:i]:
                raise SpecError(f"{where}: choice lists {value!r} twice (remove the duplicate)")
        return Choice(values=values)
    for endpoint in (dist.low, dist.high):
        _validate_value(path, endpoint, base_doc, source, where)
    return dist


def _strip_optional(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _hint_name(hint: Any) -> str:
    """Name a field type readably for errors."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _validate_value(
    path: str, value: Any, base_doc: Mapping[str, Any], source: str, where: str
) -> Any:
    """Apply ``path=value`` to the base config, run TrialConfig validation, return the value.

    The value comes back coerced by the field's type (YAML's ``1e-4`` string becomes a float).
    """
    document = copy.deepcopy(dict(base_doc))
    set_dotted(document, path, value)
    try:
        config = config_from_dict(TrialConfig, document, source=source)
    except SpecError as exc:
        message = str(exc).removeprefix(f"{source}: ").removeprefix(f"{path}: ")
        raise SpecError(f"{where}: {message}") from None
    return get_dotted(config, path)


def _check_when(
    path: str,
    raw: Any,
    search: Mapping[str, Distribution],
    base: TrialConfig,
    base_doc: Mapping[str, Any],
    *,
    source: str,
) -> dict[str, tuple[Any, ...]]:
    """Validate a conditional parameter's ``when`` mapping; return it with coerced values."""
    where = f"{source}: search.{path}.when"
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            f"{where}: expected a mapping such as {{loss.name: [wasserstein]}}, got {raw!r}"
        )
    when: dict[str, tuple[Any, ...]] = {}
    for key, allowed in raw.items():
        key = str(key)
        if key == path:
            raise SpecError(f"{where}: a parameter cannot be conditional on itself")
        if key not in search and key not in SEARCHABLE_PATHS:
            candidates = [*search, *SEARCHABLE_PATHS]
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "use a search key or a base field"
            raise SpecError(f"{where}: unknown key '{key}' ({hint})")
        if not isinstance(allowed, list) or not allowed:
            raise SpecError(f"{where}.{key}: expected a non-empty list of values, e.g. [{allowed}]")
        values = []
        for value in allowed:
            if not isinstance(value, _SCALAR_TYPES):
                raise SpecError(f"{where}.{key}: values must be scalars, got {value!r}")
            values.append(_validate_value(key, value, base_doc, source, f"{where}.{key}"))
        parent = search.get(key)
        for value in values:
            if isinstance(parent, Choice) and value not in parent.values:
                raise SpecError(
                    f"{where}.{key}: {value!r} is never sampled (choices: "
                    f"{', '.join(repr(v) for v in parent.values)})"
                )
            if isinstance(parent, (Uniform, LogUniform, IntRange)) and not (
                parent.low <= value <= parent.high
            ):
                raise SpecError(
                    f"{where}.{key}: {value!r} is outside [{parent.low}, {parent.high}]"
                )
        if parent is None and get_dotted(base, key) not in values:
            logger.warning(
                "%s: search.%s is never sampled: base %s is %r, not one of %s",
                source,
                path,
                key,
                get_dotted(base, key),
                values,
            )
        when[key] = tuple(values)
    return when


def search_order_of(search: Mapping[str, Distribution], *, source: str = "spec") -> list[str]:
    """Order search keys so that every condition's parameters come before their dependants.

    Raises:
        SpecError: when the conditions form a cycle.

    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str, chain: tuple[str, ...]) -> None:
        if key in order:
            return
        if key in visiting:
            cycle = " -> ".join((*chain, key))
            raise SpecError(f"{source}: search.{key}.when: conditions form a cycle ({cycle})")
        visiting.add(key)
        for parent in search[key].when:
            if parent in search:
                visit(parent, (*chain, key))
        visiting.discard(key)
        order.append(key)

    for key in search:
        visit(key, ())
    return order


def set_dotted(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating missing levels."""
    *parents, last = path.split(".")
    node = document
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def get_dotted(config: Any, path: str) -> Any:
    """Read ``a.b.c`` from a config dataclass tree."""
    for part in path.split("."):
        config = getattr(config, part)
    return config
