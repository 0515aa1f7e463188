"""`sweep extend`'s checks and its one durable change (the engine run is tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gan_hpc.cli import main
from gan_hpc.errors import SweepError
from gan_hpc.locks import DriverLock
from gan_hpc.sweep.directory import SPEC_FILE, check_new_sweep_dir, find_sweep_dir, write_spec
from gan_hpc.sweep.extend import extend_spec
from gan_hpc.sweep.spec import load_sweep_spec

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "sweeps" / "quickstart.yaml"


def _sweep(root: Path, name: str = "quickstart") -> Path:
    spec = load_sweep_spec(QUICKSTART, [f"name={name}"])
    directory = root / name
    directory.mkdir(parents=True)
    write_spec(directory, spec)
    return directory


def _stored(sweep_dir: Path) -> dict:
    return yaml.safe_load((sweep_dir / SPEC_FILE).read_text())


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_extend_stores_the_new_total_and_the_allowed_changes(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path)
    before = _stored(sweep_dir)["tune"]["num_samples"]
    lock = sweep_dir / "driver.lock"
    spec = extend_spec(sweep_dir, 3, lock_path=lock)
    assert spec.tune.num_samples == before + 3 == _stored(sweep_dir)["tune"]["num_samples"]
    spec = extend_spec(
        sweep_dir, 2, overrides=["train.num_steps=777"], allowed=["base.train"], lock_path=lock
    )
    stored = _stored(sweep_dir)
    assert stored["tune"]["num_samples"] == before + 5  # twice: each adds to the stored total
    assert stored["base"]["train"]["num_steps"] == 777 == spec.base.train.num_steps


def test_extend_follows_the_resume_rules(tmp_path: Path) -> None:
    sweep_dir = _sweep(tmp_path)
    lock = sweep_dir / "driver.lock"
    with pytest.raises(SweepError, match=r"differs at base\.train\.num_steps.*--allow-spec"):
        extend_spec(sweep_dir, 1, overrides=["train.num_steps=777"], lock_path=lock)
    with pytest.raises(SweepError, match=r"never change"):
        extend_spec(sweep_dir, 1, overrides=["seed=5"], allowed=["seed"], lock_path=lock)
    with DriverLock(lock), pytest.raises(SweepError, match="driver"):
        extend_spec(sweep_dir, 1, lock_path=lock)  # a running driver's spec never changes
    assert _stored(sweep_dir)["tune"]["num_samples"] == load_sweep_spec(QUICKSTART).tune.num_samples


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{sweep}", "--num-samples", "0"], "--num-samples 0: give how many trials to add"),
        (["{tmp}/nowhere", "--num-samples", "2"], "nowhere: no such directory"),
        (["{tmp}/empty", "--num-samples", "2"], "empty: no spec.yaml; is it a sweep directory?"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    sweep_dir = _sweep(tmp_path)
    (tmp_path / "empty").mkdir()
    words = [w.format(sweep=sweep_dir, tmp=tmp_path) for w in argv]
    line = _error(capsys, ["sweep", "extend", *words])
    assert line.startswith("gan-hpc: error: ") and message in line
    assert _stored(sweep_dir)["tune"]["num_samples"] == 8  # nothing changed


def test_a_folder_holding_one_sweep_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep_dir = _sweep(tmp_path)
    assert find_sweep_dir(tmp_path) == sweep_dir == find_sweep_dir(sweep_dir)
    trial = tmp_path / "trial"  # a trial directory passes through (export takes one)
    trial.mkdir()
    (tmp_path / "other").mkdir()
    _sweep(tmp_path, "second")
    line = _error(capsys, ["sweep", "status", str(tmp_path)])
    assert line.endswith(f"holds 2 sweeps (quickstart, second); give one of them, e.g. {sweep_dir}")
    assert find_sweep_dir(trial) == trial


def test_out_is_the_sweep_directory_never_a_folder_of_sweeps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sweep(tmp_path)
    check_new_sweep_dir(tmp_path / "new")  # absent: fine
    line = _error(capsys, ["sweep", "run", str(QUICKSTART), "--out", str(tmp_path)])
    assert line.endswith(
        f"--out {tmp_path}: holds sweeps (quickstart); --out names the sweep directory itself, "
        f"e.g. --out {tmp_path / 'quickstart'}"
    )
    assert not (tmp_path / SPEC_FILE).exists()
