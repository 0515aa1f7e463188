"""End-of-trial scoring: each checkpoint scored on held-out data, baselines, leaderboard, export."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

import gan_hpc.bundle.scoring as scoring_module
from gan_hpc.bundle.scoring import (
    COSINE_SAMPLES,
    QUALITY_KEY,
    score_baselines,
    score_checkpoint,
    score_trial_records,
    write_baselines,
)
from gan_hpc.config import ConvergenceConfig, QualityConfig, TrialConfig, is_quality_metric
from gan_hpc.convergence import D_ACC_HELDOUT, D_LOSS_GAP, FOOLING_RATE, selection_key
from gan_hpc.data.datasets import load_dataset
from gan_hpc.quality import (
    BASELINE_MARGINALS,
    BASELINE_REAL,
    COSINE_NOT_FOOLED,
    IMG_CLASS_COVERAGE,
    IMG_CONDITIONAL_ACCURACY,
    IMG_FD,
    IMG_PRECISION,
    IMG_RECALL,
    SIG_DETECTION_AUC,
    SIG_RESONANCE_ERROR,
    SIG_SPECTRAL_ERROR,
    SIG_SPECTRAL_ERROR_UNCONDITIONAL,
    TAB_COLUMN_PREFIX,
    TAB_DETECTION_AUC,
    TAB_TABULAR_SCORE,
    TAB_TREND_SIMILARITY,
    QualityReport,
)
from gan_hpc.quality_names import BASELINE_MEAN_CURVE, BASELINE_PIXELS, IMG_CLASSIFIER_ACCURACY
from gan_hpc.sweep.directory import BASELINES_FILE, TRIALS_DIR
from gan_hpc.sweep.export import export_trial
from gan_hpc.sweep.rank import BASELINE_PREFIX, sweep_leaderboard
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import CheckpointRecord
from tests.helpers import small_frf_config

NUM_ROWS = 800
TINY_MODEL = {
    "latent_dim": 8,
    "generator": {"depth": 1, "width": 16},
    "discriminator": {"depth": 1, "width": 16},
}
# Small samples keep every scoring at a fraction of a second.
SMALL_QUALITY = {"num_rows": 200, "num_dcr_rows": 100, "num_folds": 2, "use_cache": False}
TABULAR_HEADLINES = (TAB_TABULAR_SCORE, TAB_DETECTION_AUC, TAB_TREND_SIMILARITY, COSINE_NOT_FOOLED)


# ----------------------------------------------------------------------------------- fixtures


def write_table(path: Path) -> Path:
    """Two correlated numeric columns, a categorical one and a binary class that depends on x."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, NUM_ROWS)
    pd.DataFrame(
        {
            "x": np.round(x, 3),
            "y": np.round(2.0 * x + rng.normal(0.0, 0.3, NUM_ROWS), 3),
            "shop": rng.choice(["north", "south", "east"], NUM_ROWS),
            "bought": np.where(x + rng.normal(0.0, 0.5, NUM_ROWS) > 0, "yes", "no"),
        }
    ).to_csv(path, index=False)
    return path


