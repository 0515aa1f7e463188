"""Export bundles from small real sweeps, then load and sample them (also in fresh processes)."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from matplotlib.image import imread

from gan_hpc import cli
from gan_hpc.bundle.load import (
    BUNDLE_FORMAT_VERSION,
    CONFIG_FILE,
    METRICS_FILE,
    PROGRAM_FILE,
    TRANSFORM_FILE,
    WEIGHTS_FILE,
    SampleGenerator,
    SignalSamples,
    describe_bundle,
    load_generator,
)
from gan_hpc.bundle.sampling import arff_text, write_samples
from gan_hpc.config import DataConfig, ModelConfig
from gan_hpc.data.readers import read_data
from gan_hpc.data.transform import TabularTransform
from gan_hpc.data.types import ColumnInfo, Table
from gan_hpc.errors import CheckpointError, DataError, SpecError, SweepError
from gan_hpc.sweep.directory import TRIALS_DIR, write_spec
from gan_hpc.sweep.export import export_sweep, export_trial
from gan_hpc.sweep.spec import sweep_spec_from_dict, trial_config_for
from gan_hpc.trial.checkpoint import load_checkpoint
from gan_hpc.trial.train import train_trial

NUM_ROWS = 200
BUNDLE_FILES = {
    "config.json",
    "generator.safetensors",
    "transform.json",
    "metrics.json",
    "README.md",
    "samples.png",
    "generator.pt2",
}
TINY_MODEL = {
    "latent_dim": 8,
    "generator": {"depth": 1, "width": 16},
    "discriminator": {"depth": 1, "width": 16},
}
CLI_SCRIPT = """
import sys
from gan_hpc import cli
sys.exit(cli.main(sys.argv[1:]))
"""


# ----------------------------------------------------------------------------------- fixtures


def write_people(path: Path) -> Path:
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "age": rng.integers(18, 80, NUM_ROWS),
            "balance": np.round(rng.normal(1000.0, 300.0, NUM_ROWS), 2),
            "job": rng.choice(["admin", "blue-collar", "technician"], NUM_ROWS),
            "y": rng.choice(["no", "yes"], NUM_ROWS, p=[0.7, 0.3]),
        }
    ).to_csv(path, index=False)
    return path


def write_images(path: Path) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    images = (rng.integers(0, 60, (60, 1, 8, 8)) + labels[:, None, None, None] * 90).astype(
        np.uint8
    )
    np.savez(path, images=images, labels=labels)
    return path


def make_sweep(root: Path, name: str, base: dict, search: dict, points: list[dict]) -> Path:
    """A sweep directory as `gan-hpc sweep run` leaves it, trained without Ray."""
    document = {
        "name": name,
        "base": {
            "model": TINY_MODEL,
            "train": {"batch_size": 16, "num_steps": 10, "eval_every_steps": 5},
            **base,
        },
        "search": search,
        "tune": {"grace_period_steps": 5},
        "ranking": {"num_eval_samples": 32},
    }
    spec = sweep_spec_from_dict(document, source=f"{name}.yaml")
    sweep = root / name
    write_spec(sweep, spec)
    for index, point in enumerate(points):
        train_trial(trial_config_for(spec, point), sweep / TRIALS_DIR / f"trial_{index:04d}")
    return sweep


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweeps")
    people = write_people(root / "people.csv")
    images = write_images(root / "images.npz")
    no_cache = {"use_cache": False}  # never the user's ~/.cache
    return {
        "people": people,
        "tabular": make_sweep(
            root,
            "people",
            {"data": {"format": "csv", "path": str(people), "condition_column": "y", **no_cache}},
            {"data.conditional": {"choice": [True, False]}},
            [{"data.conditional": True}, {"data.conditional": False}],
        ),
        "signal": make_sweep(
            root,
            "plate",
            {
                "data": {
                    "format": "synthetic_frf",
                    "conditional": True,
                    "synthetic": {"num_points": 64, "num_frequencies": 32},
                    **no_cache,
                }
            },
            {"optim.generator.lr": {"loguniform": [1e-4, 1e-3]}},
            [{"optim.generator.lr": 2e-4}],
        ),
        "image": make_sweep(
            root,
            "digits",
            {
                "data": {"format": "npz", "path": str(images), "conditional": True, **no_cache},
                "model": {**TINY_MODEL, "family": "dcgan", "generator": {"depth": 2, "width": 8}},
            },
            {"optim.generator.lr": {"loguniform": [1e-4, 1e-3]}},
            [{"optim.generator.lr": 2e-4}],
        ),
    }


@pytest.fixture(scope="module")
def exports(sweeps: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("exports")
    found: dict[str, Any] = {}
    for kind in ("tabular", "signal", "image"):
        found[kind] = export_sweep(sweeps[kind], root / kind, top_k=2, use_torch_export=True)
    found["root"] = root
    return found


def tabular_bundle(exports: dict[str, Any], *, conditional: bool) -> Path:
    for bundle in exports["tabular"]:
        config = json.loads((bundle / METRICS_FILE).read_text())["config"]
        if config["data"]["conditional"] is conditional:
            return bundle
    raise AssertionError("no such bundle")


@pytest.fixture
def gan_hpc_main(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    """`cli.main`, which lists the export and sample commands."""
    assert "export" in cli.COMMANDS and "sample" in cli.COMMANDS
    return cli.main


def run_cli_process(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI_SCRIPT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# ------------------------------------------------------------------------------------ export


def test_export_writes_bundles_and_leaderboard(exports: dict[str, Any]) -> None:
    bundles = exports["tabular"]
    assert [b.name for b in bundles] == [f"01-{bundles[0].name[3:]}", f"02-{bundles[1].name[3:]}"]
    board = pd.read_csv(exports["root"] / "tabular" / "leaderboard.csv")
    assert list(board["bundle"]) == [b.name for b in bundles]
    assert list(board["rank"]) == [1, 2]
    for kind in ("tabular", "signal", "image"):
        for bundle in exports[kind]:
            assert {p.name for p in bundle.iterdir()} == BUNDLE_FILES
            card = (bundle / "README.md").read_text()
            info = json.loads((bundle / METRICS_FILE).read_text())
            assert "![samples](samples.png)" in card and f"step {info['step']}" in card
            assert "next to real samples" in card
            assert imread(bundle / "samples.png").ndim == 3
    assert not list(exports["root"].rglob(".*"))  # no temporary folders left behind


def test_bundle_weights_are_the_checkpoints_ema_weights(
    exports: dict[str, Any], sweeps: dict[str, Path]
) -> None:
    bundle = tabular_bundle(exports, conditional=True)
    info = json.loads((bundle / METRICS_FILE).read_text())
    trial = sweeps["tabular"] / TRIALS_DIR / info["trial_id"]
    state = load_checkpoint(trial / info["checkpoint_file"])
    weights = safetensors.torch.load_file(bundle / WEIGHTS_FILE)
    assert info["weights"] == "ema" and state["ema"] is not None
    assert set(weights) == set(state["ema"]["module"])
    assert not any(key.startswith("module.") for key in weights)
    for key, tensor in state["ema"]["module"].items():
        assert torch.equal(weights[key], tensor), key
    data = json.loads((trial / "data.json").read_text())
    assert json.loads((bundle / TRANSFORM_FILE).read_text()) == data["transform"]
    assert info["data"]["source_hash"] == data["source_hash"]
    assert info["seed"] == 0 and info["config"]["data"]["conditional"] is True
    assert info["versions"]["torch"] == torch.__version__
    config = json.loads((bundle / CONFIG_FILE).read_text())
    assert config["format_version"] == BUNDLE_FORMAT_VERSION
    assert config["condition"] == {
        "kind": "class",
        "key": "y",
        "names": ["no", "yes"],
        "frequencies": config["schema"]["condition"]["frequencies"],
    }
    assert config["latent"] == {"dim": 8, "distribution": "normal"}
    columns = {c["name"]: c for c in config["output"]["data"]["columns"]}
    assert columns["age"]["dtype"] == "int64" and columns["job"]["kind"] == "categorical"


def test_a_recoded_column_names_its_parent_in_the_bundle_config() -> None:
    grade = np.repeat(["low", "mid", "high"], 20)
    frame = pd.DataFrame({"grade": pd.Categorical(grade), "points": np.repeat([1.0, 2.0, 3.0], 20)})
    table = Table(
        frame=frame,
        columns=(ColumnInfo("grade", "categorical"), ColumnInfo("points", "numeric")),
        source="grades.csv",
    )
    transform = TabularTransform.fit(table, DataConfig(path="grades.csv"))
    described = describe_bundle(ModelConfig(), transform.schema, transform)
    columns = {c["name"]: c for c in described["output"]["data"]["columns"]}
    assert columns["points"]["decoded_from"] == "grade"
    assert "decoded_from" not in columns["grade"]
    assert described["output"]["sample_shape"] == [3]  # grade's one-hot alone


def test_metrics_come_from_the_exported_checkpoint_only(
    sweeps: dict[str, Path], tmp_path: Path
) -> None:
    best = export_sweep(sweeps["tabular"], tmp_path / "best", top_k=2, checkpoint="best")
    last = export_sweep(sweeps["tabular"], tmp_path / "last", top_k=2, checkpoint="last")
    differing = 0
    for which, bundles in (("best", best), ("last", last)):
        for bundle in bundles:
            info = json.loads((bundle / METRICS_FILE).read_text())
            result = json.loads(
                (sweeps["tabular"] / TRIALS_DIR / info["trial_id"] / "result.json").read_text()
            )
            assert info["checkpoint"] == which
            assert info["step"] == result[which]["step"]
            assert info["metrics"] == pytest.approx(result[which]["metrics"], nan_ok=True)
            assert info["ranking"]["score_value"] == result[which]["metrics"]["d_loss_gap"]
            if result["best"]["step"] != result["last"]["step"]:
                other = "last" if which == "best" else "best"
                assert info["metrics"] != result[other]["metrics"]
                differing += 1
    assert differing > 0  # the seeded tiny runs peak before their last evaluation
    board = pd.read_csv(tmp_path / "last" / "leaderboard.csv")
    assert set(board["checkpoint"]) == {"last"} and set(board["step"]) == {10}


def test_export_ranks_by_another_metric(sweeps: dict[str, Path], tmp_path: Path) -> None:
    (bundle,) = export_sweep(sweeps["tabular"], tmp_path / "x", top_k=1, by="fooling_rate")
    chosen = json.loads((bundle / METRICS_FILE).read_text())
    rates = {}
    for trial in (sweeps["tabular"] / TRIALS_DIR).iterdir():
        best = json.loads((trial / "result.json").read_text())["best"]["metrics"]
        rates[trial.name] = (best["converged"], best["fooling_rate"])
    assert rates[chosen["trial_id"]] == max(rates.values())  # gate first, then max fooling rate
    assert chosen["ranking"]["score"] == "fooling_rate" and chosen["ranking"]["score_mode"] == "max"
    with pytest.raises(SweepError, match=r"--by 'fooling_rat'.*did you mean 'fooling_rate'"):
        export_sweep(sweeps["tabular"], tmp_path / "y", by="fooling_rat")
    with pytest.raises(SpecError, match="--mode: only with --by"):
        export_sweep(sweeps["tabular"], tmp_path / "y", mode="max")


def test_export_refuses_to_overwrite_without_force(
    sweeps: dict[str, Path],
    tmp_path: Path,
    gan_hpc_main: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    argv = ["export", str(sweeps["signal"]), "--top", "1", "--out", str(out)]
    assert gan_hpc_main(argv) == 0
    (bundle,) = [path for path in out.iterdir() if path.is_dir()]
    assert capsys.readouterr().out.strip() == str(bundle)
    (bundle / "marker").write_text("old")
    assert gan_hpc_main(argv) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert (bundle / "marker").exists()
    assert gan_hpc_main([*argv, "--force", "--checkpoint", "last"]) == 0
    assert not (bundle / "marker").exists()
    assert json.loads((bundle / METRICS_FILE).read_text())["checkpoint"] == "last"
    assert sorted(p.name for p in out.iterdir()) == [bundle.name, "leaderboard.csv"]


def test_model_card_without_real_data(
    sweeps: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(config: DataConfig) -> None:
        raise DataError(f"{config.path}: file not found")

    monkeypatch.setattr("gan_hpc.bundle.model_card.load_dataset", unreachable)
    for kind in ("tabular", "signal", "image"):
        trial = next((sweeps[kind] / TRIALS_DIR).iterdir())
        bundle = export_trial(trial, tmp_path / kind)
        card = (bundle / "README.md").read_text()
        assert "Real data was not reachable" in card and "samples are shown alone" in card
        assert imread(bundle / "samples.png").ndim == 3
        assert not (bundle / PROGRAM_FILE).exists()  # only with use_torch_export


# ----------------------------------------------------------------------------------- tabular


def test_tabular_samples_follow_the_training_schema(
    exports: dict[str, Any], sweeps: dict[str, Path]
) -> None:
    training = read_data(DataConfig(format="csv", path=str(sweeps["people"])))
    original = pd.read_csv(sweeps["people"])
    for conditional in (True, False):
        generator = load_generator(tabular_bundle(exports, conditional=conditional))
        frame = generator.sample(400, seed=7)
        assert isinstance(frame, pd.DataFrame) and len(frame) == 400
        assert list(frame.columns) == list(original.columns)
        assert frame["age"].dtype == np.int64 and frame["balance"].dtype == np.float64
        for info in training.columns:
            if info.kind == "categorical":
                assert tuple(frame[info.name].cat.categories) == info.categories
            else:
                low, high = original[info.name].min(), original[info.name].max()
                assert frame[info.name].between(low, high).all()
        pd.testing.assert_frame_equal(frame, generator.sample(400, seed=7))
        assert not frame.equals(generator.sample(400, seed=8))
    generator = load_generator(tabular_bundle(exports, conditional=True))
    assert set(generator.sample(50, condition="yes", seed=0)["y"]) == {"yes"}
    assert set(generator.sample(50, condition={"y": "no"}, seed=0)["y"]) == {"no"}
    with pytest.raises(SpecError, match=r"y='yse' is not a class.*did you mean 'yes'"):
        generator.sample(5, condition="yse")
    with pytest.raises(SpecError, match="unconditional"):
        load_generator(tabular_bundle(exports, conditional=False)).sample(5, condition="yes")


def test_sampling_in_fresh_processes_is_reproducible(
    exports: dict[str, Any], sweeps: dict[str, Path], tmp_path: Path
) -> None:
    bundle = tabular_bundle(exports, conditional=True)
    done = run_cli_process("sample", bundle, "-n", 300, "--seed", 1, "--out", tmp_path / "a.csv")
    assert done.returncode == 0, done.stderr
    assert "(seed 1)" in done.stdout
    samples, original = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(sweeps["people"])
    assert list(samples.columns) == list(original.columns)
    assert dict(samples.dtypes) == dict(original.dtypes)
    assert set(samples["job"]) <= set(original["job"]) and set(samples["y"]) <= {"no", "yes"}
    # The Python API in another fresh process gives the same rows; `import gan_hpc` is light.
    script = (
        "import sys, gan_hpc; assert 'torch' not in sys.modules; "
        f"g = gan_hpc.load_generator({str(bundle)!r}); "
        "print(g.sample(300, seed=1).to_csv(index=False), end='')"
    )
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == (tmp_path / "a.csv").read_text()
    assert fresh.stdout == load_generator(bundle).sample(300, seed=1).to_csv(index=False)


def test_sample_cli_writes_arff_with_the_training_attributes(
    exports: dict[str, Any],
    sweeps: dict[str, Path],
    tmp_path: Path,
    gan_hpc_main: Callable[[list[str]], int],
) -> None:
    bundle = tabular_bundle(exports, conditional=True)
    out = tmp_path / "rows.arff"
    argv = ["sample", str(bundle), "-n", "200", "--seed", "3", "--condition", "y=yes"]
    assert gan_hpc_main([*argv, "--out", str(out)]) == 0
    table = read_data(DataConfig(format="arff", path=str(out)))
    training = read_data(DataConfig(format="csv", path=str(sweeps["people"])))
    assert table.columns == training.columns  # names, kinds and nominal values in order
    assert set(table.frame["y"]) == {"yes"} and len(table.frame) == 200
    expected = load_generator(bundle).sample(200, condition="yes", seed=3)
    np.testing.assert_allclose(table.frame["balance"], expected["balance"], rtol=1e-9)
    assert gan_hpc_main([*argv, "--out", str(tmp_path / "rows.xlsx")]) == 2


def test_arff_text_declares_dates_nominals_and_missing_values(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime(["2020-01-01 10:00", "2021-05-03 12:30", "2022-07-04 00:00"]),
            "job": pd.Categorical(["a", None, "a b"], categories=["a", "a b", "c"]),
            "x": [1.5, 2.0, 4.0],
        }
    )
    columns = (
        ColumnInfo("when", "date"),
        ColumnInfo("job", "categorical", ("a", "a b", "c")),
        ColumnInfo("x", "numeric"),
    )
    table = Table(frame=frame, columns=columns, source="t")
    transform = TabularTransform.fit(table, DataConfig(format="csv", path="t.csv"))
    encoded = transform.transform(table)
    rows = transform.inverse_transform(encoded.x, encoded.cond)
    (tmp_path / "t.arff").write_text(arff_text(rows, transform, relation="t"))
    back = read_data(DataConfig(format="arff", path=str(tmp_path / "t.arff")))
    assert back.columns == columns
    pd.testing.assert_frame_equal(back.frame, frame, check_dtype=False)
    assert "?" in (tmp_path / "t.arff").read_text().split("@DATA")[1]


# ---------------------------------------------------------------------------- signals, images


def test_frf_samples_honour_conditions(
    exports: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (bundle,) = exports["signal"]
    generator = load_generator(bundle)
    assert generator.condition is not None
    (x_low, x_high), (y_low, y_high) = generator.condition.ranges
    curves = generator.sample(6, condition={"x_m": 0.2}, seed=0)
    assert isinstance(curves, SignalSamples) and curves.values.shape == (6, 1, 32)
    assert curves.axis_name == "frequency_hz" and curves.channel_names == ("log_magnitude",)
    assert curves.axis.min() >= 5.0 and curves.axis.max() <= 400.0
    assert curves.conditions is not None
    np.testing.assert_allclose(curves.conditions["x_m"], 0.2, atol=1e-6)
    assert curves.conditions["y_m"].between(y_low, y_high).all()
    free = generator.sample(50, seed=1)
    assert isinstance(free, SignalSamples) and free.conditions is not None
    assert free.conditions["x_m"].between(x_low - 1e-6, x_high + 1e-6).all()
    frame = curves.to_frame()
    assert list(frame.columns) == ["sample", "x_m", "y_m", "frequency_hz", "log_magnitude"]
    assert len(frame) == 6 * 32
    np.testing.assert_array_equal(frame["log_magnitude"], curves.values[:, 0].reshape(-1))
    write_samples(generator, tmp_path / "c.csv", 4, condition={"x_m": "0.3", "y_m": 0.1}, seed=0)
    written = pd.read_csv(tmp_path / "c.csv")
    assert len(written) == 4 * 32
    np.testing.assert_allclose(written["x_m"], 0.3, atol=1e-6)
    with pytest.raises(SpecError, match=r"unknown coordinate 'x'.*valid: x_m, y_m"):
        generator.sample(2, condition={"x": 0.1})
    with caplog.at_level(logging.WARNING, logger="gan_hpc"):
        generator.sample(2, condition={"x_m": x_high + 1.0}, seed=0)
    assert "outside the training range" in caplog.text


def test_image_samples_are_pixels_with_labels(
    exports: dict[str, Any], tmp_path: Path, gan_hpc_main: Callable[[list[str]], int]
) -> None:
    bundle = exports["image"][0]
    generator = load_generator(bundle)
    images = generator.sample(10, condition=2, seed=0)
    assert isinstance(images, np.ndarray) and images.shape == (10, 1, 8, 8)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, generator.sample(10, condition="2", seed=0))
    argv = ["sample", str(bundle), "-n", "12", "--seed", "0", "--condition", "label=1"]
    assert gan_hpc_main([*argv, "--out", str(tmp_path / "g.npz")]) == 0
    with np.load(tmp_path / "g.npz", allow_pickle=False) as archive:
        assert archive["images"].shape == (12, 1, 8, 8) and archive["images"].dtype == np.uint8
        assert set(archive["labels"]) == {1}
        assert list(archive["label_names"]) == ["0", "1", "2"]
    assert gan_hpc_main([*argv, "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exported_programs_match_the_python_sampler(
    exports: dict[str, Any], tmp_path: Path
) -> None:
    bundles = [*exports["tabular"], *exports["signal"], *exports["image"]]
    inputs, expected = {}, {}
    for index, bundle in enumerate(bundles):
        draw = load_generator(bundle).draw(16, seed=5)
        inputs[f"z{index}"] = draw.z.numpy()
        if draw.cond is not None:
            inputs[f"cond{index}"] = draw.cond.numpy()
        expected[index] = draw.x.numpy()
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = f"""
import sys, numpy as np, torch
inputs = np.load({str(tmp_path / "inputs.npz")!r})
outputs = {{}}
for index, path in enumerate({[str(b / PROGRAM_FILE) for b in bundles]!r}):
    args = [torch.from_numpy(inputs[f"z{{index}}"])]
    if f"cond{{index}}" in inputs:
        args.append(torch.from_numpy(inputs[f"cond{{index}}"]))
    outputs[str(index)] = torch.export.load(path).module()(*args).detach().numpy()
