from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from gan_hpc.config import DataConfig
from gan_hpc.data.transform import (
    MISSING_CLASS_NAME,
    ImageTransform,
    SignalTransform,
    TabularTransform,
    drop_missing_rows,
    fit_transform,
    transform_from_dict,
)
from gan_hpc.data.types import Arrays, ColumnInfo, DataSchema, Table
from gan_hpc.errors import DataError

WORKCLASS = (" State-gov", " Private", " Self-emp")  # Adult's leading spaces
NUM_ROWS = 400


@pytest.fixture(autouse=True)
def _propagate_gan_hpc_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI may have turned propagation off in this process; caplog listens on the root.
    monkeypatch.setattr(logging.getLogger("gan_hpc"), "propagate", True)


def make_table(num_rows: int = NUM_ROWS, seed: int = 0, with_missing: bool = True) -> Table:
    rng = np.random.default_rng(seed)
    age = rng.integers(17, 91, num_rows).astype(np.float64)
    income = rng.lognormal(10.0, 1.0, num_rows)
    workclass = rng.choice(np.array(WORKCLASS, dtype=object), num_rows, p=[0.3, 0.6, 0.1])
    if with_missing:
        workclass[rng.random(num_rows) < 0.1] = None
        age[5] = np.nan
    day = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, num_rows), unit="D")
    frame = pd.DataFrame(
        {
            "age": age,
            "workclass": pd.Categorical(workclass, categories=list(WORKCLASS)),
            "income": income,
            "joined": pd.Series(day),
            "team": pd.Series(rng.choice(["red", "blue", "green"], num_rows), dtype=object),
            "label": pd.Categorical(
                rng.choice(["<=50K", ">50K"], num_rows, p=[0.75, 0.25]),
                categories=["<=50K", ">50K"],
            ),
        }
    )
    columns = (
        ColumnInfo("age", "numeric"),
        ColumnInfo("workclass", "categorical", WORKCLASS),
        ColumnInfo("income", "numeric"),
        ColumnInfo("joined", "date"),
        ColumnInfo("team", "string"),
        ColumnInfo("label", "categorical", ("<=50K", ">50K")),
    )
    return Table(frame=frame, columns=columns, source="people.csv")


def config(**overrides: object) -> DataConfig:
    return DataConfig(path="people.csv", **overrides)  # type: ignore[arg-type]


def json_round_trip(transform: object) -> object:
    text = json.dumps(transform.to_dict(), allow_nan=False)  # type: ignore[attr-defined]
    return transform_from_dict(json.loads(text))


def feature_offset(schema: DataSchema, name: str) -> int:
    names = [b.name for b in schema.blocks]
    return sum(b.width for b in schema.blocks[: names.index(name)])


def assert_same_categories(actual: pd.Series, expected: pd.Series) -> None:
    assert actual.astype(object).isna().tolist() == expected.astype(object).isna().tolist()
    assert actual.astype(object).dropna().tolist() == expected.astype(object).dropna().tolist()


# ------------------------------------------------------------------------------------ tabular


@pytest.mark.parametrize("numeric_transform", ["minmax", "quantile"])
@pytest.mark.parametrize("encoding", ["onehot", "codes"])
def test_tabular_round_trip(numeric_transform: str, encoding: str) -> None:
    table = make_table()
    transform = fit_transform(
        table, config(numeric_transform=numeric_transform, categorical_encoding=encoding)
    )
    encoded = transform.transform(table)
    assert encoded.x.dtype == np.float32
    assert encoded.x.shape == (NUM_ROWS, transform.schema.sample_shape[0])
    back = transform.inverse_transform(encoded.x)
    frame = table.frame
    assert list(back.columns) == list(frame.columns)
    # Categoricals (NaN included, leading spaces kept) and strings come back exactly.
    assert back["workclass"].dtype == frame["workclass"].dtype
    assert list(back["workclass"].cat.categories) == list(WORKCLASS)
    assert_same_categories(back["workclass"], frame["workclass"])
    assert back["label"].tolist() == frame["label"].tolist()
    assert back["team"].dtype == object
    assert back["team"].tolist() == frame["team"].tolist()
    # Integer-valued numerics come back as int64; the imputed NaN comes back as the median.
    assert back["age"].dtype == np.int64
    observed = ~np.isnan(frame["age"].to_numpy())
    np.testing.assert_array_equal(back["age"][observed], frame["age"][observed].astype(np.int64))
    assert back["age"][5] == int(np.round(np.nanmedian(frame["age"])))
    np.testing.assert_allclose(back["income"], frame["income"], rtol=2e-4)
    assert back["joined"].dtype == frame["joined"].dtype
    assert back["joined"].tolist() == frame["joined"].tolist()


