"""The trial directory's status file: a bad one is a one-line error, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gan_hpc.cli import main
from gan_hpc.errors import GanHpcError
from gan_hpc.trial_dir import TrialDir, TrialStatus
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
