"""Property-based: whatever the spec file or ``--set`` holds, the CLI answers in one line.

Bad input gives a one-line ``gan-hpc: error: ...`` and exit 2; good input gives 0. A traceback
(any exception out of ``main``) fails the test, and hypothesis shrinks it to the smallest input.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gan_hpc.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "sweeps" / "quickstart.yaml"
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path in a nested mapping (blocks and leaves), as key tuples."""
    if not isinstance(node, dict):
        return []
    paths: list[tuple[str, ...]] = []
    for key, value in node.items():
        path = (*prefix, key)
        paths += [path, *_paths(value, path)]
    return paths


SPEC = yaml.safe_load(QUICKSTART.read_text())
PATHS = _paths(SPEC)
KEYS = [".".join(path) for path in PATHS]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["mlp", "bce_logits", "asha", "min", "max", "local", "slurm", ""]),
)
mapping_keys = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.sampled_from(KEYS))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(mapping_keys, children, max_size=4)
    ),
    max_leaves=16,
)
literals = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "{[1]: 2}",
            "{{}: 1}",
            "[" * 400,
            "(" * 400,
            "1e999",
            "nan",
            "-1",
            "{1: 2}",
            "!!python/object/apply:os.system [ls]",
            "&a [*a]",
            "'unterminated",
            "\x00",
        ]
    ),
    documents.map(repr),
    documents.map(lambda d: yaml.safe_dump(d, default_flow_style=True).strip()),
)


def _run(argv: Sequence[str]) -> None:
    """Run the CLI; any exception is a traceback the user would see, and fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    assert code in (0, 2), (code, err.getvalue())
    if code == 2:
        errors = [line for line in err.getvalue().splitlines() if "error" in line]
        assert len(errors) == 1 and errors[0].startswith("gan-hpc: error: "), err.getvalue()
        assert "Traceback" not in err.getvalue()


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with ``path`` set (or removed, for the sentinel ``...``)."""
    result = yaml.safe_load(yaml.safe_dump(document))
    node = result
    *parents, last = path
    for part in parents:
        node = node[part]
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return result


@FUZZ
@given(path=st.sampled_from(PATHS), value=st.one_of(documents, st.just(...)))
def test_a_spec_with_one_entry_changed_is_ok_or_one_line(
    tmp_path: Path, path: tuple[str, ...], value: Any
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_set(SPEC, path, value)))
    _run(["sweep", "validate", str(spec)])


@FUZZ
@given(document=documents)
def test_any_yaml_document_is_ok_or_one_line(tmp_path: Path, document: Any) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(document))
    _run(["sweep", "validate", str(spec)])


@settings(FUZZ, max_examples=30)
@given(content=st.binary(max_size=200))
def test_any_bytes_are_ok_or_one_line(tmp_path: Path, content: bytes) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(content)
    _run(["sweep", "validate", str(spec)])


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)), literals),
        min_size=1,
        max_size=3,
    )
)
def test_any_set_values_are_ok_or_one_line(pairs: list[tuple[str, str]]) -> None:
    # --set=K=V keeps a value that starts with '-' from reading as an option
    _run(["sweep", "validate", str(QUICKSTART), *(f"--set={k}={v}" for k, v in pairs)])


def test_directory_or_binary_spec_is_one_line(tmp_path: Path) -> None:
    _run(["sweep", "validate", str(tmp_path)])
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x")
    _run(["sweep", "validate", str(binary)])