def test_quantile_is_precise_away_from_the_extremes() -> None:
    table = make_table(num_rows=3000, with_missing=False)
    transform = fit_transform(table, config(numeric_transform="quantile"))
    encoded = transform.transform(table)
    normal = encoded.x[:, feature_offset(transform.schema, "income")]
    back = transform.inverse_transform(encoded.x)["income"].to_numpy()
    income = table.frame["income"].to_numpy()
    inner = np.abs(normal) < 3
    np.testing.assert_allclose(back[inner], income[inner], rtol=1e-6)


@pytest.mark.parametrize("dequantize", [True, False])
def test_integer_columns_are_dequantised_before_their_quantiles(dequantize: bool) -> None:
    table = make_table(num_rows=2000, with_missing=False)
    ages = table.frame["age"].to_numpy()
    assert np.all(ages == np.round(ages)) and len(np.unique(ages)) < 100  # ties: an integer column
    transform = fit_transform(table, config(numeric_transform="quantile", dequantize=dequantize))
    encoded = transform.transform(table)
    normal = encoded.x[:, feature_offset(transform.schema, "age")]
    # dequantised: ties spread into a smooth density; otherwise one value per distinct age
    num_distinct = len(np.unique(normal))
    assert num_distinct > 1500 if dequantize else num_distinct == len(np.unique(ages))
    # either way the encoding is deterministic and the decoder gives the integers back
    np.testing.assert_array_equal(transform.transform(table).x, encoded.x)
    back = transform.inverse_transform(encoded.x)["age"].to_numpy()
    np.testing.assert_array_equal(back, ages)
    restored = json_round_trip(transform)
    np.testing.assert_array_equal(restored.transform(table).x, encoded.x)  # type: ignore[attr-defined]


def spiked_table(num_rows: int = 4000) -> Table:
    """capital-gain as in Adult: 0 for 90 % of the rows, a long integer tail for the rest."""
    rng = np.random.default_rng(0)
    gain = np.where(rng.random(num_rows) < 0.9, 0.0, np.round(rng.lognormal(8.0, 1.0, num_rows)))
    gain[0] = 0.0
    frame = pd.DataFrame({"capital-gain": gain, "age": rng.integers(17, 91, num_rows) * 1.0})
    columns = (ColumnInfo("capital-gain", "numeric"), ColumnInfo("age", "numeric"))
    return Table(frame=frame, columns=columns, source="gains.csv")


@pytest.mark.parametrize("numeric_transform", ["quantile", "minmax"])
def test_a_spiked_numeric_is_a_mixed_block_that_round_trips(numeric_transform: str) -> None:
    table = spiked_table()
    gain = table.frame["capital-gain"].to_numpy()
    transform = fit_transform(table, config(numeric_transform=numeric_transform))
    blocks = {b.name: b for b in transform.schema.blocks}
    assert (blocks["capital-gain"].kind, blocks["capital-gain"].width) == ("mixed", 3)
    assert (blocks["age"].kind, blocks["age"].width) == ("numeric", 1)  # no value holds half
    encoded = transform.transform(table).x
    mixed = encoded[:, feature_offset(transform.schema, "capital-gain") :][:, :3]
    at_zero = gain == 0
    np.testing.assert_array_equal(mixed[:, 0], at_zero)
    np.testing.assert_array_equal(mixed[:, 1], ~at_zero)
    assert np.all(mixed[at_zero, 2] == 0)
    if numeric_transform == "quantile":
        # the tail has the whole normal to itself: its median sits at 0, not at z = 1.6
        assert abs(np.median(mixed[~at_zero, 2])) < 0.05
        assert 0.9 < np.std(mixed[~at_zero, 2]) < 1.1
    back = json_round_trip(transform).inverse_transform(encoded)  # type: ignore[attr-defined]
    assert back["capital-gain"].dtype == np.int64
    assert np.all(back["capital-gain"][at_zero] == 0)
    # float32 features: exact but for the last unit at the tail's far end
    np.testing.assert_allclose(back["capital-gain"], gain, rtol=1e-4)


