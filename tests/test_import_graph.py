"""scripts/import_graph.py: no import cycle and no broken layer, and the script would see them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_gan_hpc_has_no_module_level_cycle(import_graph, capsys):
    assert import_graph.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "module-level import cycles: 0" in out
    assert "gan_hpc.errors" in out.split("modules importing none of")[1]  # a cheap module


def test_a_cycle_and_a_heavy_import_are_found(import_graph, tmp_path, capsys):
    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from toy import b\n")
    (package / "b.py").write_text("import torch\nfrom toy.a import thing\n")
    (package / "c.py").write_text("def later():\n    from toy import a\n")  # lazy: no cycle
    assert import_graph.main(["--check", "--root", str(package)]) == 1
    out = capsys.readouterr().out
    assert "toy.a <-> toy.b" in out
    light = out.split("modules importing none of")[1]
    assert "toy.c" in light and "toy.a" not in light  # a imports b, which imports torch
    assert "[lazy: a]" in out


def test_gan_hpc_keeps_its_layers_and_the_check_sees_a_broken_one(import_graph, capsys):
    assert import_graph.main(["--check"]) == 0
    assert "imports against the layers of ARCHITECTURE.md: 0" in capsys.readouterr().out
    launcher = import_graph.ModuleImports(eager={"gan_hpc.trial.train"})
    sweep = import_graph.ModuleImports(lazy={"gan_hpc.launchers.slurm"})
    broken = import_graph.layer_violations(
        {"gan_hpc.launchers.slurm": launcher, "gan_hpc.sweep.tune": sweep}
    )
    assert broken == ["gan_hpc.launchers.slurm -> gan_hpc.trial.train (launchers -> trial)"]
