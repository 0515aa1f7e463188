"""The import graph of gan_hpc, read from the source with ``ast`` (nothing is imported).

Prints, for each unit (a subpackage such as ``gan_hpc.data``, or a top-level module), the units
it imports at module level, then the import cycles between modules, then which modules pull in a
heavy library (torch, scikit-learn, matplotlib, scipy, pandas) when imported. An import inside a
function runs only when that function is called, so it is listed apart as "lazy" and is not part
of the cycle check.

    python scripts/import_graph.py [--check] [--root gan_hpc]

``--check`` exits 1 when modules import each other in a cycle at module level, or, for
gan_hpc itself, when an import (eager or lazy) goes against the layers of ARCHITECTURE.md
(:data:`LAYERS`).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HEAVY = ("torch", "sklearn", "matplotlib", "scipy", "pandas")

# gan_hpc's layers (ARCHITECTURE.md): what each package may import. "core" is every top-level
# module but the entry points; the entry points (the CLI, the package's own __init__) may
# import anything.
LAYERS: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "data": frozenset({"core", "data"}),
    "quality": frozenset({"core", "data", "quality"}),
    "trial": frozenset({"core", "data", "quality", "trial"}),
    "bundle": frozenset({"core", "data", "quality", "trial", "bundle"}),
    "launchers": frozenset({"core", "launchers"}),
    "sweep": frozenset({"core", "data", "quality", "trial", "bundle", "launchers", "sweep"}),
}
ENTRY_POINTS = frozenset({"gan_hpc", "gan_hpc.cli", "gan_hpc.__main__"})
# imports against the layers, each made inside a function: a trial's default scorer loads the
# held-out scoring of bundle/ when the trial ends, and the warm trainer loads it ahead of time
LAYER_EXCEPTIONS = frozenset(
    {
        ("gan_hpc.trial.scorer", "gan_hpc.bundle.scoring"),
        ("gan_hpc.trial.cli", "gan_hpc.bundle.scoring"),
    }
)


@dataclass
class ModuleImports:
    """What one module imports: gan_hpc modules and third-party roots, eager and lazy."""

    eager: set[str] = field(default_factory=set)
    lazy: set[str] = field(default_factory=set)
    eager_external: set[str] = field(default_factory=set)


def module_name(path: Path, root: Path) -> str:
    """``gan_hpc/data/cache.py`` -> ``gan_hpc.data.cache``; ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def read_imports(path: Path, name: str, known: set[str]) -> ModuleImports:
    """The imports of one source file; ``if TYPE_CHECKING:`` blocks are left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = ModuleImports()
    is_package = path.name == "__init__.py"

    def visit(nodes: Iterable[ast.stmt], lazy: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse, lazy)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                record(node, lazy)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body, True)  # runs when called, not when imported
            else:  # a class body, if/try/with/for blocks: they run at import
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        visit([child], lazy)
                    elif isinstance(child, ast.excepthandler):
                        visit(child.body, lazy)

    def record(node: ast.Import | ast.ImportFrom, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            module = _resolve(node, name, is_package)
            # `from gan_hpc import files` imports the module gan_hpc.files
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        for target in targets:
            if target.split(".")[0] == name.split(".")[0]:
                (found.lazy if lazy else found.eager).add(_owner(target, known))
            elif not lazy:
                found.eager_external.add(target.split(".")[0])

    visit(tree.body, False)
    found.eager.discard(name)
    found.lazy -= found.eager | {name}
    return found


def _owner(target: str, known: set[str]) -> str:
    """The longest known module that ``target`` names or lies in."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return target


def unit_of(module: str, root_name: str) -> str:
    """The unit of a module: ``gan_hpc.data.cache`` -> ``data``, ``gan_hpc.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else root_name


def layer_of(module: str) -> str:
    """``gan_hpc.trial.train`` -> ``trial``; a top-level module (``gan_hpc.files``) -> core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "core"


def layer_violations(imports: dict[str, ModuleImports]) -> list[str]:
    """Every import of gan_hpc that goes against :data:`LAYERS`, as ``a -> b (layer -> layer)``."""
    found = []
    for module, deps in sorted(imports.items()):
        if module in ENTRY_POINTS:
            continue
        allowed = LAYERS[layer_of(module)]
        for target in sorted(deps.eager | deps.lazy):
            if layer_of(target) not in allowed and (module, target) not in LAYER_EXCEPTIONS:
                kind = "" if target in deps.eager else ", lazy"
                found.append(
                    f"{module} -> {target} ({layer_of(module)} -> {layer_of(target)}{kind})"
                )
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def heavy_at_import(
    graph: dict[str, set[str]], imports: dict[str, ModuleImports]
) -> dict[str, set[str]]:
    """For each module, the heavy libraries that importing it pulls in (eager imports only)."""
    memo: dict[str, set[str]] = {}

    def heavy(module: str, seen: frozenset[str]) -> set[str]:
        if module in memo:
            return memo[module]
        own = {lib for lib in imports[module].eager_external if lib in HEAVY}
        for dep in graph[module]:
            if dep in imports and dep not in seen:
                own |= heavy(dep, seen | {dep})
        memo[module] = own
        return own

    return {module: heavy(module, frozenset({module})) for module in sorted(imports)}


def main(argv: list[str] | None = None) -> int:
    """Print the graph; with ``--check``, exit 1 on a module-level cycle or a layer broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1] / "gan_hpc"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when there is a cycle")
    args = parser.parse_args(argv)
    root: Path = args.root
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    imports = {name: read_imports(path, name, known) for name, path in files.items()}
    graph = {name: found.eager for name, found in imports.items()}

    units: dict[str, set[str]] = defaultdict(set)
    lazy_units: dict[str, set[str]] = defaultdict(set)
    for name, found in imports.items():
        unit = unit_of(name, root.name)
        units[unit] |= {unit_of(t, root.name) for t in found.eager} - {unit, root.name}
        lazy_units[unit] |= {unit_of(t, root.name) for t in found.lazy} - {unit, root.name}
    print(f"{'unit':<18} imports at module level  [lazy: inside functions]")
    for unit in sorted(units):
        lazy = sorted(lazy_units[unit] - units[unit])
        line = f"{unit:<18} {', '.join(sorted(units[unit])) or '-'}"
        print(line + (f"  [lazy: {', '.join(lazy)}]" if lazy else ""))

    found_cycles = cycles(graph)
    print(f"\nmodule-level import cycles: {len(found_cycles)}")
    for component in found_cycles:
        print("  " + " <-> ".join(component))

    # a package's __init__ runs before any of its modules: it counts as imported with them
    with_parents = {
        name: deps | {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for name, deps in graph.items()
    }
    violations = layer_violations(imports) if root.name == "gan_hpc" else []
    if root.name == "gan_hpc":
        print(f"\nimports against the layers of ARCHITECTURE.md: {len(violations)}")
        for line in violations:
            print(f"  {line}")

    heavy = heavy_at_import(with_parents, imports)
    light = [m for m, libs in heavy.items() if not libs]
    print(f"\nmodules importing none of {', '.join(HEAVY)}: {len(light)} of {len(heavy)}")
    for module in light:
        print(f"  {module}")
    return 1 if args.check and (found_cycles or violations) else 0


if __name__ == "__main__":
    raise SystemExit(main())