def test_a_mixed_block_decodes_the_flag_first() -> None:
    transform = fit_transform(spiked_table(), config())
    offset = feature_offset(transform.schema, "capital-gain")
    rows = np.zeros((2, transform.schema.sample_shape[0]), dtype=np.float32)
    rows[:, offset + 2] = 1.5  # a large gain...
    rows[0, offset : offset + 2] = [0.7, 0.3]  # ...at the spike: the flag wins
    rows[1, offset : offset + 2] = [0.3, 0.7]
    gains = transform.inverse_transform(rows)["capital-gain"].tolist()
    assert gains[0] == 0 and gains[1] > 5000


@pytest.mark.parametrize("share", [None, 0.95])
def test_spike_min_share_none_or_above_the_spike_keeps_one_value(share: float | None) -> None:
    transform = fit_transform(spiked_table(), config(spike_min_share=share))
    assert all(b.kind == "numeric" and b.width == 1 for b in transform.schema.blocks)


def test_transforms_saved_before_mixed_blocks_still_load() -> None:
    state = fit_transform(make_table(), config()).to_dict()
    for codec in state["codecs"]:
        codec.pop("spike", None)  # written by a version without spikes
    restored = transform_from_dict(state)
    assert all(b.kind != "mixed" for b in restored.schema.blocks)


EDUCATION = {"HS-grad": 9, "Bachelors": 13, "Masters": 14, "Doctorate": 16}


def schooled_table(num_rows: int = 2000, broken_rows: int = 0) -> Table:
    """education-num is education as a number, as in Adult; ``level`` copies the label."""
    rng = np.random.default_rng(0)
    education = rng.choice(list(EDUCATION), num_rows, p=[0.5, 0.3, 0.15, 0.05])
    number = np.array([EDUCATION[e] for e in education], dtype=np.float64)
    number[:broken_rows] += 1  # a pairing that breaks somewhere is no recoding
    label = rng.choice(["no", "yes"], num_rows)
    frame = pd.DataFrame(
        {
            "education": pd.Categorical(education, categories=list(EDUCATION)),
            "education-num": number,
            "hours": rng.integers(1, 99, num_rows).astype(np.float64),
            "level": pd.Series(np.where(label == "yes", "high", "low"), dtype=object),
            "label": pd.Categorical(label, categories=["no", "yes"]),
        }
    )
    columns = (
        ColumnInfo("education", "categorical", tuple(EDUCATION)),
        ColumnInfo("education-num", "numeric"),
        ColumnInfo("hours", "numeric"),
        ColumnInfo("level", "string"),
        ColumnInfo("label", "categorical", ("no", "yes")),
    )
    return Table(frame=frame, columns=columns, source="school.csv")


def test_a_one_to_one_recoding_is_decoded_from_its_parent_in_every_generated_row() -> None:
    table = schooled_table()
    transform = json_round_trip(fit_transform(table, config()))
    assert isinstance(transform, TabularTransform)
    blocks = [b.name for b in transform.schema.blocks]
    # of education and education-num, and of level and label, the earlier column is generated
    assert blocks == ["education", "hours", "level"]
    encoded = transform.transform(table).x
    back = transform.inverse_transform(encoded)
    assert list(back.columns) == list(table.frame.columns)
    assert back["education-num"].dtype == np.int64
    np.testing.assert_array_equal(back["education-num"], table.frame["education-num"])
    assert back["label"].tolist() == table.frame["label"].tolist()
    # whatever a generator draws, the pairing holds
    noise = np.random.default_rng(1).normal(size=(500, encoded.shape[1])).astype(np.float32)
    generated = transform.inverse_transform(noise)
    expected = generated["education"].map(EDUCATION).astype(np.int64)
    np.testing.assert_array_equal(generated["education-num"], expected)
    assert set(zip(generated["level"], generated["label"], strict=True)) <= {
        ("high", "yes"),
        ("low", "no"),
    }
    assert generated["education"].nunique() == len(EDUCATION)  # the parent still varies


