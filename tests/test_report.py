"""`gan-hpc sweep report`: one self-contained HTML page from a sweep's trial directories."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from gan_hpc.cli import main
from gan_hpc.files import atomic_write_json
from gan_hpc.sweep.directory import TRIALS_DIR, write_spec
from gan_hpc.sweep.report import build_report
from gan_hpc.sweep.spec import sweep_spec_from_dict, trial_config_for
from gan_hpc.trial.train import train_trial
from tests.test_export import TINY_MODEL, write_people
from tests.test_rank import SPEC_DOCUMENT, make_trial, metrics

PNG = re.compile(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tabular sweep: three tiny trained trials and a real-data baseline row."""
    root = tmp_path_factory.mktemp("report")
    people = write_people(root / "people.csv")
    document = {
        "name": "people",
        "base": {
            "data": {"format": "csv", "path": str(people), "use_cache": False},
            "model": TINY_MODEL,
            "train": {"batch_size": 16, "num_steps": 10, "eval_every_steps": 5},
            "quality": {"num_rows": 100},
        },
        "search": {
            "loss.name": {"choice": ["bce_logits", "hinge"]},
            "optim.generator.lr": {"loguniform": [1e-4, 1e-3]},
        },
        "tune": {"grace_period_steps": 5},
        "ranking": {"num_eval_samples": 32},
    }
    spec = sweep_spec_from_dict(document, source="people.yaml")
    sweep = root / "people"
    write_spec(sweep, spec)
    for index, (loss, lr) in enumerate((("hinge", 3e-4), ("bce_logits", 1e-3), ("hinge", 1e-4))):
        point = {"loss.name": loss, "optim.generator.lr": lr}
        train_trial(trial_config_for(spec, point), sweep / TRIALS_DIR / f"trial_{index:04d}")
    real = {"quality/tabular_score": 0.9, "quality/detection_auc": 0.5}
    atomic_write_json(sweep / "baselines.json", {"reports": {"real_data": {"metrics": real}}})
    return sweep


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_report_of_a_finished_sweep(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(sweep)
    out = tmp_path / "report.html"
    assert main(["sweep", "report", str(sweep), "--out", str(out), "--top", "2"]) == 0
    assert snapshot(sweep) == before  # nothing written into the sweep
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: ") and "figures, built in" in printed
    page = out.read_text()
    for heading in ("Leaderboard", "Optimisation history", "Parameter importances", "Top 2"):
        assert f"<h2>{heading}" in page
    assert "baseline:real_data" in page and "ranked by" in page
    figures = PNG.findall(page)
    alts = [alt for alt, _ in figures]
    assert alts.count("curves figure") == 2 and alts.count("samples figure") == 2
    assert {"history figure", "parameter importances", "parallel figure", "slice figure"} <= set(
        alts
    )
    for _, data in figures:  # every figure is a real PNG
        picture = tmp_path / "figure.png"
        picture.write_bytes(base64.b64decode(data))
        assert imread(picture).shape[0] > 100
    assert 'src="http' not in page and "<script" not in page  # self-contained


def test_default_output_is_in_the_sweep(sweep: Path, tmp_path: Path) -> None:
    copy = tmp_path / "people"
    shutil.copytree(sweep, copy)
    before = snapshot(copy)
    assert main(["sweep", "report", str(copy), "--no-samples"]) == 0
    after = snapshot(copy)
    assert set(after) - set(before) == {"report.html"}
    assert all(after[name] == before[name] for name in before)
    assert "samples figure" not in (copy / "report.html").read_text()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_report_of_an_interrupted_sweep(tmp_path: Path) -> None:
    spec = sweep_spec_from_dict(SPEC_DOCUMENT, source="toy.yaml")
    write_spec(tmp_path, spec)
    config = trial_config_for(spec, {"loss.name": "hinge", "optim.generator.lr": 1e-4})
    make_trial(tmp_path, "a", config=config, evaluations=[(100, metrics(0.9, 0.5, 0.2))])
    make_trial(tmp_path, "b", config=config)  # pending: no evaluation
    page = build_report(tmp_path, top_k=3).to_html()
    assert "<h2>Top 1 trials" in page and "a (running, step 100)" in page
    assert "No importances" in page  # a single scored trial
    assert "a: no samples" in page  # no checkpoint to sample from
    # a second scored trial: the figures are drawn; loss.clip_value (never sampled) is left out
    config = trial_config_for(spec, {"loss.name": "bce_logits", "optim.generator.lr": 1e-3})
    make_trial(tmp_path, "c", config=config, evaluations=[(200, metrics(0.9, 0.5, 0.1))])
    report = build_report(tmp_path, top_k=3)
    alts = [alt for alt, _ in PNG.findall(report.to_html())]
    assert {"history figure", "parallel figure", "slice figure"} <= set(alts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "nope: no such directory; give a sweep directory"),
        (["{sweep}", "--top", "0"], "--top: must be >= 1, got 0"),
        (["{sweep}", "--out", "{tmp}"], "is a directory; give a file such as report.html"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    write_spec(tmp_path / "s", sweep_spec_from_dict(SPEC_DOCUMENT, source="toy.yaml"))
    argv = [a.format(sweep=tmp_path / "s", tmp=tmp_path) for a in args]
    argv = [str(tmp_path / a) if a == "nope" else a for a in argv]
    assert main(["sweep", "report", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="chromium is not installed (apt-get install chromium)"
)
def test_the_page_renders_in_a_headless_browser(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["sweep", "report", str(sweep), "--out", str(out), "--top", "1"]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(_chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    picture = imread(shot)[..., :3]
    assert picture.shape[:2] == (2400, 1280)
    # figures are drawn: many pixels in matplotlib's colours, not just text on white
    blue = (abs(picture[..., 0] - 0.12) < 0.08) & (abs(picture[..., 2] - 0.71) < 0.08)
    assert blue.sum() > 500