def tabular_config(path: Path, **changes: Any) -> TrialConfig:
    """A tiny MLP GAN on the table: 60 steps, evaluated (and checkpointed) every 20."""
    document: dict[str, Any] = {
        # a quarter held out: 100 rows in the half that generators and baselines are scored on
        "data": {"format": "csv", "path": str(path), "test_fraction": 0.25, "use_cache": False},
        "model": TINY_MODEL,
        "train": {"batch_size": 32, "num_steps": 60, "eval_every_steps": 20},
        "convergence": {"num_eval_samples": 32},
        "quality": SMALL_QUALITY,
    }
    for block, values in changes.items():
        document[block] = {**document.get(block, {}), **values}
    return TrialConfig.from_dict(document, source="test")


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One scored tabular trial, trained once for the module (tests copy it before changing it)."""
    root = tmp_path_factory.mktemp("tabular")
    config = tabular_config(write_table(root / "shops.csv"))
    trial = root / "trial"
    train_trial(config, trial)
    result = json.loads((trial / "result.json").read_text())
    return {"config": config, "trial": trial, "result": result}


def quality_of(record: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in record["metrics"].items() if is_quality_metric(k)}


def same_values(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    """Equal metrics; one left out, None (strict JSON's NaN) and NaN all mean "no value"."""

    def present(metrics: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in metrics.items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        }

    left, right = present(left), present(right)
    return left.keys() == right.keys() and all(left[k] == pytest.approx(right[k]) for k in left)


# ------------------------------------------------------------------------------------ tabular


def test_best_and_last_records_carry_their_own_quality(tabular: dict[str, Any]) -> None:
    result, config, trial = tabular["result"], tabular["config"], tabular["trial"]
    best, last = result["best"], result["last"]
    assert result["state"] == "finished"
    assert best["step"] != last["step"], "this seed's best evaluation is not the last one"
    data = load_dataset(config.data)
    for record in (best, last):
        metrics = record["metrics"]
        for name in TABULAR_HEADLINES:
            assert name in metrics, name
        assert 0.0 <= metrics[TAB_TABULAR_SCORE] <= 1.0
        # the evaluation's own metrics are kept beside the quality ones
        assert {D_LOSS_GAP, D_ACC_HELDOUT, FOOLING_RATE} <= metrics.keys()
        quality = record[QUALITY_KEY]
        assert "error" not in quality
        sizes = quality["sample_sizes"]
        assert sizes["synthetic_rows"] == sizes["real_test_rows"] == 100
        assert sizes["cosine_rows"] == COSINE_SAMPLES
        assert quality["seconds"] >= 0 and isinstance(quality["notes"], list)
        # every figure is that checkpoint file's own: scoring the file again gives them back
        again = score_checkpoint(trial / record["checkpoint"], data, config)
        assert same_values(quality_of(record), again.metrics)
        assert again.sample_sizes == sizes
    assert quality_of(best) != quality_of(last)


def test_one_evaluation_gives_identical_best_and_last_quality(tmp_path: Path) -> None:
    config = tabular_config(
        write_table(tmp_path / "shops.csv"), train={"num_steps": 20, "eval_every_steps": 20}
    )
    train_trial(config, tmp_path / "trial")
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    best, last = result["best"], result["last"]
    assert best["step"] == last["step"] == 20
    assert best["checkpoint"] != last["checkpoint"]  # best.pt beside step-00000020.pt
    assert TAB_TABULAR_SCORE in best["metrics"]
    assert same_values(quality_of(best), quality_of(last))
    assert best[QUALITY_KEY]["sample_sizes"] == last[QUALITY_KEY]["sample_sizes"]


def test_baselines_bracket_the_generator(tabular: dict[str, Any]) -> None:
    config = tabular["config"]
    reports = score_baselines(load_dataset(config.data), config)
    assert set(reports) == {BASELINE_REAL, BASELINE_MARGINALS}
    real, marginals = reports[BASELINE_REAL], reports[BASELINE_MARGINALS]
    # independent marginals lose the x-y correlation that a fresh real sample keeps
    assert real.metrics[TAB_TABULAR_SCORE] > marginals.metrics[TAB_TABULAR_SCORE]
    assert real.metrics[TAB_TREND_SIMILARITY] > marginals.metrics[TAB_TREND_SIMILARITY]
    best = tabular["result"]["best"]
    assert real.metrics[TAB_TABULAR_SCORE] >= best["metrics"][TAB_TABULAR_SCORE]
    # the generator is scored on the same held-out half, with as many rows, as the baselines
    sizes = best[QUALITY_KEY]["sample_sizes"]
    for name in ("real_test_rows", "synthetic_rows", "real_train_rows"):
        assert sizes[name] == real.sample_sizes[name], name


def test_write_baselines_is_kept_until_the_settings_change(
    tabular: dict[str, Any], tmp_path: Path
) -> None:
    config = tabular["config"]
    path = tmp_path / BASELINES_FILE
    written = write_baselines(path, config)
    assert written is not None and set(written) == {"key", "reports", "seconds"}
    assert set(written["reports"]) == {BASELINE_REAL, BASELINE_MARGINALS}
    assert json.loads(path.read_text()) == json.loads(json.dumps(written))
    text, mtime = path.read_text(), path.stat().st_mtime_ns

    messages: list[str] = []
    assert write_baselines(path, config, emit=messages.append) == json.loads(text)
    assert messages == [] and path.read_text() == text and path.stat().st_mtime_ns == mtime

    changed = dataclasses.replace(config, quality=dataclasses.replace(config.quality, seed=1))
    rewritten = write_baselines(path, changed, emit=messages.append)
    assert rewritten is not None and len(messages) == 1
    assert json.loads(path.read_text())["key"]["quality"]["seed"] == 1
    assert rewritten["key"] != written["key"]


def test_write_baselines_skips_unscored_sweeps(tabular: dict[str, Any], tmp_path: Path) -> None:
    off = dataclasses.replace(
        tabular["config"], quality=QualityConfig(use_at_trial_end=False, use_cache=False)
    )
    assert write_baselines(tmp_path / "tabular.json", off) is None
    assert list(tmp_path.iterdir()) == []


def test_leaderboard_shows_quality_columns_and_baseline_rows(
    tabular: dict[str, Any], tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    for name in ("trial_0000", "trial_0001"):
        shutil.copytree(tabular["trial"], sweep / TRIALS_DIR / name)
    write_baselines(sweep / BASELINES_FILE, tabular["config"])
    baselines = json.loads((sweep / BASELINES_FILE).read_text())["reports"]
    ranking = ConvergenceConfig(
        score=TAB_TABULAR_SCORE, score_mode="max", checkpoint_score=D_LOSS_GAP
    )
    board = sweep_leaderboard(sweep, ranking)

    # the ranked trials first, then the unranked baseline rows
    assert list(board["trial_id"][:2]) == ["trial_0000", "trial_0001"]
    assert set(board["trial_id"][2:]) == {
        f"{BASELINE_PREFIX}{BASELINE_REAL}",
        f"{BASELINE_PREFIX}{BASELINE_MARGINALS}",
    }
    assert list(board["rank"][:2]) == [1, 2] and board["rank"][2:].isna().all()
    assert list(board["state"][2:]) == ["baseline", "baseline"]
    best = tabular["result"]["best"]
    assert board["score"][0] == pytest.approx(best["metrics"][TAB_TABULAR_SCORE])
    assert board[TAB_DETECTION_AUC][0] == pytest.approx(best["metrics"][TAB_DETECTION_AUC])
    for name in (BASELINE_REAL, BASELINE_MARGINALS):
        row = board.loc[board["trial_id"] == f"{BASELINE_PREFIX}{name}"].iloc[0]
        expected = baselines[name]["metrics"][TAB_TABULAR_SCORE]
        assert row["score"] == pytest.approx(expected)
        assert row[TAB_TABULAR_SCORE] == pytest.approx(expected)
    assert TAB_TREND_SIMILARITY in board.columns
    assert not any(str(c).startswith(TAB_COLUMN_PREFIX) for c in board.columns)


# ------------------------------------------------------------------------------ other kinds


def test_signal_trial_is_scored_in_decibels(tmp_path: Path) -> None:
    config = small_frf_config()
    config = dataclasses.replace(config, quality=QualityConfig(num_signal_samples=50))
    train_trial(config, tmp_path / "trial")
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    for which in ("best", "last"):
        record = result[which]
        names = (
            SIG_SPECTRAL_ERROR,
            SIG_SPECTRAL_ERROR_UNCONDITIONAL,
            SIG_RESONANCE_ERROR,
            SIG_DETECTION_AUC,
        )
        for name in names:
            assert name in record["metrics"], (which, name)
        assert record["metrics"][SIG_SPECTRAL_ERROR] >= 0
        assert record[QUALITY_KEY]["sample_sizes"]["signal_pairs"] > 0
        # the cosine analysis is the tabular seed's: signals do not get it
        assert COSINE_NOT_FOOLED not in record["metrics"]


def test_signal_baselines_are_written_ceiling_below_floor(tmp_path: Path) -> None:
    config = dataclasses.replace(small_frf_config(), quality=QualityConfig(num_signal_samples=50))
    written = write_baselines(tmp_path / BASELINES_FILE, config)
    assert written is not None and written["seconds"] >= 0
    reports = {name: QualityReport.from_dict(r) for name, r in written["reports"].items()}
    assert set(reports) == {BASELINE_REAL, BASELINE_MEAN_CURVE}
    real, mean = reports[BASELINE_REAL], reports[BASELINE_MEAN_CURVE]
    # the simulator is noise-free and has no replicates: the ceiling is the curves, 0 dB
    assert real.metrics[SIG_SPECTRAL_ERROR] == 0.0 and real.metrics[SIG_RESONANCE_ERROR] == 0.0
    assert real.sample_sizes["replicate_curves"] == 0 and "no replicate" in real.notes[0]
    assert mean.metrics[SIG_SPECTRAL_ERROR] > 1.0  # dB
    assert mean.metrics[SIG_RESONANCE_ERROR] > real.metrics[SIG_RESONANCE_ERROR]
    data = load_dataset(config.data)
    for report in (real, mean):  # every pair a generator is scored on
        assert report.sample_sizes["signal_pairs"] == len(data.test)
    assert mean.sample_sizes["mean_curve_train_curves"] == len(data.train)


def write_images(path: Path) -> Path:
    """Three 8x8 classes: left half lit, top half lit, a centre square lit; with pixel noise."""
    rng = np.random.default_rng(0)
    shapes = np.zeros((3, 8, 8))
    shapes[0, :, :4] = shapes[1, :4, :] = shapes[2, 2:6, 2:6] = 1.0
    labels = rng.integers(0, 3, 300)
    images = shapes[labels] * 200 + rng.integers(0, 40, (300, 8, 8))
    np.savez(path, images=images.astype(np.uint8), labels=labels)
    return path


def test_image_trial_is_scored_with_its_sample_sizes(tmp_path: Path) -> None:
    images = write_images(tmp_path / "shapes.npz")
    document = {
        "data": {"format": "npz", "path": str(images), "conditional": True},
        "model": {**TINY_MODEL, "family": "dcgan", "generator": {"depth": 2, "width": 8}},
        "train": {"batch_size": 16, "num_steps": 20, "eval_every_steps": 10},
        "convergence": {"num_eval_samples": 32},
        "quality": {
            "num_image_samples": 100,
            "num_classifier_steps": 20,
            "num_classifier_images": 200,
            "cache_dir": str(tmp_path / "cache"),
        },
    }
    train_trial(TrialConfig.from_dict(document, source="test"), tmp_path / "trial")
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    for which in ("best", "last"):
        record = result[which]
        for name in (IMG_FD, IMG_PRECISION, IMG_RECALL, IMG_CLASS_COVERAGE):
            assert name in record["metrics"], (which, name)
        assert record["metrics"][IMG_FD] >= 0
        # a conditional generator is asked for classes: the classifier checks it made them
        assert IMG_CONDITIONAL_ACCURACY in record["metrics"]
        sizes = record[QUALITY_KEY]["sample_sizes"]
        assert sizes["num_classes"] == 3
        assert 0 < sizes["image_samples"] <= 100
        assert sizes["classifier_train_images"] == 200


def image_baselines_config(tmp_path: Path, *, is_conditional: bool) -> TrialConfig:
    """The shapes images with a quality block small enough to score baselines in seconds."""
    images = write_images(tmp_path / "shapes.npz")
    document = {
        "data": {"format": "npz", "path": str(images), "conditional": is_conditional},
        "model": {**TINY_MODEL, "family": "dcgan"},
        "quality": {
            "num_image_samples": 100,
            "num_classifier_steps": 100,
            "num_classifier_images": 200,
            "cache_dir": str(tmp_path / "cache"),
        },
    }
    return TrialConfig.from_dict(document, source="test")


def test_image_baselines_are_written_ceiling_above_floor(tmp_path: Path) -> None:
    config = image_baselines_config(tmp_path, is_conditional=True)
    written = write_baselines(tmp_path / BASELINES_FILE, config)
    assert written is not None
    reports = {name: QualityReport.from_dict(r) for name, r in written["reports"].items()}
    assert set(reports) == {BASELINE_REAL, BASELINE_PIXELS}
    real, pixels = reports[BASELINE_REAL], reports[BASELINE_PIXELS]
    assert real.metrics[IMG_FD] < pixels.metrics[IMG_FD] / 3
    assert real.metrics[IMG_PRECISION] > pixels.metrics[IMG_PRECISION]
    # conditional data: each baseline image is asked for a class; pixels ignore it
    assert real.metrics[IMG_CONDITIONAL_ACCURACY] > 0.9
    assert pixels.metrics[IMG_CONDITIONAL_ACCURACY] < 0.7
    data = load_dataset(config.data)
    assert real.sample_sizes["baseline_images"] == len(data.val)
    assert pixels.sample_sizes["baseline_images"] == len(data.test)
    for report in (real, pixels):
        assert report.sample_sizes["image_samples"] == min(len(data.val), len(data.test))


def test_unconditional_images_with_labels_are_scored_in_a_class_feature_space(
    tmp_path: Path,
) -> None:
    """Labels in the file train the feature classifier even when G is not conditioned on them.

    The self-supervised pretext features are coarse: on MNIST they put independent pixels
    (FD 19.8) ahead of a DCGAN that draws digits (21.2). Class features separate them.
    """
    config = image_baselines_config(tmp_path, is_conditional=False)
    fresh, cached = load_dataset(config.data), load_dataset(config.data)
    for data in (fresh, cached):  # the labels survive the data cache
        assert data.train.cond is None and data.train.labels is not None
    assert np.array_equal(fresh.test.labels, cached.test.labels)
    written = write_baselines(tmp_path / BASELINES_FILE, config)
    assert written is not None
    reports = {name: QualityReport.from_dict(r) for name, r in written["reports"].items()}
    for report in reports.values():
        assert not any("pretext" in note for note in report.notes), report.notes
        assert report.metrics[IMG_CLASSIFIER_ACCURACY] > 0.9  # the classes were learned
        assert IMG_CONDITIONAL_ACCURACY not in report.metrics  # nothing asked G for a class
    real, pixels = reports[BASELINE_REAL], reports[BASELINE_PIXELS]
    assert real.metrics[IMG_FD] < pixels.metrics[IMG_FD] / 3


# --------------------------------------------------------------------- failures and opt-out


@pytest.fixture
def unscored_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A tabular trial trained with ``quality.use_at_trial_end`` off (scoring must not run)."""

    def no_scoring(*args: object, **kwargs: object) -> None:
        raise AssertionError("scored although quality.use_at_trial_end is off")

    monkeypatch.setattr(scoring_module, "score_trial_records", no_scoring)  # train imports it late
    config = tabular_config(
        write_table(tmp_path / "shops.csv"), quality={"use_at_trial_end": False}
    )
    train_trial(config, tmp_path / "trial")
    monkeypatch.undo()
    result = json.loads((tmp_path / "trial" / "result.json").read_text())
    return {"config": config, "trial": tmp_path / "trial", "result": result}


def test_quality_off_leaves_records_unscored(unscored_trial: dict[str, Any]) -> None:
    result = unscored_trial["result"]
    assert result["state"] == "finished"
    for which in ("best", "last"):
        record = result[which]
        assert QUALITY_KEY not in record
        assert quality_of(record) == {} and D_LOSS_GAP in record["metrics"]


def test_unreadable_checkpoints_get_a_reason_and_keep_their_metrics(
    unscored_trial: dict[str, Any],
) -> None:
    trial, config = unscored_trial["trial"], unscored_trial["config"]
    records = {k: unscored_trial["result"][k] for k in ("best", "last")}
    best_file = trial / records["best"]["checkpoint"]
    best_file.write_bytes(best_file.read_bytes()[:100])  # a copy cut short by a crash
    missing = {**records["last"], "checkpoint": "checkpoints/step-99999999.pt"}
    scored = score_trial_records(
        trial, {**records, "missing": missing, "none": None}, load_dataset(config.data), config
    )

    assert scored["none"] is None
    for which, original, reason in (
        ("best", records["best"], "truncated or corrupt"),
        ("missing", missing, "checkpoint not found"),
    ):
        record = scored[which]
        assert record is not None
        error = record[QUALITY_KEY]["error"]
        assert reason in error and str(trial / original["checkpoint"]) in error
        assert "\n" not in error
        # nothing already trained is lost: the record is the original plus the reason
        assert {k: v for k, v in record.items() if k != QUALITY_KEY} == original
    last = scored["last"]
    assert last is not None and TAB_TABULAR_SCORE in last["metrics"]
    assert "error" not in last[QUALITY_KEY]
    trained = records["last"]["metrics"]
    assert {k: last["metrics"][k] for k in trained} == trained


# ------------------------------------------------------------------------------------ export


@pytest.mark.parametrize("which", ["best", "last"])
def test_export_carries_the_checkpoints_quality(
    tabular: dict[str, Any], tmp_path: Path, which: Literal["best", "last"]
) -> None:
    record = tabular["result"][which]
    bundle = export_trial(tabular["trial"], tmp_path / "bundle", checkpoint=which)
    info = json.loads((bundle / "metrics.json").read_text())
    assert info["step"] == record["step"]
    assert same_values(quality_of(info), quality_of(record))
    assert info[QUALITY_KEY]["sample_sizes"] == record[QUALITY_KEY]["sample_sizes"]


def test_export_scores_a_checkpoint_without_result_json(
    tabular: dict[str, Any], tmp_path: Path
) -> None:
    trial = tmp_path / "trial"
    shutil.copytree(tabular["trial"], trial)
    (trial / "result.json").unlink()  # e.g. the trial was stopped before it ended
    bundle = export_trial(trial, tmp_path / "bundle", checkpoint="best")
    info = json.loads((bundle / "metrics.json").read_text())
    record = tabular["result"]["best"]
    assert same_values(quality_of(info), quality_of(record))
    assert info[QUALITY_KEY]["sample_sizes"] == record[QUALITY_KEY]["sample_sizes"]


# ------------------------------------------------------------ quality at every evaluation


def test_quality_at_evaluations_picks_the_checkpoint_without_changing_training(
    tmp_path: Path,
) -> None:
    path = write_table(tmp_path / "shops.csv")
    plain_run = tabular_config(path, model={"use_ema": False})  # scores the live generator
    scored_run = dataclasses.replace(
        plain_run,
        convergence=ConvergenceConfig(
            num_eval_samples=32,
            score=TAB_TABULAR_SCORE,
            score_mode="max",
            checkpoint_score=TAB_TABULAR_SCORE,
            checkpoint_score_mode="max",
            use_quality_at_evaluations=True,
        ),
    )
    train_trial(plain_run, tmp_path / "plain")
    train_trial(scored_run, tmp_path / "scored")
    plain = [
        json.loads(line) for line in (tmp_path / "plain/metrics.jsonl").read_text().splitlines()
    ]
    scored = [
        json.loads(line) for line in (tmp_path / "scored/metrics.jsonl").read_text().splitlines()
    ]
    # scoring mid-run leaves the trajectory alone: same losses, bit for bit
    assert [(r["d_loss"], r["g_loss"]) for r in scored] == [
        (r["d_loss"], r["g_loss"]) for r in plain
    ]
    assert all(TAB_TABULAR_SCORE in r for r in scored)
    assert not any(k.startswith(TAB_COLUMN_PREFIX) for r in scored for k in r)
    assert not any(is_quality_metric(k) for r in plain for k in r)
    # the best checkpoint is the evaluation with the best validation quality (gate first)
    chosen = max(scored, key=lambda r: selection_key(r, scored_run.convergence))
    result = json.loads((tmp_path / "scored/result.json").read_text())
    assert result["best"]["step"] == chosen["step"]
    # the reported figure is the test split's, not the validation score that picked it
    assert result["best"]["metrics"][TAB_TABULAR_SCORE] != chosen[TAB_TABULAR_SCORE]
    # ...which the record keeps, so a sweep can rank on it without seeing the test split
    best = CheckpointRecord.from_dict(result["best"])
    assert best.validation is not None
    assert best.validation[TAB_TABULAR_SCORE] == pytest.approx(chosen[TAB_TABULAR_SCORE])
    on_validation = dataclasses.replace(scored_run.convergence, score_split="validation")
    assert best.score(on_validation) == pytest.approx(chosen[TAB_TABULAR_SCORE])
    assert best.score(scored_run.convergence) == result["best"]["metrics"][TAB_TABULAR_SCORE]
    assert not any(
        is_quality_metric(k)
        for k in json.loads((tmp_path / "plain/result.json").read_text())["best"].get(
            "validation", {}
        )
    )