def test_the_condition_column_is_a_parent_never_a_recoded_column() -> None:
    transform = fit_transform(schooled_table(), config(conditional=True, condition_column="label"))
    assert isinstance(transform, TabularTransform)
    assert {(r.column, r.parent) for r in transform.recodings} == {
        ("education-num", "education"),
        ("level", "label"),
    }
    x = np.zeros((4, transform.schema.sample_shape[0]), dtype=np.float32)
    back = transform.inverse_transform(x, cond=np.array([0, 1, 1, 0]))
    assert back["level"].tolist() == ["low", "high", "high", "low"]


@pytest.mark.parametrize(
    ("broken_rows", "num_rows", "derive"),
    [(1, 2000, True), (0, 60, True), (0, 2000, False)],
    ids=["one-row-breaks-the-pairing", "a-class-under-10-rows", "derive_recodings-false"],
)
def test_no_recoding_unless_every_row_pairs_and_every_class_has_rows(
    broken_rows: int, num_rows: int, derive: bool
) -> None:
    table = schooled_table(num_rows=num_rows, broken_rows=broken_rows)
    transform = fit_transform(table, config(derive_recodings=derive))
    assert isinstance(transform, TabularTransform)
    recoded = {r.column for r in transform.recodings}
    assert "education-num" not in recoded
    assert "education-num" in [b.name for b in transform.schema.blocks]
    assert ("label" in recoded) is derive  # label still pairs with level, 30 rows per class


def test_transforms_saved_before_recodings_still_load() -> None:
    state = fit_transform(schooled_table(), config()).to_dict()
    codecs = state.pop("recodings") and state["codecs"]  # written by a version without them
    restored = transform_from_dict(state)
    assert isinstance(restored, TabularTransform)
    assert restored.recodings == ()
    assert [b.name for b in restored.schema.blocks] == [c["name"] for c in codecs]


def test_onehot_and_missing_slot_blocks() -> None:
    transform = fit_transform(make_table(), config())
    blocks = {b.name: b for b in transform.schema.blocks}
    assert blocks["workclass"].kind == "categorical"
    assert blocks["workclass"].width == len(WORKCLASS) + 1  # the missing slot
    assert blocks["label"].width == 2  # no missing label: no slot
    assert blocks["team"].width == 3
    assert blocks["age"].width == 1
    assert transform.schema.sample_shape == (sum(b.width for b in blocks.values()),)


def test_codes_are_numeric_blocks_in_range() -> None:
    transform = fit_transform(make_table(), config(categorical_encoding="codes"))
    assert all(b.kind == "numeric" and b.width == 1 for b in transform.schema.blocks)
    names = [b.name for b in transform.schema.blocks]
    x = transform.transform(make_table()).x
    for name, num_codes in (("workclass", 4), ("team", 3), ("label", 2)):
        codes = x[:, names.index(name)]
        np.testing.assert_allclose(np.unique(codes), np.linspace(-1, 1, num_codes), atol=1e-6)


def test_minmax_and_quantile_ranges() -> None:
    table = make_table(with_missing=False)
    minmax = fit_transform(table, config(numeric_transform="minmax", minmax_range=(0.0, 1.0)))
    assert minmax.schema.value_range == (0.0, 1.0)
    x = minmax.transform(table).x
    assert x.min() == 0.0 and x.max() == 1.0
    quantile = fit_transform(table, config(numeric_transform="quantile"))
    assert quantile.schema.value_range is None
    income = quantile.transform(table).x[:, feature_offset(quantile.schema, "income")]
    assert abs(income.mean()) < 0.1 and 0.8 < income.std() < 1.2


def test_inverse_takes_the_argmax_of_logits() -> None:
    table = make_table(with_missing=False)
    transform = fit_transform(table, config())
    x = transform.transform(table).x
    rng = np.random.default_rng(1)
    logits = x * 5.0 + rng.normal(0.0, 0.1, x.shape)  # noisy scores, not exact one-hot
    back = transform.inverse_transform(logits)
    assert back["label"].tolist() == table.frame["label"].tolist()
    assert back["team"].tolist() == table.frame["team"].tolist()


