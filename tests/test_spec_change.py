"""Resuming a sweep with a changed spec: refused in one line unless the keys are allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gan_hpc.cli import main
from gan_hpc.errors import SweepError
from gan_hpc.locks import DriverLock
from gan_hpc.sweep.directory import SPEC_FILE, write_spec
from gan_hpc.sweep.spec import load_sweep_spec
from gan_hpc.sweep.spec_change import accept_spec_change, changed_keys, parse_allowed

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "sweeps" / "quickstart.yaml"


class _Started(Exception):
    """Raised by the stand-in driver: the CLI got past every check."""


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    spec = load_sweep_spec(QUICKSTART)
    directory = spec.sweep_dir(tmp_path / spec.name)
    directory.mkdir(parents=True)
    write_spec(directory, spec)
    return directory


def _resume(tmp_path: Path, *extra: str) -> int:
    out = str(tmp_path / "quickstart")
    return main(["sweep", "run", str(QUICKSTART), "--out", out, "--resume", *extra])


def _stored(sweep_dir: Path) -> dict:
    return yaml.safe_load((sweep_dir / SPEC_FILE).read_text())


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gan-hpc: error: "), err
    return err[0]


def test_changed_keys_are_dotted_leaves() -> None:
    stored = {"tune": {"metric": "a", "num_samples": 8}, "search": {"loss.name": {"choice": [1]}}}
    new = {"tune": {"metric": "a", "num_samples": 9, "extra": 1}, "search": {}}
    assert changed_keys(stored, new) == ["search.loss.name", "tune.extra", "tune.num_samples"]
    assert changed_keys(stored, stored) == []
    assert parse_allowed(["slurm, tune.num_samples", "resources"]) == (
        "slurm",
        "tune.num_samples",
        "resources",
    )


def test_a_changed_spec_is_refused_naming_the_keys(
    tmp_path: Path, sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (sweep_dir / SPEC_FILE).read_text()
    code = _resume(tmp_path, "--set", "tune.max_concurrent_trials=1", "slurm.timeout_min=99")
    assert code == 2
    line = _one_line_error(capsys)
    assert "slurm.timeout_min, tune.max_concurrent_trials" in line
    assert "--allow-spec-change slurm.timeout_min,tune.max_concurrent_trials" in line
    assert (sweep_dir / SPEC_FILE).read_text() == before


def test_a_prefix_allows_only_whole_segments(
    tmp_path: Path, sweep_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _resume(
        tmp_path, "--set", "tune.max_concurrent_trials=1", "--allow-spec-change", "tune.max"
    )
    assert code == 2
    assert "differs at tune.max_concurrent_trials;" in _one_line_error(capsys)


@pytest.mark.parametrize(
    "change",
    ["base.data.synthetic.num_points=100", "tune.mode=max", "base.loss.name=hinge"],
)
def test_some_keys_never_change(
    tmp_path: Path, sweep_dir: Path, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    key = change.split("=")[0]
    code = _resume(tmp_path, "--set", change, "--allow-spec-change", "base,tune")
    assert code == 2
    line = _one_line_error(capsys)
    assert f"differs at {key}, which a resumed sweep can never change" in line


def test_an_allowed_change_is_stored_before_the_driver_starts(
    tmp_path: Path, sweep_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gan_hpc.sweep.driver

    def started(*args: object, **kwargs: object) -> None:
        raise _Started

    monkeypatch.setattr(gan_hpc.sweep.driver, "run_sweep", started)
    monkeypatch.setattr(gan_hpc.sweep.driver, "has_tune_state", lambda *a: True)
    with pytest.raises(_Started):
        _resume(
            tmp_path,
            "--set",
            "tune.max_concurrent_trials=1",
            "slurm.timeout_min=99",
            "--allow-spec-change",
            "tune.max_concurrent_trials,slurm",
        )
    stored = _stored(sweep_dir)
    assert stored["tune"]["max_concurrent_trials"] == 1 and stored["slurm"]["timeout_min"] == 99
    with pytest.raises(_Started):  # the same spec again: nothing to allow
        _resume(tmp_path, "--set", "tune.max_concurrent_trials=1", "slurm.timeout_min=99")


def test_a_running_driver_keeps_its_spec(sweep_dir: Path) -> None:
    before = (sweep_dir / SPEC_FILE).read_text()
    spec = load_sweep_spec(QUICKSTART, ["tune.max_concurrent_trials=1"])
    with DriverLock(sweep_dir / "driver.lock"):
        with pytest.raises(SweepError, match="already driven by"):
            accept_spec_change(sweep_dir, spec, ["tune"], lock_path=sweep_dir / "driver.lock")
    assert (sweep_dir / SPEC_FILE).read_text() == before
    assert accept_spec_change(sweep_dir, spec, ["tune"], lock_path=sweep_dir / "driver.lock") == [
        "tune.max_concurrent_trials"
    ]
    assert _stored(sweep_dir)["tune"]["max_concurrent_trials"] == 1
