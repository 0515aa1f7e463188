from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gan_hpc.config import DataConfig, SyntheticFrfConfig
from gan_hpc.data import cache, readers
from gan_hpc.data.datasets import PreparedData, Split, load_dataset, split_indices
from gan_hpc.data.synthetic import simulate_plate_frf, write_frf_excel
from gan_hpc.data.transform import SignalTransform, TabularTransform
from gan_hpc.errors import DataError

NUM_ROWS = 200
JOBS = ("admin", "blue-collar", "technician")


@pytest.fixture(autouse=True)
def _propagate_gan_hpc_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CLI may have turned propagation off in this process; caplog listens on the root.
    monkeypatch.setattr(logging.getLogger("gan_hpc"), "propagate", True)


def write_people(path: Path, num_rows: int = NUM_ROWS, seed: int = 0, jobs: tuple = JOBS) -> Path:
    rng = np.random.default_rng(seed)
    job = rng.choice(np.array(jobs, dtype=object), num_rows)
    job[rng.random(num_rows) < 0.1] = "?"
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, num_rows),
            "balance": np.round(rng.normal(1000.0, 300.0, num_rows), 2),
            "job": job,
            "y": rng.choice(["no", "yes"], num_rows, p=[0.8, 0.2]),
        }
    )
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def people_csv(tmp_path: Path) -> Path:
    return write_people(tmp_path / "people.csv")


def csv_config(path: Path, tmp_path: Path, **overrides: object) -> DataConfig:
    options = {"format": "csv", "path": str(path), "cache_dir": str(tmp_path / "cache")}
    options.update(overrides)
    return DataConfig(**options)  # type: ignore[arg-type]


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    calls: list[Path | None] = []
    real = readers.read_data

    def counting(config: DataConfig, path: Path | None = None) -> object:
        calls.append(path)
        return real(config, path)

    monkeypatch.setattr(readers, "read_data", counting)
    return calls


def assert_same_data(first: PreparedData, second: PreparedData) -> None:
    for name in ("train", "val", "test"):
        a, b = getattr(first, name), getattr(second, name)
        assert torch.equal(a.x, b.x)
        assert (a.cond is None) == (b.cond is None)
        if a.cond is not None:
            assert torch.equal(a.cond, b.cond)
    assert first.schema == second.schema
    assert first.transform.to_dict() == second.transform.to_dict()
    assert first.source_hash == second.source_hash
    assert first.num_raw_rows == second.num_raw_rows


# ------------------------------------------------------------------------------------- splits


