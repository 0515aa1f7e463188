"""Held-out quality of what a tabular sweep finds, beside a minimal GAN loop, ceiling and floor.

For each sweep seed, runs the shipped spec as shipped (``gan-hpc sweep run``, ``--set seed=S``),
exports every trial it ranked, samples as many rows as the test file has (16,281 for Adult)
from each bundle and scores them by one protocol:

- TSTR: scikit-learn's ``HistGradientBoostingClassifier`` (default settings) trained on the
  synthetic rows, macro-F1 and ROC-AUC on the whole held-out test table;
- detection: a GBM and a logistic regression telling real test rows from synthetic ones
  (3-fold cross-validated ROC-AUC; 0.5 = indistinguishable).

Rows printed, on the same split and budget:

- the leaderboard's top-1 (what a user exports) and the sweep's best trial by test TSTR;
- a minimal hand-written GAN loop (torch only, no gan_hpc model or trainer code): the issue's
  reference recipe, batches of 1,000, trained on as many rows as one trial of the spec's base
  (its steps times its batch): the limit to compare with;
- the ceiling (the real training rows) and the floor (each column sampled on its own).

It also reports how well the leaderboard found the winner: Kendall's tau between leaderboard
order and test TSTR over the sweep's trials, and the top-1's gap to the best trial.

    python bench/quality_adult.py [--dataset adult|bank] [--seeds 0 1 2] [--out DIR]
        [--trial-seeds 0 1 2 [--trial-set train.num_steps=1000 ...]]

Takes about 12 minutes per seed on 2 cores (the sweep, then ~10 s of scoring per trial).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, StandardScaler
from torch import nn

from gan_hpc import load_generator
from gan_hpc.bundle.scoring import real_tables
from gan_hpc.config import load_trial_config
from gan_hpc.data.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]
MINIMAL_BATCH = 1000  # the reference recipe's batch, whatever batch the spec trains at
DATASETS = {  # spec, target column, positive class
    "adult": (ROOT / "sweeps" / "adult_mlp.yaml", "class", ">50K"),
    "bank": (ROOT / "sweeps" / "bank_mlp.yaml", "y", "yes"),
}
MISSING = "?"


# ---------------------------------------------------------------------------- the protocol


def _as_model_frame(frames: list[pd.DataFrame], target: str | None) -> list[pd.DataFrame]:
    """Categoricals as pandas categories over the union of levels, numerics as floats."""
    out = [f.copy() for f in frames]
    categorical = [
        c for c in out[0].columns if c != target and not pd.api.types.is_numeric_dtype(out[0][c])
    ]
    for frame in out:
        for column in categorical:
            values = frame[column].astype(object)
            frame[column] = [MISSING if pd.isna(v) else str(v) for v in values]
    for column in categorical:
        levels = sorted(set().union(*(set(frame[column]) for frame in out)))
        for frame in out:
            frame[column] = pd.Categorical(frame[column], categories=levels)
    for frame in out:
        for column in frame.columns:
            if column != target and column not in categorical:
                frame[column] = frame[column].astype(float)
    return out


def _labels(series: pd.Series, positive: str) -> np.ndarray:
    return (series.astype(str).str.strip().str.rstrip(".") == positive).to_numpy(dtype=int)


def tstr(synthetic: pd.DataFrame, test: pd.DataFrame, target: str, positive: str) -> dict:
    """Train a default GBM on ``synthetic``, score macro-F1 and ROC-AUC on ``test``."""
    train_frame, test_frame = _as_model_frame([synthetic, test], target)
    y_train, y_test = _labels(train_frame[target], positive), _labels(test_frame[target], positive)
    if len(set(y_train)) < 2:
        return {"tstr_f1": math.nan, "tstr_auc": math.nan}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(train_frame.drop(columns=[target]), y_train)
    proba = model.predict_proba(test_frame.drop(columns=[target]))[:, 1]
    return {
        "tstr_f1": f1_score(y_test, (proba > 0.5).astype(int), average="macro"),
        "tstr_auc": roc_auc_score(y_test, proba),
    }


def detection(synthetic: pd.DataFrame, real: pd.DataFrame, seed: int = 0) -> dict:
    """Cross-validated AUC of a GBM and a logistic regression telling real from synthetic."""
    size = min(len(synthetic), len(real))
    # Three seeds, not one: sampling all n rows with the folds' seed permutes them exactly as
    # the folds are shuffled, so each fold became one contiguous stretch of the file. Bank's
    # rows are in call-date order, so every fold was other months and real-vs-real scored 0.18.
    synthetic_frame, real_frame = _as_model_frame(
        [synthetic.sample(size, random_state=seed + 1), real.sample(size, random_state=seed + 2)],
        None,
    )
    x = pd.concat([real_frame, synthetic_frame], ignore_index=True)
    y = np.r_[np.zeros(size), np.ones(size)]
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    gbm = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    gbm_proba = cross_val_predict(gbm, x, y, cv=folds, method="predict_proba")[:, 1]
    categorical = [c for c in x.columns if isinstance(x[c].dtype, pd.CategoricalDtype)]
    numeric = [c for c in x.columns if c not in categorical]
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("numeric", StandardScaler(), numeric),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    x_text = x.astype({c: str for c in categorical})
    logistic_proba = cross_val_predict(logistic, x_text, y, cv=folds, method="predict_proba")[:, 1]
    return {
        "detection_gbm": roc_auc_score(y, gbm_proba),
        "detection_logistic": roc_auc_score(y, logistic_proba),
    }


def score(synthetic: pd.DataFrame, real_test: pd.DataFrame, target: str, positive: str) -> dict:
    """Every figure of the protocol for one synthetic table."""
    columns = list(real_test.columns)
    synthetic = synthetic[columns]
    return {**tstr(synthetic, real_test, target, positive), **detection(synthetic, real_test)}


# ------------------------------------------------------------------- a minimal GAN, by hand


@dataclass
class _Encoded:
    x: torch.Tensor
    y: torch.Tensor
    blocks: list[tuple[str, str, int]]  # (column, "numeric" | "categorical", width)
    quantiles: dict[str, QuantileTransformer]
    levels: dict[str, list[str]]
    classes: list[str]


def _encode(train: pd.DataFrame, target: str, rng: np.random.Generator) -> _Encoded:
    """Dequantised quantile-normal numerics, one-hot categoricals, the target as class codes."""
    blocks, parts, quantiles, levels = [], [], {}, {}
    for column in train.columns:
        if column == target:
            continue
        series = train[column]
        if pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=float)
            values = np.where(np.isnan(values), np.nanmedian(values), values)
            values = values + rng.uniform(-0.5, 0.5, len(values))
            transformer = QuantileTransformer(
                output_distribution="normal", n_quantiles=1000, subsample=None
            ).fit(values[:, None])
            quantiles[column] = transformer
            parts.append(transformer.transform(values[:, None]))
            blocks.append((column, "numeric", 1))
        else:
            text = np.array([MISSING if pd.isna(v) else str(v) for v in series.astype(object)])
            levels[column] = sorted(set(text))
            parts.append((text[:, None] == np.array(levels[column])[None]).astype(float))
            blocks.append((column, "categorical", len(levels[column])))
    classes = sorted(train[target].astype(str).unique())
    codes = np.searchsorted(classes, train[target].astype(str))
    x = torch.tensor(np.hstack(parts), dtype=torch.float32)
    return _Encoded(x, torch.tensor(codes), blocks, quantiles, levels, classes)


class _Residual(nn.Module):
    def __init__(self, in_features: int, width: int) -> None:
        super().__init__()
        self.linear, self.norm = nn.Linear(in_features, width), nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.norm(self.linear(x))), x], dim=1)


class _Generator(nn.Module):
    def __init__(self, latent: int, classes: int, width: int, blocks: list) -> None:
        super().__init__()
        self.classes, self.blocks = classes, blocks
        first = latent + classes
        self.body = nn.Sequential(_Residual(first, width), _Residual(first + width, width))
        self.head = nn.Linear(first + 2 * width, sum(w for _, _, w in blocks))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(torch.cat([z, F.one_hot(y, self.classes).float()], 1)))
        parts, start = [], 0
        for _, kind, width in self.blocks:
            part = out[:, start : start + width]
            start += width
            hard = F.gumbel_softmax(part, tau=0.2, hard=True)
            parts.append(part if kind == "numeric" else hard)
        return torch.cat(parts, 1)


def minimal_gan(
    train: pd.DataFrame, target: str, *, seed: int, num_steps: int, batch: int, num_rows: int
) -> pd.DataFrame:
    """Train the issue's reference recipe by hand and return ``num_rows`` synthetic rows."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = _encode(train, target, rng)
    latent, width, num_classes = 128, 256, len(data.classes)
    frequencies = torch.bincount(data.y, minlength=num_classes).float()
    generator = _Generator(latent, num_classes, width, data.blocks)
    discriminator = nn.Sequential(
        nn.Linear(data.x.shape[1] + num_classes, width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, width),
        nn.LeakyReLU(0.2),
        nn.Linear(width, 1),
    )
    ema = copy.deepcopy(generator).eval()  # averaged with a warm-up, as gan-hpc does
    opt_g = torch.optim.Adam(generator.parameters(), 5e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(discriminator.parameters(), 5e-4, betas=(0.5, 0.9))
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def judge(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return discriminator(torch.cat([x, F.one_hot(y, num_classes).float()], 1))

    for step in range(num_steps):
        index = torch.randint(len(data.x), (batch,))
        real_x, real_y = data.x[index], data.y[index]
        with torch.no_grad():
            fake_x = generator(torch.randn(batch, latent), real_y)
        loss_d = F.binary_cross_entropy_with_logits(
            judge(real_x, real_y), ones
        ) + F.binary_cross_entropy_with_logits(judge(fake_x, real_y), zeros)
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        fake_y = torch.multinomial(frequencies, batch, replacement=True)
        loss_g = F.binary_cross_entropy_with_logits(
            judge(generator(torch.randn(batch, latent), fake_y), fake_y), ones
        )
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for averaged, live in zip(ema.parameters(), generator.parameters(), strict=True):
                averaged.lerp_(live, 1 - min(0.999, (1 + step) / (10 + step)))
            for averaged, live in zip(ema.buffers(), generator.buffers(), strict=True):
                averaged.copy_(live)
    with torch.no_grad():
        draw = torch.Generator().manual_seed(seed + 1)
        y = torch.multinomial(frequencies, num_rows, replacement=True, generator=draw)
        x = ema(torch.randn(num_rows, latent, generator=draw), y).numpy()
    columns, start = {}, 0
    for column, kind, width in data.blocks:
        part = x[:, start : start + width]
        start += width
        if kind == "numeric":
            values = data.quantiles[column].inverse_transform(part)[:, 0]
            low, high = train[column].min(), train[column].max()
            columns[column] = np.clip(np.round(values), low, high)
        else:
            chosen = np.array(data.levels[column])[part.argmax(1)]
            columns[column] = np.where(chosen == MISSING, None, chosen)
    columns[target] = np.array(data.classes)[y.numpy()]
    return pd.DataFrame(columns)[list(train.columns)]


def independent_columns(train: pd.DataFrame, num_rows: int, seed: int) -> pd.DataFrame:
    """The floor: every column drawn on its own from its training values."""
    return pd.DataFrame(
        {
            column: train[column].sample(num_rows, replace=True, random_state=seed + i).to_numpy()
            for i, column in enumerate(train.columns)
        }
    )


# ---------------------------------------------------------------------------- the sweep


def gan_hpc(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gan_hpc", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)


def run_sweep(spec: Path, out: Path, seed: int, data_overrides: list[str]) -> tuple[Path, float]:
    """Run the shipped spec with sweep seed ``seed``; return its directory and wall time.

    A finished sweep already in ``out`` (from an earlier run of this bench) is scored again
    instead of rerun; its wall time is then NaN.
    """
    finished = [p.parent for p in out.glob("*/leaderboard.csv")]
    if finished:
        return finished[0], math.nan
    started = time.perf_counter()
    sweep_dir = out / "sweep"
    gan_hpc(
        "sweep", "run", str(spec), "--out", str(sweep_dir), "--set", f"seed={seed}", *data_overrides
    )
    return sweep_dir, time.perf_counter() - started


def sweep_rows(sweep_dir: Path, real_test: pd.DataFrame, target: str, positive: str) -> list:
    """Export every ranked trial, sample a test file's worth of rows, score each."""
    board = json.loads(gan_hpc("sweep", "status", str(sweep_dir), "--format", "json").stdout)
    trials = [row for row in board if row.get("rank") is not None and row.get("step")]
    exports = sweep_dir.parent / "bench-exports"
    gan_hpc("export", str(sweep_dir), "--top", str(len(trials)), "--out", str(exports), "--force")
    rows = []
    for row in trials:
        bundle = next(exports.glob(f"*-{row['trial_id']}"))
        synthetic = load_generator(bundle).sample(len(real_test), seed=1)
        rows.append(
            {
                "trial_id": row["trial_id"],
                "rank": int(row["rank"]),
                "state": row["state"],
                **score(synthetic, real_test, target, positive),
            }
        )
    return rows


def training_seconds(records: list[dict], rows_per_step: int, up_to_step: int) -> float:
    """Seconds a trial spent in training steps up to ``up_to_step``, evaluations left out.

    Each evaluation record's ``samples_per_s`` is the rows trained per second since the one
    before it, timed around the steps only (a step trains ``rows_per_step`` rows: the batch
    times the discriminator steps); rows over that rate are the window's seconds.
    """
    seconds, previous_step = 0.0, 0
    for record in records:
        if record["step"] > up_to_step:
            break
        rows = (record["step"] - previous_step) * rows_per_step
        seconds += rows / record["samples_per_s"]
        previous_step = record["step"]
    return seconds


def single_trials(
    spec: Path,
    out: Path,
    seeds: list[int],
    overrides: list[str],
    real_test: pd.DataFrame,
    target: str,
    positive: str,
) -> list[dict]:
    """One trial of the spec's base recipe per training seed (``gan-hpc train``), scored."""
    from gan_hpc.sweep.export import export_trial

    rows = []
    for seed in seeds:
        trial_dir = out / f"trial-seed{seed}"
        started = time.perf_counter()
        gan_hpc(
            "train",
            str(spec),
            "--out",
            str(trial_dir),
            "--set",
            f"train.seed={seed}",
            "--set",
            "quality.use_at_trial_end=false",
            *overrides,
        )
        wall = time.perf_counter() - started
        records = [json.loads(line) for line in (trial_dir / "metrics.jsonl").open()]
        best_step = json.loads((trial_dir / "result.json").read_text())["best"]["step"]
        seconds_to_best = next(r["wall_time_s"] for r in records if r["step"] == best_step)
        config = json.loads((trial_dir / "config.json").read_text())
        rows_per_step = config["train"]["batch_size"] * config["loss"]["n_critic"]
        training_to_best = training_seconds(records, rows_per_step, best_step)
        # what `gan-hpc export TRIAL_DIR` gives: the checkpoint the spec's ranking picked
        bundle = export_trial(trial_dir, out / f"trial-seed{seed}-bundle", force=True)
        synthetic = load_generator(bundle).sample(len(real_test), seed=1)
        rows.append(
            {
                "label": f"one trial of the base recipe, seed {seed} (best checkpoint: step "
                f"{best_step} of {records[-1]['step']}, {seconds_to_best:.0f} s into the trial, "
                f"{training_to_best:.0f} s of it training)",
                "wall_s": wall,
                **score(synthetic, real_test, target, positive),
            }
        )
    return rows


# ---------------------------------------------------------------------------- the report


def _table(rows: list[dict]) -> str:
    header = "| row | TSTR macro-F1 | TSTR ROC-AUC | GBM detection | logistic detection | wall s |"
    lines = [header, "|---|---|---|---|---|---|"]
    for row in rows:
        cells = [
            f"{row[k]:.3f}" if isinstance(row.get(k), float) and not math.isnan(row[k]) else "—"
            for k in ("tstr_f1", "tstr_auc", "detection_gbm", "detection_logistic")
        ]
        seconds = row.get("wall_s")
        wall = "—" if seconds is None or math.isnan(seconds) else f"{seconds:.0f}"
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {wall} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="adult")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="sweep seeds")
    parser.add_argument(
        "--data", type=Path, help="folder of the data files (default: the spec's paths)"
    )
    parser.add_argument("--out", type=Path, help="where sweeps go (default: a temp folder)")
    parser.add_argument(
        "--trial-seeds",
        type=int,
        nargs="*",
        default=[],
        help="also train one trial of the spec's base recipe per seed (gan-hpc train)",
    )
    parser.add_argument(
        "--trial-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="overrides for those single trials only, e.g. train.num_steps=1000",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec, target, positive = DATASETS[args.dataset]
    overrides = []
    if args.data is not None:
        config = load_trial_config(spec)
        names = {"path": config.data.path, "test_path": config.data.test_path}
        overrides = [
            f"data.{key}={args.data.resolve() / Path(value).name}"
            for key, value in names.items()
            if value
        ]
    config = load_trial_config(spec, overrides)
    real_train, real_test = real_tables(load_dataset(config.data))
    num_rows = len(real_test)
    minimal_steps = config.train.num_steps * config.train.batch_size // MINIMAL_BATCH
    out = args.out or Path(tempfile.mkdtemp(prefix=f"quality-{args.dataset}-"))
    set_overrides = [item for o in overrides for item in ("--set", o)]

    reference = [
        {
            "label": "real training rows (ceiling)",
            "wall_s": None,
            **score(real_train, real_test, target, positive),
        },
        {
            "label": "columns sampled independently (floor)",
            "wall_s": None,
            **score(independent_columns(real_train, num_rows, 0), real_test, target, positive),
        },
    ]
    print(
        f"{args.dataset}: {len(real_train)} training rows, {num_rows} test rows "
        f"(every synthetic table has {num_rows} rows)\n",
        flush=True,
    )
    if args.trial_seeds:
        trial_overrides = [*set_overrides, *(i for o in args.trial_set for i in ("--set", o))]
        trials = single_trials(
            spec, out, args.trial_seeds, trial_overrides, real_test, target, positive
        )
        print("### single trials of the base recipe (wall: the whole command)\n")
        print(_table([*trials, *reference]) + "\n", flush=True)
    summary = []
    for seed in args.seeds:
        sweep_dir, wall = run_sweep(spec, out / f"seed{seed}", seed, set_overrides)
        trials = sweep_rows(sweep_dir, real_test, target, positive)
        top = next(t for t in trials if t["rank"] == 1)
        best = max(trials, key=lambda t: t["tstr_f1"])
        tau = kendalltau([-t["rank"] for t in trials], [t["tstr_f1"] for t in trials])
        started = time.perf_counter()
        minimal = minimal_gan(
            real_train,
            target,
            seed=seed,
            num_steps=minimal_steps,
            batch=MINIMAL_BATCH,
            num_rows=num_rows,
        )
        minimal_wall = time.perf_counter() - started
        rows = [
            {"label": f"leaderboard top-1 ({top['trial_id']})", "wall_s": wall, **top},
            {
                "label": f"best trial by test TSTR ({best['trial_id']}, rank {best['rank']})",
                "wall_s": None,
                **best,
            },
            {
                "label": f"minimal hand-written GAN ({minimal_steps} steps of "
                f"{MINIMAL_BATCH} rows)",
                "wall_s": minimal_wall,
                **score(minimal, real_test, target, positive),
            },
            *reference,
        ]
        print(
            f"### sweep seed {seed}: {len(trials)} trials, sweep wall {wall:.0f} s "
            f"(the top-1 row's wall is the whole sweep)\n"
        )
        print(_table(rows))
        print(
            f"\nKendall tau (leaderboard order vs test TSTR, {len(trials)} trials): "
            f"{tau.statistic:.2f}; top-1 is {best['tstr_f1'] - top['tstr_f1']:.3f} TSTR "
            f"below the best trial\n",
            flush=True,
        )
        summary.append((seed, top, best, tau.statistic, wall, rows[2]))
    if not summary:
        return
    print(
        "### summary\n\n| seed | top-1 TSTR | top-1 GBM detection | best trial TSTR | "
        "Kendall tau | sweep wall s | minimal loop TSTR |\n|---|---|---|---|---|---|---|"
    )
    for seed, top, best, tau, wall, minimal_row in summary:
        print(
            f"| {seed} | {top['tstr_f1']:.3f} | {top['detection_gbm']:.3f} | "
            f"{best['tstr_f1']:.3f} | {tau:.2f} | {wall:.0f} | {minimal_row['tstr_f1']:.3f} |"
        )
    print(
        f"\nmean top-1 TSTR {statistics.fmean(s[1]['tstr_f1'] for s in summary):.3f}; "
        f"sweeps in {out}"
    )


if __name__ == "__main__":
    main()