def test_inverse_clips_to_the_trained_range() -> None:
    table = make_table(with_missing=False)
    for numeric in ("minmax", "quantile"):
        transform = fit_transform(
            table, config(numeric_transform=numeric, categorical_encoding="codes")
        )
        width = transform.schema.sample_shape[0]
        for value in (-50.0, 50.0):
            back = transform.inverse_transform(np.full((3, width), value))
            assert back["age"].between(table.frame["age"].min(), table.frame["age"].max()).all()
            assert back["income"].min() >= table.frame["income"].min()
            assert back["income"].max() <= table.frame["income"].max()
            assert (
                back["joined"]
                .between(table.frame["joined"].min(), table.frame["joined"].max())
                .all()
            )
            assert back["label"].notna().all()


def test_conditional_column_leaves_x_and_comes_back_in_place() -> None:
    table = make_table()
    transform = fit_transform(table, config(conditional=True, condition_column="workclass"))
    schema = transform.schema
    assert "workclass" not in [b.name for b in schema.blocks]
    condition = schema.condition
    assert condition is not None and condition.kind == "class" and condition.column == "workclass"
    assert condition.names == (*WORKCLASS, MISSING_CLASS_NAME)
    assert condition.dim == 4
    encoded = transform.transform(table)
    assert encoded.cond is not None and encoded.cond.dtype == np.int64
    expected = table.frame["workclass"].cat.codes.to_numpy().copy()
    expected[expected < 0] = 3
    np.testing.assert_array_equal(encoded.cond, expected)
    np.testing.assert_allclose(condition.frequencies, np.bincount(expected) / NUM_ROWS)
    back = transform.inverse_transform(encoded.x, encoded.cond)
    assert list(back.columns) == list(table.frame.columns)
    assert_same_categories(back["workclass"], table.frame["workclass"])
    with pytest.raises(ValueError, match="cond"):
        transform.inverse_transform(encoded.x)


def test_condition_column_errors_list_the_categorical_columns() -> None:
    table = make_table()
    with pytest.raises(DataError, match=r"people\.csv: .*'nope' is not in the table.*workclass"):
        fit_transform(table, config(conditional=True, condition_column="nope"))
    with pytest.raises(DataError, match=r"'income' is not categorical.*workclass, team, label"):
        fit_transform(table, config(conditional=True, condition_column="income"))
    with pytest.raises(DataError, match="condition_column is not set"):
        fit_transform(table, config(conditional=True))


def test_json_round_trip_gives_identical_outputs() -> None:
    table = make_table()
    for overrides in (
        {},
        {"numeric_transform": "minmax", "categorical_encoding": "codes"},
        {"conditional": True, "condition_column": "label"},
    ):
        transform = fit_transform(table, config(**overrides))
        rebuilt = json_round_trip(transform)
        assert rebuilt.to_dict() == transform.to_dict()
        assert rebuilt.schema == transform.schema
        first, second = transform.transform(table), rebuilt.transform(table)
        np.testing.assert_array_equal(first.x, second.x)
        pd.testing.assert_frame_equal(
            transform.inverse_transform(first.x, first.cond),
            rebuilt.inverse_transform(first.x, first.cond),
        )


def test_unseen_categories_become_missing_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transform = fit_transform(make_table(), config())
    other = make_table(num_rows=20, seed=3)
    frame = other.frame.copy()
    frame["workclass"] = pd.Categorical(
        [" Never-worked"] * 2 + list(frame["workclass"][2:]),
        categories=[*WORKCLASS, " Never-worked"],
    )
    test = Table(frame=frame, columns=other.columns, source="people.test.csv")
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        encoded = transform.transform(test)
    assert "people.test.csv: column 'workclass'" in caplog.text
    assert "' Never-worked'" in caplog.text
    back = transform.inverse_transform(encoded.x)
    assert back["workclass"][:2].isna().all()


def test_missing_in_a_column_without_slot_is_imputed_with_the_mode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transform = fit_transform(make_table(with_missing=False), config())
    table = make_table(seed=4)
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        back = transform.inverse_transform(transform.transform(table).x)
    assert "missing value(s) but none in training" in caplog.text
    assert back["workclass"].notna().all()