def test_split_indices_are_disjoint_seeded_and_deterministic() -> None:
    train, val, test = split_indices(103, 0.1, 0.2, seed=7)
    assert (len(train), len(val), len(test)) == (72, 10, 21)
    joined = np.concatenate([train, val, test])
    assert sorted(joined.tolist()) == list(range(103))
    for part in (train, val, test):
        assert np.all(np.diff(part) > 0)
    again = split_indices(103, 0.1, 0.2, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    other = split_indices(103, 0.1, 0.2, seed=8)
    assert not np.array_equal(other[1], val)
    assert len(split_indices(10, 0.1, 0.0, seed=0)[2]) == 0
    assert len(split_indices(5, 0.01, 0.01, seed=0)[1]) == 1  # a non-zero fraction: >= 1
    with pytest.raises(ValueError, match="too few"):
        split_indices(2, 0.3, 0.3, seed=0)


# ------------------------------------------------------------------------------ load_dataset


def test_load_csv_fits_on_train_only(people_csv: Path, tmp_path: Path) -> None:
    config = csv_config(people_csv, tmp_path, numeric_transform="minmax", use_cache=False)
    data = load_dataset(config)
    assert isinstance(data.transform, TabularTransform)
    assert (len(data.train), len(data.val), len(data.test)) == (160, 20, 20)
    assert data.num_raw_rows == NUM_ROWS
    assert data.train.x.dtype == torch.float32 and data.train.cond is None
    assert data.train.x.shape[1] == data.schema.sample_shape[0]
    assert data.source_hash == cache.source_hash(
        [hashlib.sha256(people_csv.read_bytes()).hexdigest()]
    )
    # Train-only fit: -1 / +1 in the age feature decode to the training rows' min / max.
    frame = pd.read_csv(people_csv)
    train_idx, _, _ = split_indices(NUM_ROWS, 0.1, 0.1, seed=0)
    width = data.schema.sample_shape[0]
    extremes = data.transform.inverse_transform(np.stack([-np.ones(width), np.ones(width)]))
    assert extremes["age"].tolist() == [
        frame["age"][train_idx].min(),
        frame["age"][train_idx].max(),
    ]
    decoded = data.transform.inverse_transform(data.val.x.numpy())
    assert len(decoded) == 20 and list(decoded.columns) == ["age", "balance", "job", "y"]
    assert not (tmp_path / "cache").exists()  # use_cache=False writes nothing


def test_conditional_csv_and_missing_column(people_csv: Path, tmp_path: Path) -> None:
    data = load_dataset(csv_config(people_csv, tmp_path, conditional=True, condition_column="y"))
    assert data.schema.condition is not None and data.schema.condition.names == ("no", "yes")
    assert data.train.cond is not None and data.train.cond.dtype == torch.int64
    assert "y" not in [b.name for b in data.schema.blocks]
    with pytest.raises(DataError, match=r"people\.csv: data\.condition_column.*'z'.*job, y"):
        load_dataset(csv_config(people_csv, tmp_path, conditional=True, condition_column="z"))


def test_test_path_with_an_unseen_category(
    people_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    test_csv = write_people(
        tmp_path / "people.test.csv", num_rows=50, seed=1, jobs=(*JOBS, "pilot")
    )
    config = csv_config(people_csv, tmp_path, test_path=str(test_csv))
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        data = load_dataset(config)
    assert (len(data.train), len(data.val), len(data.test)) == (180, 20, 50)
    assert "people.test.csv: column 'job'" in caplog.text and "'pilot'" in caplog.text
    decoded = data.transform.inverse_transform(data.test.x.numpy())
    expected = pd.read_csv(test_csv)["job"].replace({"?": np.nan, "pilot": np.nan})
    assert decoded["job"].astype(object).isna().tolist() == expected.isna().tolist()
    assert decoded["job"].dropna().astype(str).tolist() == expected.dropna().tolist()


def test_drop_rows_keeps_split_sizes_consistent(people_csv: Path, tmp_path: Path) -> None:
    num_complete = int((pd.read_csv(people_csv)["job"] != "?").sum())
    data = load_dataset(csv_config(people_csv, tmp_path, missing="drop_rows", use_cache=False))
    sizes = split_indices(num_complete, 0.1, 0.1, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == tuple(len(s) for s in sizes)
    assert data.num_raw_rows == NUM_ROWS
    assert data.transform.inverse_transform(data.train.x.numpy())["job"].notna().all()


def test_max_rows_subsamples_deterministically(people_csv: Path, tmp_path: Path) -> None:
    config = csv_config(people_csv, tmp_path, max_rows=50, use_cache=False)
    first, second = load_dataset(config), load_dataset(config)
    assert len(first.train) + len(first.val) + len(first.test) == 50
    assert_same_data(first, second)


def test_synthetic_frf_signals(tmp_path: Path) -> None:
    config = DataConfig(
        format="synthetic_frf",
        synthetic=SyntheticFrfConfig(num_points=30, num_frequencies=16),
        conditional=True,
        signal_scaling="per_frequency",
        cache_dir=str(tmp_path / "cache"),
    )
    data = load_dataset(config)
    assert isinstance(data.transform, SignalTransform)
    assert data.schema.kind == "signal" and data.schema.sample_shape[1] == 16
    assert data.train.cond is not None and data.train.cond.dtype == torch.float32
    assert data.train.cond.shape == (len(data.train), 2)
    assert data.source_hash == hashlib.sha256(b"").hexdigest()  # no input file
    coordinates = data.transform.inverse_condition(data.val.cond.numpy())
    np.testing.assert_allclose(
        data.transform.transform_condition(coordinates), data.val.cond.numpy(), atol=1e-6
    )
    assert_same_data(data, load_dataset(config))  # from the cache


# -------------------------------------------------------------------------------------- cache


def test_second_load_comes_from_the_cache(
    people_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = csv_config(people_csv, tmp_path, conditional=True, condition_column="job")
    first = load_dataset(config)
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == [cache.ARRAYS_FILE, cache.META_FILE]

    def fail(config: DataConfig, path: Path | None = None) -> object:
        raise AssertionError("the reader must not run on a cache hit")

    monkeypatch.setattr(readers, "read_data", fail)
    second = load_dataset(config)
    assert_same_data(first, second)
    assert isinstance(second.train, Split) and second.train.cond is not None
    pd.testing.assert_frame_equal(
        first.transform.inverse_transform(first.test.x.numpy(), first.test.cond.numpy()),
        second.transform.inverse_transform(second.test.x.numpy(), second.test.cond.numpy()),
    )
    # use_cache / cache_dir are not part of the key; the rest of the config is.
    assert cache.cache_key(config, ["h"]) == cache.cache_key(
        csv_config(
            people_csv,
            tmp_path / "elsewhere",
            use_cache=False,
            conditional=True,
            condition_column="job",
        ),
        ["h"],
    )
    assert cache.cache_key(config, ["h"]) != cache.cache_key(
        csv_config(people_csv, tmp_path), ["h"]
    )


def test_cache_dir_from_the_environment(
    people_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    config = csv_config(people_csv, tmp_path, cache_dir=None)
    assert cache.cache_root(config) == tmp_path / "env-cache"
    load_dataset(config)
    assert len(list((tmp_path / "env-cache").iterdir())) == 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate_arrays", "does not match the hash"),
        ("garbage_meta", "is invalid"),
        ("stale_meta", "stale entry"),
    ],
)
def test_corrupt_cache_entries_are_rebuilt(
    people_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
    message: str,
) -> None:
    config = csv_config(people_csv, tmp_path)
    first = load_dataset(config)
    (entry,) = (tmp_path / "cache").iterdir()
    arrays, meta = entry / cache.ARRAYS_FILE, entry / cache.META_FILE
    if damage == "truncate_arrays":
        arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    elif damage == "garbage_meta":
        meta.write_text("{not json", encoding="utf-8")
    else:
        document = json.loads(meta.read_text(encoding="utf-8"))
        document["format_version"] = -1
        meta.write_text(json.dumps(document), encoding="utf-8")
    calls = count_reads(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        rebuilt = load_dataset(config)
    assert len(calls) == 1
    assert str(entry) in caplog.text and message in caplog.text
    assert_same_data(first, rebuilt)
    assert cache.read_entry(entry, entry.name) is not None  # rewritten and valid again
    assert len(calls) == 1


def test_a_changed_file_invalidates_the_cache(
    people_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = csv_config(people_csv, tmp_path)
    first = load_dataset(config)
    calls = count_reads(monkeypatch)
    load_dataset(config)
    assert calls == []
    write_people(people_csv, seed=5)
    changed = load_dataset(config)
    assert len(calls) == 1
    assert changed.source_hash != first.source_hash
    assert not torch.equal(changed.train.x, first.train.x)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_cache_entries_are_byte_identical_across_writers(people_csv: Path, tmp_path: Path) -> None:
    config = csv_config(people_csv, tmp_path)
    load_dataset(config)
    (entry,) = (tmp_path / "cache").iterdir()
    first = (entry / cache.ARRAYS_FILE).read_bytes()
    (entry / cache.META_FILE).unlink()  # a half-written entry: a miss, rebuilt
    load_dataset(config)
    assert (entry / cache.ARRAYS_FILE).read_bytes() == first


def test_concurrent_loads_share_one_valid_entry(people_csv: Path, tmp_path: Path) -> None:
    config = csv_config(people_csv, tmp_path)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: load_dataset(config), range(4)))
    for other in results[1:]:
        assert_same_data(results[0], other)
    (entry,) = (tmp_path / "cache").iterdir()
    assert cache.read_entry(entry, entry.name) is not None
    assert not [p for p in entry.iterdir() if p.name.endswith(".tmp")]


def test_frf_excel_cache_key_covers_every_frf_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = SyntheticFrfConfig(num_points=10, num_frequencies=8)
    write_frf_excel(simulate_plate_frf(plate), tmp_path / "plate")
    config = DataConfig(path=str(tmp_path / "plate"), cache_dir=str(tmp_path / "cache"))
    files = cache.input_files(config)
    assert len(files) == 11  # coordinates.xlsx + one FRF file per point
    first = load_dataset(config)
    assert first.schema.kind == "signal"
    calls = count_reads(monkeypatch)
    load_dataset(config)
    assert calls == []
    other = simulate_plate_frf(SyntheticFrfConfig(num_points=10, num_frequencies=8, seed=1))
    write_frf_excel(other, tmp_path / "other")
    (tmp_path / "plate/frf/point_0003.xlsx").write_bytes(
        (tmp_path / "other/frf/point_0003.xlsx").read_bytes()
    )
    changed = load_dataset(config)
    assert len(calls) == 1 and changed.source_hash != first.source_hash