np.savez({str(tmp_path / "outputs.npz")!r}, **outputs)
assert not any(name.startswith("gan_hpc") for name in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "outputs.npz") as outputs:
        for index, x in expected.items():
            np.testing.assert_allclose(outputs[str(index)], x, atol=1e-5)


# ---------------------------------------------------------------------------- broken bundles


def _update_checksum(bundle: Path, name: str) -> None:
    config = json.loads((bundle / CONFIG_FILE).read_text())
    config["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / CONFIG_FILE).write_text(json.dumps(config))


def _edit_config(bundle: Path, edit: Callable[[dict], None]) -> None:
    config = json.loads((bundle / CONFIG_FILE).read_text())
    edit(config)
    (bundle / CONFIG_FILE).write_text(json.dumps(config))


class _Payload:
    """Unpickling this would create a file: proof that loading never unpickles."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def _truncate(bundle: Path) -> None:
    data = (bundle / WEIGHTS_FILE).read_bytes()
    (bundle / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def _flip_byte(bundle: Path) -> None:
    data = bytearray((bundle / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0xFF
    (bundle / WEIGHTS_FILE).write_bytes(bytes(data))


def _truncate_consistently(bundle: Path) -> None:
    _truncate(bundle)
    _update_checksum(bundle, WEIGHTS_FILE)


def _newer_format(bundle: Path) -> None:
    _edit_config(bundle, lambda c: c.update(format_version=BUNDLE_FORMAT_VERSION + 1))


def _wider_latent(bundle: Path) -> None:
    def edit(config: dict) -> None:
        config["model"]["latent_dim"] = 9
        config["latent"]["dim"] = 9

    _edit_config(bundle, edit)


def _pickle_instead(bundle: Path) -> None:
    (bundle / WEIGHTS_FILE).write_bytes(pickle.dumps(_Payload(bundle / "pwned")))
    _update_checksum(bundle, WEIGHTS_FILE)


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (_truncate, r"generator\.safetensors: content does not match its SHA-256"),
    "flipped byte": (_flip_byte, r"generator\.safetensors: content does not match its SHA-256"),
    "truncated, checksum updated": (
        _truncate_consistently,
        r"generator\.safetensors: not a valid safetensors file .*truncated or corrupt",
    ),
    "pickle": (_pickle_instead, r"generator\.safetensors: not a valid safetensors file"),
    "newer format": (_newer_format, r"config\.json: bundle format 2 is newer .*upgrade gan-hpc"),
    "missing transform": (
        lambda b: (b / TRANSFORM_FILE).unlink(),
        r"transform\.json: missing from the bundle",
    ),
    "edited latent": (
        lambda b: _edit_config(b, lambda c: c["latent"].update(dim=9)),
        r"config\.json: 'latent' disagrees",
    ),
    "shapes": (_wider_latent, r"weights do not fit the architecture.*needs \[16, 25\]"),
    "not json": (
        lambda b: (b / CONFIG_FILE).write_text("{"),
        r"config\.json: not valid JSON",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_bundles_give_one_line_errors(
    case: str,
    exports: dict[str, Any],
    tmp_path: Path,
    gan_hpc_main: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    breaker, message = BROKEN[case]
    bundle = shutil.copytree(tabular_bundle(exports, conditional=True), tmp_path / "bundle")
    load_generator(bundle)  # intact
    breaker(bundle)
    with pytest.raises(CheckpointError, match=message) as raised:
        load_generator(bundle)
    assert "\n" not in str(raised.value)
    assert gan_hpc_main(["sample", str(bundle), "-n", "3", "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gan-hpc: error: ") and "\n" not in err
    assert not (tmp_path / "s.csv").exists()
    assert not (bundle / "pwned").exists()


def test_sample_generator_is_what_load_generator_returns(exports: dict[str, Any]) -> None:
    import gan_hpc

    generator = gan_hpc.load_generator(exports["image"][0])
    assert isinstance(generator, SampleGenerator) and gan_hpc.SampleGenerator is SampleGenerator
    assert "load_generator" in gan_hpc.__all__
    with pytest.raises(SpecError, match="positive int"):
        generator.sample(0)


def test_ranking_by_another_metric_keeps_the_split_for_quality_metrics_only(
    tmp_path: Path,
) -> None:
    from gan_hpc.config import ConvergenceConfig
    from gan_hpc.sweep.directory import TrialRecord
    from gan_hpc.sweep.export import _ranking
    from gan_hpc.trial_dir import CheckpointRecord

    tstr = "quality/ml_efficacy_tstr"
    spec_ranking = ConvergenceConfig(
        score=tstr,
        score_mode="max",
        score_split="validation",
        use_quality_at_evaluations=True,
        checkpoint_score="quality/tabular_score",
        checkpoint_score_mode="max",
    )
    record = CheckpointRecord(step=10, metrics={"fooling_rate": 0.5, "quality/detection_auc": 0.7})
    trial = TrialRecord(
        trial_id="t", path=tmp_path, state="finished", step=10, params={}, best=record, last=record
    )
    by_rate = _ranking(spec_ranking, "fooling_rate", None, [trial], tmp_path)
    assert (by_rate.score, by_rate.score_mode, by_rate.score_split) == (
        "fooling_rate",
        "max",
        "test",
    )
    by_auc = _ranking(spec_ranking, "quality/detection_auc", None, [trial], tmp_path)
    assert by_auc.score_split == "validation"
