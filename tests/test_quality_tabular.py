"""Validity of the tabular quality metrics: known-good, known-bad and known-shifted tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import gan_hpc.quality.tabular as tabular
from gan_hpc import convergence
from gan_hpc.config_validation import config_from_dict
from gan_hpc.errors import DataError, SpecError
from gan_hpc.quality import (
    BASELINE_MARGINALS,
    BASELINE_REAL,
    COSINE_FOOLED,
    COSINE_NOT_FOOLED,
    COSINE_REAL,
    METRIC_MODES,
    QUALITY_METRICS,
    TAB_COLUMN_PREFIX,
    TAB_COLUMN_SIMILARITY,
    TAB_DCR_RATIO,
    TAB_DETECTION_AUC,
    TAB_EXACT_COPY_RATE,
    TAB_ML_EFFICACY_RATIO,
    TAB_PRIVACY_OK,
    TAB_TABULAR_SCORE,
    TAB_TREND_SIMILARITY,
    TAB_TRTR,
    TAB_TSTR,
    ImageInputs,
    QualityConfig,
    QualityReport,
    TabularInputs,
    cosine_distance_report,
    cosine_report_from_frames,
    encode_for_cosine,
    evaluate_quality,
    metric_mode,
    split_holdout,
    tabular_baselines,
)

COLORS = ["red", "green", "blue"]
SIZES = ["small", "medium", "large"]
CONFIG = QualityConfig(seed=0)


def make_table(num_rows: int, seed: int) -> pd.DataFrame:
    """Correlated numerics, categoricals that depend on them, and a target that depends on both."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=num_rows)
    x2 = 0.8 * x1 + 0.6 * rng.normal(size=num_rows)
    age = np.round(40 + 8 * x1 + 5 * rng.normal(size=num_rows))
    color = np.where(
        x1 + 0.5 * rng.normal(size=num_rows) > 0, "red", rng.choice(COLORS[1:], num_rows)
    )
    size = np.where(x2 > 0.5, "large", np.where(x2 > -0.5, "medium", "small"))
    target = np.where(x1 + (color == "red") + 0.5 * rng.normal(size=num_rows) > 0.8, "yes", "no")
    return pd.DataFrame(
        {
            "x1": x1,
            "x2": x2,
            "age": age,
            "color": pd.Categorical(color, categories=COLORS),
            "size": pd.Categorical(size, categories=SIZES),
            "target": pd.Categorical(target, categories=["no", "yes"]),
        }
    )


def shuffle_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Permute every column on its own: marginals intact, dependencies broken."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame})


