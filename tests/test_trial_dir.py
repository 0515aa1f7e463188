"""The trial directory's typed records: status and result read back; bad ones never crash."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from gan_hpc.cli import main
from gan_hpc.errors import GanHpcError
from gan_hpc.trial_dir import (
    CHECKPOINT_KINDS,
    CheckpointKind,
    CheckpointRecord,
    TrialDir,
    TrialResult,
    TrialStatus,
)
from tests.helpers import small_frf_config


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ("running", "expected a JSON object, got str"),
        ({"restart_count": "two"}, "restart_count is 'two', not a int"),
        ({"state": None}, "state is None, not a str"),
        ({"step": True}, "step is True"),
    ],
)
def test_a_status_that_is_not_a_status_is_one_line(
    tmp_path: Path, content: object, match: str
) -> None:
    trial = TrialDir(tmp_path)
    trial.status_path.write_text(json.dumps(content))
    with pytest.raises(GanHpcError, match=match) as error:
        trial.read_status()
    assert str(error.value).startswith(f"{trial.status_path}: ")
    assert "delete the file" in str(error.value) and "\n" not in str(error.value)


def test_a_good_status_reads_back(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path)
    assert trial.read_status() == TrialStatus()  # absent: pending
    trial.update_status(state="running", step=5, job_id="12", updated_at=3)
    status = trial.read_status()
    assert (status.state, status.step, status.job_id) == ("running", 5, "12")


def test_status_changes_made_at_once_in_three_processes_are_all_kept(tmp_path: Path) -> None:
    """The trainer, its launcher and its watcher each change status.json; none loses another's."""
    trial = TrialDir(tmp_path)
    changer = f"""
import sys
from gan_hpc.trial_dir import TrialDir
trial = TrialDir({str(tmp_path)!r})
for n in range(150):
    trial.update_status(job_id=f"{{sys.argv[1]}}:{{n}}", add={{sys.argv[1]: 1}})
"""
    counts = ("resumes", "restart_count", "steps_repeated")
    changers = [subprocess.Popen([sys.executable, "-c", changer, name]) for name in counts]
    assert [changer.wait(timeout=120) for changer in changers] == [0, 0, 0]
    status = trial.read_status()
    assert (status.resumes, status.restart_count, status.steps_repeated) == (150, 150, 150)
    assert status.job_id.endswith(":149")


def test_train_on_a_trial_with_a_bad_status_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(small_frf_config().to_dict()))
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text("[]")
    assert main(["train", str(config), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[-1]] and err[-1].startswith(f"gan-hpc: error: {run / 'status.json'}: ")


def _result() -> TrialResult:
    best = CheckpointRecord(
        step=100,
        metrics={"d_loss_gap": 0.1, "quality/tabular_score": 0.7},
        checkpoint="checkpoints/best.pt",
        quality={"sample_sizes": {"rows": 500}, "notes": [], "seconds": 1.5},
    )
    last = CheckpointRecord(step=200, metrics={"d_loss_gap": 0.2}, checkpoint="checkpoints/x.pt")
    return TrialResult(
        state="halted",
        step=200,
        wall_time_s=12.5,
        best=best,
        last=last,
        replica_fingerprints=("abc", "abc"),
        flags=({"guard": "mode_collapse", "step": 200, "detail": "diversity 0.01"},),
    )


def test_a_result_reads_back_as_written(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path)
    assert trial.read_result() is None  # not ended yet
    trial.write_result(_result())
    assert trial.read_result() == _result()
    assert _result().guard_names == ("mode_collapse",)


def test_a_nan_metric_is_written_as_null_and_reads_as_missing(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path)
    record = CheckpointRecord(step=5, metrics={"d_loss_gap": math.nan, "fooling_rate": 0.5})
    trial.write_result(TrialResult(state="diverged", step=5, wall_time_s=1.0, last=record))
    assert json.loads(trial.result_path.read_text())["last"]["metrics"]["d_loss_gap"] is None
    result = trial.read_result()
    assert result is not None and result.last is not None
    assert result.last.metrics == {"fooling_rate": 0.5}


def test_an_old_result_without_the_newer_keys_still_reads(tmp_path: Path) -> None:
    """result.json of an older version: no fingerprints, flags, quality or wall time."""
    trial = TrialDir(tmp_path)
    old = {"state": "finished", "best": {"step": 10, "metrics": {"d_loss_gap": 0.3}}}
    trial.result_path.write_text(json.dumps(old))
    result = trial.read_result()
    assert result == TrialResult(
        state="finished",
        step=0,
        wall_time_s=0.0,
        best=CheckpointRecord(step=10, metrics={"d_loss_gap": 0.3}),
    )


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_corrupt_result_reads_as_none_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    trial = TrialDir(tmp_path)
    trial.result_path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        assert trial.read_result() is None
    assert str(trial.result_path) in caplog.text


def test_evaluations_skip_records_without_an_integer_step(tmp_path: Path) -> None:
    trial = TrialDir(tmp_path)
    lines = [{"step": 10, "d_loss": 0.5, "note": "x"}, {"step": "late"}, {"step": 20, "g": None}]
    trial.metrics_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert trial.read_evaluations() == [
        CheckpointRecord(step=10, metrics={"step": 10.0, "d_loss": 0.5}),
        CheckpointRecord(step=20, metrics={"step": 20.0}),
    ]


def test_checkpoint_kinds_are_the_literal() -> None:
    assert CHECKPOINT_KINDS == typing.get_args(CheckpointKind)
