"""The config machinery: build typed, frozen dataclasses from plain data, and ``--set`` overrides.

:func:`config_from_dict` rejects unknown keys (with a closest-match suggestion), wrong types and
impossible values, each as a one-line :class:`~gan_hpc.errors.SpecError` naming the file, the
key and the fix. The config classes themselves (and every default) live in :mod:`gan_hpc.config`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import types
import typing
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from gan_hpc.errors import SpecError

T = TypeVar("T")


class ConfigValueError(ValueError):
    """Raised by a config's ``__post_init__``; the loader prefixes the file and the dotted key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def require(condition: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigValueError` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigValueError(key, message)


def config_to_dict(config: Any) -> Any:
    """Convert a config dataclass tree to plain dicts/lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: config_to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (tuple, list)):
        return [config_to_dict(v) for v in config]
    if isinstance(config, Mapping):
        return {k: config_to_dict(v) for k, v in config.items()}
    return config


def config_from_dict(cls: type[T], data: Any, *, source: str = "config", prefix: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, validating every key, type and value.

    Args:
        cls: a frozen config dataclass.
        data: a mapping of field names to values (nested mappings for nested configs).
        source: what to name in errors (usually the file path).
        prefix: dotted path of ``data`` inside the whole document.

    Raises:
        SpecError: one line naming ``source``, the dotted key and the fix.

    """
    where = prefix or "(top level)"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: {where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (valid: {', '.join(names)})"
            raise SpecError(f"{source}: {dotted}: unknown key '{key}'{hint}")
        kwargs[key] = _coerce(hints[key], value, source=source, dotted=dotted)
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        dotted = f"{prefix}.{exc.key}" if prefix else exc.key
        raise SpecError(f"{source}: {dotted}: {exc.message}") from None


def _type_name(tp: Any) -> str:
    """Readable name of a type hint for error messages."""
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, *, source: str, dotted: str) -> Any:
    """Check ``value`` against the hint ``tp`` and convert lists to tuples, dicts to configs."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, source=source, prefix=dotted)  # type: ignore[arg-type]
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, source=source, dotted=dotted)
            except SpecError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise SpecError(f"{source}: {dotted}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed and type(value) is type(allowed[allowed.index(value)]):
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        choices = ", ".join(repr(a) for a in allowed)
        raise SpecError(f"{source}: {dotted}: {value!r} is not one of {choices}{hint}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{source}: {dotted}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _coerce(args[0], v, source=source, dotted=f"{dotted}[{i}]")
                for i, v in enumerate(value)
            )
        if len(value) != len(args):
            raise SpecError(f"{source}: {dotted}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(a, v, source=source, dotted=f"{dotted}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=False))
        )
    if origin is dict:
        key_tp, value_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise SpecError(f"{source}: {dotted}: expected a mapping, got {value!r}")
        return {
            _coerce(key_tp, k, source=source, dotted=dotted): _coerce(
                value_tp, v, source=source, dotted=f"{dotted}.{k}"
            )
            for k, v in value.items()
        }
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise SpecError(f"{source}: {dotted}: unsupported config type {tp!r}")
    raise SpecError(f"{source}: {dotted}: expected {_type_name(tp)}, got {value!r}")


class _OverridesAction(argparse.Action):
    """Collect ``--set k=v [k2=v2 ...]``, repeatable, into one flat list of ``key=value`` strings.

    Each flag takes one or more pairs (as Hydra users expect), so a word without ``=`` after the
    pairs is an error here, naming the word: otherwise argparse would swallow a positional
    argument given after ``--set`` and complain about something else.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        pairs = [values] if isinstance(values, str) else [str(v) for v in values or ()]
        for pair in pairs:
            if "=" not in pair:
                parser.exit(
                    2,
                    f"{parser.prog}: error: {option_string}: {pair!r} is not key=value "
                    "(e.g. train.num_steps=200); give other arguments before --set\n",
                )
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *pairs])


def add_override_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """Declare ``--set KEY=VALUE [KEY=VALUE ...]`` (repeatable), read by :func:`apply_overrides`."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action=_OverridesAction,
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help=f"{help}; one or more pairs per --set, which may be repeated",
    )


def parse_override(text: str, *, source: str = "--set") -> tuple[str, Any]:
    """Parse ``key.path=value``; the value is a Python/YAML literal or a bare string."""
    if "=" not in text:
        raise SpecError(f"{source}: {text!r}: expected key=value (e.g. train.num_steps=200)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise SpecError(f"{source}: {text!r}: empty key")
    try:
        with warnings.catch_warnings():  # "'\\e'": an invalid escape is kept, not warned about
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            value = ast.literal_eval(raw)
    except TypeError:  # e.g. {[1]: 2}: a literal, but a dict key that cannot be hashed
        raise SpecError(
            f"{source}: {key}={raw}: a dict key must be a string or a number; fix the literal"
        ) from None
    except (RecursionError, MemoryError):
        raise SpecError(f"{source}: {key}: value nested too deeply; simplify it") from None
    except (ValueError, SyntaxError):
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, RecursionError):
            value = raw
    if _nesting_depth(value) > MAX_OVERRIDE_DEPTH:
        raise SpecError(f"{source}: {key}: value nested too deeply; simplify it")
    return key, value


MAX_OVERRIDE_DEPTH = 32  # no config field nests this deep; deeper values would overflow copies


def _nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_OVERRIDE_DEPTH:
            break
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def apply_overrides(
    document: Mapping[str, Any], overrides: Sequence[str], *, root: str = ""
) -> dict[str, Any]:
    """Return a deep copy of ``document`` with each ``key.path=value`` override set.

    Args:
        document: the plain config document.
        overrides: ``key=value`` strings.
        root: a block that keys are relative to (e.g. ``base`` in a sweep spec), unless a key
            already starts with a top-level block name of the document.

    """
    result = _deep_copy(document)
    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if root and parts[0] not in result:
            parts = [root, *parts]
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(value: Any) -> Any:
    """Copy nested dicts/lists."""
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; one-line errors name the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory; give the YAML file itself") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text (byte {exc.start}); give a YAML file saved as UTF-8"
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot read ({exc.strerror}); check the path and its permissions"
        ) from None
    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise SpecError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{line}: invalid YAML: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SpecError(
            f"{path}: expected a mapping at the top level, got {type(document).__name__}"
        )
    return document