def noise_table(num_rows: int, seed: int) -> pd.DataFrame:
    """Uniform noise over wide ranges and uniform categories: knows nothing about the data."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.uniform(-6, 6, num_rows),
            "x2": rng.uniform(-6, 6, num_rows),
            "age": np.round(rng.uniform(0, 100, num_rows)),
            "color": pd.Categorical(rng.choice(COLORS, num_rows), categories=COLORS),
            "size": pd.Categorical(rng.choice(SIZES, num_rows), categories=SIZES),
            "target": pd.Categorical(rng.choice(["no", "yes"], num_rows), categories=["no", "yes"]),
        }
    )


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return {"train": make_table(2000, 0), "test": make_table(1000, 1), "other": make_table(1000, 2)}


def score(
    tables: dict[str, pd.DataFrame], synthetic: pd.DataFrame, **config: object
) -> QualityReport:
    inputs = TabularInputs(
        real_train=tables["train"], real_test=tables["test"], synthetic=synthetic
    )
    return evaluate_quality("tabular", inputs, config=QualityConfig(**config))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reports(tables: dict[str, pd.DataFrame]) -> dict[str, QualityReport]:
    memorised = tables["train"].sample(n=1000, random_state=3).reset_index(drop=True)
    return {
        "real": score(tables, tables["other"]),
        "shuffled": score(tables, shuffle_columns(tables["other"], 4)),
        "noise": score(tables, noise_table(1000, 5)),
        "memorised": score(tables, memorised),
        **tabular_baselines(tables["train"], tables["test"], CONFIG),
    }


def test_a_disjoint_real_split_scores_near_the_ceiling(reports: dict[str, QualityReport]) -> None:
    metrics = reports["real"].metrics
    assert abs(metrics[TAB_DETECTION_AUC] - 0.5) < 0.08
    assert metrics[TAB_COLUMN_SIMILARITY] > 0.93
    assert metrics[TAB_TREND_SIMILARITY] > 0.9
    assert metrics[TAB_ML_EFFICACY_RATIO] > 0.9
    assert metrics[TAB_EXACT_COPY_RATE] == 0.0
    assert metrics[TAB_PRIVACY_OK] == 1.0
    assert metrics[TAB_TABULAR_SCORE] > 0.9
    assert reports["real"].sample_sizes["real_test_rows"] == 1000
    assert reports["real"].sample_sizes["detection_rows_per_side"] == 1000


def test_shuffled_columns_break_trends_detection_and_efficacy_but_not_marginals(
    reports: dict[str, QualityReport],
) -> None:
    real, shuffled = reports["real"].metrics, reports["shuffled"].metrics
    assert abs(shuffled[TAB_COLUMN_SIMILARITY] - real[TAB_COLUMN_SIMILARITY]) < 0.01
    assert shuffled[TAB_TREND_SIMILARITY] < real[TAB_TREND_SIMILARITY] - 0.15
    assert shuffled[TAB_DETECTION_AUC] > 0.85
    assert shuffled[TAB_TSTR] < real[TAB_TSTR] - 0.2
    assert shuffled[TAB_TABULAR_SCORE] < real[TAB_TABULAR_SCORE] - 0.2


def test_noise_scores_near_the_floor(reports: dict[str, QualityReport]) -> None:
    noise, real = reports["noise"].metrics, reports["real"].metrics
    floor = reports[BASELINE_MARGINALS].metrics
    assert noise[TAB_DETECTION_AUC] > 0.95
    assert noise[TAB_COLUMN_SIMILARITY] < real[TAB_COLUMN_SIMILARITY] - 0.1
    assert noise[TAB_TREND_SIMILARITY] < real[TAB_TREND_SIMILARITY] - 0.2
    assert noise[TAB_TSTR] < 0.6  # macro F1 of a guess on a binary target
    assert noise[TAB_TABULAR_SCORE] < floor[TAB_TABULAR_SCORE] + 0.05


def test_baselines_bracket_the_scale(reports: dict[str, QualityReport]) -> None:
    ceiling, floor = reports[BASELINE_REAL].metrics, reports[BASELINE_MARGINALS].metrics
    assert abs(ceiling[TAB_DETECTION_AUC] - 0.5) < 0.1
    assert floor[TAB_DETECTION_AUC] > 0.85
    assert floor[TAB_COLUMN_SIMILARITY] > 0.9  # the marginals are right ...
    assert floor[TAB_TREND_SIMILARITY] < ceiling[TAB_TREND_SIMILARITY] - 0.15  # ... nothing else
    assert ceiling[TAB_TABULAR_SCORE] > floor[TAB_TABULAR_SCORE] + 0.25
    assert reports[BASELINE_REAL].sample_sizes["real_test_rows"] == 500


def test_a_memorised_training_set_is_caught(reports: dict[str, QualityReport]) -> None:
    memorised = reports["memorised"].metrics
    assert memorised[TAB_EXACT_COPY_RATE] == 1.0
    assert memorised[TAB_DCR_RATIO] == 0.0
    assert memorised[TAB_PRIVACY_OK] == 0.0
    assert memorised[TAB_DETECTION_AUC] < 0.6  # fidelity alone would rank it first ...
    assert memorised[TAB_TABULAR_SCORE] < reports[BASELINE_REAL].metrics[TAB_TABULAR_SCORE]
    assert memorised[TAB_TABULAR_SCORE] < 0.05  # ... the headline does not


def test_jittered_copies_escape_the_exact_check_but_not_the_closest_records(
    tables: dict[str, pd.DataFrame],
) -> None:
    jittered = tables["train"].iloc[:1000].copy()
    rng = np.random.default_rng(6)
    for column in ("x1", "x2"):
        jittered[column] += rng.normal(0, 1e-3, len(jittered))
    metrics = score(tables, jittered).metrics
    assert metrics[TAB_EXACT_COPY_RATE] == 0.0
    assert metrics[TAB_DCR_RATIO] < 0.2
    assert metrics[TAB_PRIVACY_OK] == 0.0
    assert metrics[TAB_TABULAR_SCORE] < 0.25


def test_shifting_one_column_lowers_its_similarity_monotonically(
    tables: dict[str, pd.DataFrame], reports: dict[str, QualityReport]
) -> None:
    similarities = []
    for shift in (0.25, 0.5, 1.0):
        shifted = tables["other"].copy()
        shifted["x1"] += shift
        metrics = score(tables, shifted).metrics
        similarities.append(metrics[TAB_COLUMN_PREFIX + "x1"])
        assert (
            metrics[TAB_COLUMN_PREFIX + "x2"] == reports["real"].metrics[TAB_COLUMN_PREFIX + "x2"]
        )
    real = reports["real"].metrics[TAB_COLUMN_PREFIX + "x1"]
    assert real > similarities[0] > similarities[1] > similarities[2]


def test_a_collapsed_category_lowers_its_similarity(tables: dict[str, pd.DataFrame]) -> None:
    collapsed = tables["other"].copy()
    collapsed["color"] = pd.Categorical(["red"] * len(collapsed), categories=COLORS)
    metrics = score(tables, collapsed).metrics
    assert metrics[TAB_COLUMN_PREFIX + "color"] < 0.6


def test_scores_are_reproducible_and_round_trip(tables: dict[str, pd.DataFrame]) -> None:
    first = score(tables, tables["other"], num_rows=400, seed=3)
    second = score(tables, tables["other"], num_rows=400, seed=3)
    assert first.to_dict() == second.to_dict()
    assert QualityReport.from_dict(first.to_dict()) == first
    assert first.sample_sizes["synthetic_rows"] == 400
    threads = torch.get_num_threads()
    pinned = score(tables, tables["other"], num_rows=400, seed=3, num_threads=1)
    assert pinned.metrics == first.metrics
    assert torch.get_num_threads() == threads


def test_the_real_side_is_scored_once_per_split_with_the_same_figures(
    tables: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial scores the same real rows at every evaluation: TRTR and the holdout's DCR once."""
    synthetic = shuffle_columns(tables["other"], 7)
    tabular._REAL_SIDE.clear()
    fresh = score(tables, synthetic, num_rows=400, seed=5)
    calls = {"fit": 0, "dcr": 0}
    fit, dcr = tabular._classification_scores, tabular._closest_distances

    def counted_fit(*args: object, **kwargs: object) -> dict[str, float]:
        calls["fit"] += 1
        return fit(*args, **kwargs)  # type: ignore[arg-type]

    def counted_dcr(*args: object) -> np.ndarray:
        calls["dcr"] += 1
        return dcr(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tabular, "_classification_scores", counted_fit)
    monkeypatch.setattr(tabular, "_closest_distances", counted_dcr)
    again = score(tables, synthetic, num_rows=400, seed=5)
    assert again.metrics == fresh.metrics
    assert calls == {"fit": 1, "dcr": 1}  # TSTR and the synthetic rows' DCR only

    other_split = {**tables, "test": make_table(1000, 9)}
    score(other_split, synthetic, num_rows=400, seed=5)
    assert calls == {"fit": 3, "dcr": 3}  # a new real split: its real side is scored


