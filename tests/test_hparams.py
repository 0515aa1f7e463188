"""TensorBoard HParams: each ended trial writes its searched parameters and final metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata, plugin_data_pb2

from gan_hpc.sweep.directory import TRIALS_DIR, write_spec
from gan_hpc.sweep.spec import sweep_spec_from_dict, trial_config_for
from gan_hpc.trial.hparams import HPARAMS_RUN, MAIN_KNOBS, searched_space, write_trial_hparams
from gan_hpc.trial.train import train_trial
from tests.test_export import TINY_MODEL, write_people


def hparams_of(run: Path) -> tuple[dict[str, object], list[str], dict[str, float]]:
    """(session hparams, experiment metric tags, final scalars) read back from the event file."""
    events = EventAccumulator(str(run))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    plugin = {}
    for tag, raw in content.items():
        data = plugin_data_pb2.HParamsPluginData.FromString(raw)
        plugin[tag] = data
    start = plugin[metadata.SESSION_START_INFO_TAG].session_start_info
    values = {
        key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in start.hparams.items()
    }
    experiment = plugin[metadata.EXPERIMENT_TAG].experiment
    tags = [info.name.tag for info in experiment.metric_infos]
    scalars = {tag: events.Scalars(tag)[-1].value for tag in events.Tags()["scalars"]}
    return values, tags, scalars


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hparams")
    people = write_people(root / "people.csv")
    document = {
        "name": "people",
        "base": {
            "data": {"format": "csv", "path": str(people), "use_cache": False},
            "model": TINY_MODEL,
            "train": {"batch_size": 16, "num_steps": 10, "eval_every_steps": 5},
        },
        "search": {
            "loss.name": {"choice": ["bce_logits", "hinge"]},
            "optim.generator.lr": {"loguniform": [1e-4, 1e-3]},
        },
        "tune": {"grace_period_steps": 5},
        "ranking": {"num_eval_samples": 32},
    }
    spec = sweep_spec_from_dict(document, source="people.yaml")
    write_spec(root / "people", spec)
    point = {"loss.name": "hinge", "optim.generator.lr": 3e-4}
    train_trial(trial_config_for(spec, point), root / "people" / TRIALS_DIR / "trial_0000")
    return root / "people"


def test_an_ended_trial_writes_its_hparams(sweep: Path) -> None:
    run = sweep / TRIALS_DIR / "trial_0000" / "tensorboard" / HPARAMS_RUN
    values, tags, scalars = hparams_of(run)
    assert values == {"loss.name": "hinge", "optim.generator.lr": pytest.approx(3e-4)}
    assert "final/fooling_rate" in tags and "final/quality/detection_auc" in tags
    assert set(tags) <= set(scalars)
    assert not list(run.parent.glob(".hparams.*"))  # no staging folder left behind


def test_rewriting_replaces_the_run_and_a_lone_trial_uses_the_main_knobs(
    sweep: Path, tmp_path: Path
) -> None:
    assert searched_space(sweep / TRIALS_DIR / "trial_0000")[1] == {
        "loss.name": ["bce_logits", "hinge"]
    }
    lone = tmp_path / "run"
    shutil.copytree(sweep / TRIALS_DIR / "trial_0000", lone)
    assert write_trial_hparams(lone) == lone / "tensorboard" / HPARAMS_RUN
    assert len(list((lone / "tensorboard" / HPARAMS_RUN).iterdir())) == 1
    values, _, _ = hparams_of(lone / "tensorboard" / HPARAMS_RUN)
    assert set(values) == set(MAIN_KNOBS) and values["loss.name"] == "hinge"


def test_a_trial_without_result_writes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert write_trial_hparams(tmp_path) is None
    assert "no TensorBoard HParams written" in caplog.text
