"""The sweep's baselines come from a child process: the driver holds no torch, and data it
cannot read still stops the sweep in one line, before any trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gan_hpc.cli import main
from gan_hpc.sweep.directory import BASELINES_FILE, TRIALS_DIR, write_spec
from gan_hpc.sweep.spec import sweep_spec_from_dict
from tests.helpers import small_frf_base

SEARCH = {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}}
FIFO = {"scheduler": "fifo", "num_samples": 2}


def test_the_driver_gets_the_baselines_without_loading_torch(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    document = {"name": "b", "base": small_frf_base(), "search": SEARCH, "tune": FIFO}
    spec = sweep_spec_from_dict(document)
    write_spec(sweep_dir, spec)
    driver = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gan_hpc.sweep.baselines import BaselinesJob\n"
        f"job = BaselinesJob(Path({str(sweep_dir)!r}), emit=lambda line: print('emit', line))\n"
        "job.check_data()\n"
        "job.finish()\n"
        "print('torch loaded:', 'torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, check=True, timeout=300
    )
    assert "torch loaded: False False" in run.stdout, run.stdout + run.stderr
    assert "emit scoring the signal baselines" in run.stdout
    reports = json.loads((sweep_dir / BASELINES_FILE).read_text())["reports"]
    assert set(reports) == {"real_data", "mean_curve"}


def test_unreadable_data_stops_the_sweep_in_one_line_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.arff"
    bad.write_text("@relation r\n@attribute a numeric\n@attribute b {x,y}\n@data\n1,x\n2,z\n")
    base = {
        "data": {"format": "arff", "path": str(bad)},
        "model": {"latent_dim": 4, "generator": {"width": 8}, "discriminator": {"width": 8}},
        "train": {"batch_size": 4, "num_steps": 4, "eval_every_steps": 2},
    }
    spec_file = tmp_path / "spec.yaml"
    document = {"name": "bad", "base": base, "search": SEARCH, "tune": FIFO}
    spec_file.write_text(yaml.safe_dump(document))
    assert main(["sweep", "run", str(spec_file), "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith("gan-hpc: error: ") and "declared nominal values" in err[-1], err
    assert not list((tmp_path / "sweep" / TRIALS_DIR).glob("trial_*"))