def test_wide_tables_score_a_recorded_subset_of_pairs(tables: dict[str, pd.DataFrame]) -> None:
    report = score(tables, tables["other"], max_trend_pairs=5)
    assert report.sample_sizes["trend_pairs"] == 5
    assert report.sample_sizes["trend_pairs_total"] == 15
    assert any("5 column pairs" in note for note in report.notes)


def test_a_numeric_target_is_scored_by_r2(tables: dict[str, pd.DataFrame]) -> None:
    metrics = score(tables, tables["other"], target_column="x2").metrics
    assert metrics[TAB_TRTR] > 0.6
    assert abs(metrics[TAB_TSTR] - metrics[TAB_TRTR]) < 0.1
    assert math.isnan(metrics["quality/ml_efficacy_tstr_accuracy"])


def test_a_single_class_synthetic_target_still_scores(tables: dict[str, pd.DataFrame]) -> None:
    collapsed = tables["other"].copy()
    collapsed["target"] = pd.Categorical(["no"] * len(collapsed), categories=["no", "yes"])
    metrics = score(tables, collapsed).metrics
    assert metrics[TAB_TSTR] < 0.5  # macro F1 of always "no"
    assert metrics["quality/ml_efficacy_tstr_auc"] == 0.5


def test_bad_inputs_fail_with_one_line(tables: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(SpecError, match=r"unknown data kind 'tabualr'.*did you mean 'tabular'"):
        evaluate_quality(
            "tabualr",
            TabularInputs(
                real_train=tables["train"], real_test=tables["test"], synthetic=tables["other"]
            ),
            config=CONFIG,
        )
    with pytest.raises(DataError, match=r"synthetic columns differ.*missing \['age'\]"):
        score(tables, tables["other"].drop(columns="age"))
    with pytest.raises(DataError, match=r"target column 'income'"):
        score(tables, tables["other"], target_column="income")
    images = ImageInputs(
        real_train=np.zeros((2, 1, 4, 4)),
        real_test=np.zeros((2, 1, 4, 4)),
        generated=np.zeros((2, 1, 4, 4)),
    )
    with pytest.raises(DataError, match=r"tabular metrics need TabularInputs, got ImageInputs"):
        evaluate_quality("tabular", images, config=CONFIG)
    with pytest.raises(DataError, match=r"too few to split"):
        split_holdout(tables["test"].iloc[:3], seed=0)


def test_quality_config_validates_like_every_config() -> None:
    assert config_from_dict(QualityConfig, {"num_rows": 100}, source="q.yaml").num_rows == 100
    with pytest.raises(SpecError, match=r"q.yaml: quality.dcr_ratio_min: must be in \(0, 1\]"):
        config_from_dict(QualityConfig, {"dcr_ratio_min": 2.0}, source="q.yaml", prefix="quality")
    with pytest.raises(SpecError, match=r"unknown key 'num_row'.*num_rows"):
        config_from_dict(QualityConfig, {"num_row": 5}, source="q.yaml")


def test_every_metric_has_a_direction_and_no_clash_with_convergence_names() -> None:
    convergence_names = set(convergence.ALL_TRAINING) | set(convergence.ALL_CONVERGENCE)
    for name, mode in METRIC_MODES.items():
        assert name.startswith("quality/") and name not in convergence_names
        assert metric_mode(name) == mode in ("min", "max")
    assert metric_mode(TAB_COLUMN_PREFIX + "age") == "max"
    assert set(QUALITY_METRICS) == {"tabular", "image", "signal"}
    with pytest.raises(SpecError, match=r"unknown metric 'quality/tabular_scor'.*tabular_score"):
        metric_mode("quality/tabular_scor")


def test_cosine_report_separates_realistic_from_unrealistic_samples(
    tables: dict[str, pd.DataFrame],
) -> None:
    realistic, real = encode_for_cosine(tables["other"].iloc[:300], tables["train"])
    unrealistic, _ = encode_for_cosine(noise_table(300, 7), tables["train"])
    report = cosine_distance_report(
        realistic, unrealistic, real, rng=np.random.default_rng(0), num_reference=200
    )
    assert report[COSINE_FOOLED] < report[COSINE_NOT_FOOLED]
    assert abs(report[COSINE_FOOLED] - report[COSINE_REAL]) < 0.03
    assert report["quality/cosine_num_fooled"] == 300.0


def test_cosine_report_from_frames_follows_the_discriminator_decisions(
    tables: dict[str, pd.DataFrame],
) -> None:
    synthetic = pd.concat([tables["other"].iloc[:100], noise_table(100, 8)], ignore_index=True)
    is_fooled = np.arange(200) < 100
    report = cosine_report_from_frames(
        synthetic, is_fooled, tables["train"], rng=np.random.default_rng(0)
    )
    assert report[COSINE_FOOLED] < report[COSINE_NOT_FOOLED]
    empty = cosine_report_from_frames(
        synthetic, np.zeros(200, bool), tables["train"], rng=np.random.default_rng(0)
    )
    assert math.isnan(empty[COSINE_FOOLED])
    with pytest.raises(DataError, match=r"is_fooled has shape \(3,\)"):
        cosine_report_from_frames(
            synthetic, np.ones(3, bool), tables["train"], rng=np.random.default_rng(0)
        )