def test_drop_rows_policy(caplog: pytest.LogCaptureFixture) -> None:
    table = make_table()
    cfg = config(missing="drop_rows")
    num_missing = int(table.frame.isna().any(axis=1).sum())
    assert num_missing > 0
    with caplog.at_level(logging.INFO, logger="gan_hpc"):
        dropped = drop_missing_rows(table, cfg)
    assert len(dropped.frame) == NUM_ROWS - num_missing
    assert f"dropped {num_missing} of {NUM_ROWS} rows" in caplog.text
    assert not dropped.frame.isna().any().any()
    transform = fit_transform(table, cfg)
    assert {b.name: b.width for b in transform.schema.blocks}["workclass"] == len(WORKCLASS)
    encoded = transform.transform(table)
    assert len(encoded.x) == NUM_ROWS - num_missing
    assert drop_missing_rows(table, config()) is table


def test_long_string_columns_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    table = make_table(with_missing=False)
    frame = table.frame.assign(note=[f"note {i}" for i in range(NUM_ROWS)])
    wide = Table(frame=frame, columns=(*table.columns, ColumnInfo("note", "string")), source="t")
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        transform = fit_transform(wide, config())
    assert "string column 'note' has 400 distinct values" in caplog.text
    assert "note" not in transform.inverse_transform(transform.transform(wide).x).columns


def test_integer_column_with_nan_output_is_nullable() -> None:
    table = make_table(with_missing=False)
    transform = fit_transform(table, config(numeric_transform="minmax"))
    x = transform.transform(table).x.astype(np.float64)
    x[0, 0] = np.nan  # "age" is the first feature
    back = transform.inverse_transform(x)
    assert str(back["age"].dtype) == "Int64"
    assert back["age"].isna().sum() == 1


def test_transform_needs_the_fitted_columns() -> None:
    table = make_table()
    transform = fit_transform(table, config())
    partial = Table(frame=table.frame.drop(columns=["income"]), columns=table.columns, source="t2")
    with pytest.raises(DataError, match=r"t2: column\(s\) income missing"):
        transform.transform(partial)


def test_tz_aware_dates_round_trip() -> None:
    stamps = pd.Series(
        pd.to_datetime(["2021-03-01 10:15:00", "2021-07-09 23:00:30", None, "2022-01-01 00:00:00"])
    ).dt.tz_localize("Europe/Paris")
    table = Table(
        frame=pd.DataFrame({"when": stamps}), columns=(ColumnInfo("when", "date"),), source="d"
    )
    transform = fit_transform(table, config(numeric_transform="minmax"))
    back = transform.inverse_transform(transform.transform(table).x)
    assert back["when"].dtype == stamps.dtype
    observed = stamps.notna()
    assert back["when"][observed].tolist() == stamps[observed].tolist()


# -------------------------------------------------------------------------------------- image


def make_images(dtype: type = np.uint8, num: int = 30) -> Arrays:
    rng = np.random.default_rng(0)
    if dtype == np.uint8:
        samples = rng.integers(0, 256, (num, 1, 6, 6)).astype(np.uint8)
    else:
        samples = rng.normal(3.0, 2.0, (num, 1, 6, 6)).astype(dtype)
    labels = rng.integers(0, 3, num).astype(np.int64)
    return Arrays(
        kind="image",
        samples=samples,
        source="digits.npz",
        labels=labels,
        label_names=("zero", "one", "two"),
        metadata={"flat_length": np.int64(33)},
    )


def test_uint8_images_round_trip_exactly() -> None:
    images = make_images()
    transform = fit_transform(images, config())
    assert isinstance(transform, ImageTransform)
    encoded = transform.transform(images)
    assert encoded.x.dtype == np.float32 and encoded.cond is None
    assert encoded.x.min() >= -1 and encoded.x.max() <= 1
    assert transform.schema.sample_shape == (1, 6, 6)
    assert transform.schema.value_range == (-1.0, 1.0)
    back = transform.inverse_transform(encoded.x)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, images.samples)
    # The range comes from the dtype, not the data: 0 -> -1 and 255 -> 1.
    assert transform.low == 0.0 and transform.high == 255.0


def test_float_images_use_the_training_range() -> None:
    images = make_images(dtype=np.float32)
    transform = fit_transform(images, config())
    x = transform.transform(images).x
    assert x.min() == -1.0 and x.max() == 1.0
    back = transform.inverse_transform(x)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, images.samples, atol=1e-5)


