"""The driver's bookkeeping without a Ray runtime: trial budget, adoption, study history, ASHA."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from gan_hpc import convergence as names
from gan_hpc.errors import LaunchError
from gan_hpc.launchers.base import EXIT_CANCELLED, EXIT_LOST, read_launch, update_launch
from gan_hpc.sweep.directory import trial_dirs
from gan_hpc.sweep.optuna_search import STUDY_FILE, SweepSearcher, has_ended
from gan_hpc.sweep.spec import SweepSpec, sweep_spec_from_dict
from gan_hpc.sweep.tune import SweepASHA
from gan_hpc.sweep.watcher import STOP_FILE, TRIAL_KEY, after_job_end
from gan_hpc.trial_dir import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, EXIT_REQUEUE, TrialDir

METRIC = "conditional_rmse"


def _spec(num_samples: int = 3, **tune: Any) -> SweepSpec:
    return sweep_spec_from_dict(
        {
            "name": "toy",
            "seed": 0,
            "base": {
                "data": {"format": "synthetic_frf", "conditional": True},
                "train": {"num_steps": 80, "eval_every_steps": 10},
            },
            "search": {"optim.generator.lr": {"loguniform": [1.0e-4, 1.0e-3]}},
            "tune": {
                "metric": METRIC,
                "num_samples": num_samples,
                "grace_period_steps": 20,
                **tune,
            },
            "ranking": {"score": METRIC},
        }
    )


def _report(trial: TrialDir, steps_values: list[tuple[int, float]], state: str | None) -> None:
    with trial.metrics_path.open("a") as handle:
        for step, value in steps_values:
            handle.write(json.dumps({names.STEP: step, METRIC: value}) + "\n")
    if state is not None:
        trial.update_status(state=state)  # type: ignore[arg-type]


def _study(sweep_dir: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(sweep_dir / STUDY_FILE)))
    return optuna.load_study(study_name="toy", storage=storage)


def test_the_budget_counts_trial_directories_and_a_restart_adopts_the_unfinished(
    tmp_path: Path,
) -> None:
    spec = _spec(num_samples=3)
    first = SweepSearcher(spec, str(tmp_path))
    a, b = first.suggest("ray-a"), first.suggest("ray-b")
    assert a is not None and b is not None
    assert [a[TRIAL_KEY], b[TRIAL_KEY]] == ["trial_0000", "trial_0001"]
    trial = TrialDir(tmp_path / "trials" / "trial_0000")
    assert trial.config_path.exists() and "optim.generator.lr" in a  # made before Tune runs it

    # the driver dies; trial_0001 ended meanwhile, trial_0000 did not
    _report(TrialDir(tmp_path / "trials" / "trial_0001"), [(10, 0.5), (80, 0.25)], "finished")
    second = SweepSearcher(spec, str(tmp_path))
    adopted = second.suggest("ray-c")
    assert adopted == a | {TRIAL_KEY: "trial_0000"}  # the exact config, the same directory
    new = second.suggest("ray-d")
    assert new is not None and new[TRIAL_KEY] == "trial_0002"
    assert second.suggest("ray-e") == Searcher.FINISHED
    assert len(trial_dirs(tmp_path)) == 3


def test_a_trial_that_ended_while_no_driver_watched_is_told_with_its_last_value(
    tmp_path: Path,
) -> None:
    spec = _spec(num_samples=2)
    searcher = SweepSearcher(spec, str(tmp_path))
    searcher.suggest("ray-a")
    searcher.suggest("ray-b")
    finished = TrialDir(tmp_path / "trials" / "trial_0000")
    failed = TrialDir(tmp_path / "trials" / "trial_0001")
    _report(finished, [(10, 0.5), (20, 0.4), (80, 0.125)], "finished")
    _report(failed, [(10, 0.5)], "failed")

    SweepSearcher(spec, str(tmp_path)).reconcile()  # a restarted driver

    trials = {t.user_attrs["trial_id"]: t for t in _study(tmp_path).trials}
    assert trials["trial_0000"].state == optuna.trial.TrialState.COMPLETE
    assert trials["trial_0000"].value == 0.125
    assert trials["trial_0001"].state == optuna.trial.TrialState.FAIL


def test_an_asked_point_without_a_directory_is_failed_and_not_counted(tmp_path: Path) -> None:
    spec = _spec(num_samples=2, initial_points=[{"optim.generator.lr": 5.0e-4}])
    searcher = SweepSearcher(spec, str(tmp_path))
    searcher.study().ask()  # the driver dies between asking Optuna and creating the directory
    restarted = SweepSearcher(spec, str(tmp_path))
    restarted.reconcile()
    study = _study(tmp_path)
    assert [t.state for t in study.trials][0] == optuna.trial.TrialState.FAIL
    first = restarted.suggest("ray-a")
    # the initial point it carried is asked again, and the budget is untouched
    assert first is not None and first["optim.generator.lr"] == 5.0e-4
    assert restarted.suggest("ray-b") is not None
    assert restarted.suggest("ray-c") == Searcher.FINISHED


class _Trial:
    def __init__(self, name: str) -> None:
        self.trial_id = f"ray-{name}"
        self.config = {TRIAL_KEY: name}


def test_asha_decides_with_the_reports_made_before_a_restart(tmp_path: Path) -> None:
    spec = _spec(num_samples=4)
    searcher = SweepSearcher(spec, str(tmp_path))
    for tid in "abcd":
        searcher.suggest(f"ray-{tid}")
    # three trials reported at the first rung (step 20) before the driver died
    for name, value in [("trial_0000", 0.1), ("trial_0001", 0.2), ("trial_0002", 0.3)]:
        _report(TrialDir(tmp_path / "trials" / name), [(10, 0.9), (20, value)], None)
    asha = SweepASHA(
        sweep_dir=str(tmp_path),
        time_attr=names.STEP,
        metric=METRIC,
        mode="min",
        max_t=80,
        grace_period=20,
        reduction_factor=2,
    )
    late = _Trial("trial_0003")
    asha.on_trial_add(None, late)  # type: ignore[arg-type]
    assert asha.load_history() == 0  # loaded once, before the first decision
    rung = next(recorded for milestone, recorded in asha._brackets[0]._rungs if milestone == 20)
    assert set(rung) == {"trial_0000", "trial_0001", "trial_0002"}
    decision = asha.on_trial_result(None, late, {names.STEP: 20, METRIC: 0.5})  # type: ignore[arg-type]
    assert decision == TrialScheduler.STOP
    trial = TrialDir(tmp_path / "trials" / "trial_0003")
    assert (trial.path / STOP_FILE).exists() and has_ended(trial)
    # a trial at max_t ends by itself (after scoring), never stopped by the scheduler
    done = _Trial("trial_0000")
    asha.on_trial_add(None, done)  # type: ignore[arg-type]
    assert asha.on_trial_result(None, done, {names.STEP: 80, METRIC: 0.9}) == "CONTINUE"  # type: ignore[arg-type]


def _trial(tmp_path: Path) -> TrialDir:
    trial = TrialDir(tmp_path / "trials" / "trial_0000")
    trial.path.mkdir(parents=True)
    update_launch(trial, launch=1, job_id="11")
    return trial


@pytest.mark.parametrize("code", [EXIT_FAILED, EXIT_REQUEUE, EXIT_LOST, -9])
def test_a_crash_a_checkpointed_stop_or_a_lost_job_spends_the_one_retry(
    tmp_path: Path, code: int
) -> None:
    trial = _trial(tmp_path)
    assert after_job_end(trial, code, job_id="11", summary=str, max_retries=1) is None
    assert after_job_end(trial, code, job_id="11", summary=str, max_retries=1) is None  # again
    assert read_launch(trial).retries == 1 and trial.read_status().restart_count == 1
    with pytest.raises(LaunchError, match="failed"):
        after_job_end(trial, code, job_id="12", summary=lambda: "boom", max_retries=1)
    assert trial.read_status().state == "failed"


def test_bad_input_is_never_retried(tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    with pytest.raises(LaunchError, match="exit 2"):
        after_job_end(trial, EXIT_BAD_INPUT, job_id="11", summary=str, max_retries=3)
    assert read_launch(trial).retries == 0


def test_a_users_cancel_ends_the_trial_but_the_drivers_own_cancel_does_not(
    tmp_path: Path,
) -> None:
    trial = _trial(tmp_path)
    update_launch(trial, cancelled_job="11")  # a driver cancelled job 11 as it shut down
    assert after_job_end(trial, EXIT_CANCELLED, job_id="11", summary=str, max_retries=0) is None
    assert after_job_end(trial, EXIT_CANCELLED, job_id="12", summary=str, max_retries=0) == (
        "cancelled"
    )
    assert trial.read_status().state == "cancelled" and has_ended(trial)


def test_a_scheduler_stop_and_a_normal_end(tmp_path: Path) -> None:
    trial = _trial(tmp_path)
    trial.update_status(state="finished")
    assert after_job_end(trial, EXIT_OK, job_id="11", summary=str, max_retries=0) == "finished"
    other = TrialDir(tmp_path / "trials" / "trial_0001")
    other.path.mkdir()
    (other.path / STOP_FILE).write_text("{}")
    assert after_job_end(other, EXIT_CANCELLED, job_id="3", summary=str, max_retries=0) == (
        "stopped"
    )