def test_conditional_images_and_unpadding() -> None:
    images = make_images()
    transform = fit_transform(images, config(conditional=True))
    encoded = transform.transform(images)
    np.testing.assert_array_equal(encoded.cond, images.labels)
    condition = transform.schema.condition
    assert condition is not None and condition.kind == "class" and condition.dim == 3
    assert condition.names == ("zero", "one", "two")
    np.testing.assert_allclose(condition.frequencies, np.bincount(images.labels) / 30)
    rebuilt = json_round_trip(transform)
    assert rebuilt.schema == transform.schema
    flat = rebuilt.unpad_flat(rebuilt.inverse_transform(encoded.x))
    np.testing.assert_array_equal(flat, images.samples.reshape(30, -1)[:, :33])
    unlabelled = Arrays(kind="image", samples=images.samples, source="x.npy")
    with pytest.raises(DataError, match=r"x\.npy: data\.conditional is true .* no labels"):
        fit_transform(unlabelled, config(conditional=True))


# ------------------------------------------------------------------------------------- signal


def make_signals(num: int = 40) -> Arrays:
    rng = np.random.default_rng(0)
    axis = np.linspace(5.0, 400.0, 16)
    samples = rng.normal(0.0, 1.0, (num, 2, 16)) * np.linspace(1, 10, 16) + axis / 100
    coordinates = np.column_stack([rng.uniform(0.0, 0.6, num), rng.uniform(0.0, 0.4, num)])
    return Arrays(
        kind="signal",
        samples=samples.astype(np.float32),
        source="plate",
        conditions=coordinates,
        condition_names=("x_m", "y_m"),
        axis=axis,
        axis_name="frequency_hz",
        channel_names=("real", "imag"),
    )


@pytest.mark.parametrize("scaling", ["global", "per_frequency"])
def test_signal_round_trip(scaling: str) -> None:
    signals = make_signals()
    transform = fit_transform(signals, config(signal_scaling=scaling))
    assert isinstance(transform, SignalTransform)
    x = transform.transform(signals).x
    assert x.dtype == np.float32 and x.shape == signals.samples.shape
    if scaling == "per_frequency":
        np.testing.assert_allclose(x.min(axis=0), -1.0, atol=1e-6)
        np.testing.assert_allclose(x.max(axis=0), 1.0, atol=1e-6)
    else:
        assert x.min() == -1.0 and x.max() == 1.0
    back = transform.inverse_transform(x)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, signals.samples, rtol=1e-5, atol=1e-5)
    rebuilt = json_round_trip(transform)
    np.testing.assert_array_equal(rebuilt.transform(signals).x, x)
    np.testing.assert_array_equal(rebuilt.axis, signals.axis)
    assert rebuilt.axis_name == "frequency_hz"
    assert rebuilt.channel_names == ("real", "imag")


def test_signal_conditions_scale_and_invert() -> None:
    signals = make_signals()
    transform = fit_transform(signals, config(conditional=True))
    encoded = transform.transform(signals)
    assert encoded.cond is not None and encoded.cond.dtype == np.float32
    assert encoded.cond.min() == -1.0 and encoded.cond.max() == 1.0
    condition = transform.schema.condition
    assert condition is not None and condition.kind == "continuous" and condition.dim == 2
    assert condition.names == ("x_m", "y_m")
    np.testing.assert_allclose(
        condition.ranges,
        np.column_stack([signals.conditions.min(axis=0), signals.conditions.max(axis=0)]),
    )
    np.testing.assert_allclose(
        transform.inverse_condition(encoded.cond), signals.conditions, atol=1e-6
    )
    rebuilt = json_round_trip(transform)
    user = np.array([0.3, 0.2])  # a point to sample at, in metres
    scaled = rebuilt.transform_condition(user)
    assert scaled.shape == (2,)
    np.testing.assert_allclose(rebuilt.inverse_condition(scaled), user, atol=1e-6)
    with pytest.raises(DataError, match="no conditions"):
        fit_transform(
            Arrays(kind="signal", samples=signals.samples, source="s"), config(conditional=True)
        )


def test_unknown_transform_kind() -> None:
    with pytest.raises(DataError, match="unknown kind 'audio'.*tabular, image, signal"):
        transform_from_dict({"kind": "audio"})
    assert isinstance(fit_transform(make_table(), config()), TabularTransform)
