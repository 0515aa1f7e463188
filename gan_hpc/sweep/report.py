"""``gan-hpc sweep report``: one self-contained HTML page about a sweep.

The page is built from the trial directories alone (as ``sweep status`` is), so it works on a
finished, running or interrupted sweep without Ray: the leaderboard with its baseline rows and
ranking rule; the optimisation history (each trial's score in trial order, the best so far,
the baselines); parameter importances (Optuna's fANOVA on a study made from the trials'
searched values and leaderboard scores); parallel coordinates and slice plots of the searched
parameters against the score; and for each of the top K trials its G/D losses and convergence
metrics over steps (``metrics.jsonl``) and samples of its checkpoint next to real validation
data. Figures are PNGs embedded as base64, so the file can be mailed or archived alone.
Nothing is written into the sweep directory but the report itself, and only when it is the
output path.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from gan_hpc.config import ConvergenceConfig
from gan_hpc.convergence import (
    D_ACC_HELDOUT,
    D_LOSS,
    D_LOSS_GAP,
    DIVERSITY_RATIO,
    FOOLING_RATE,
    G_LOSS,
    STEP,
)
from gan_hpc.errors import GanHpcError, SpecError, SweepError
from gan_hpc.files import atomic_write_text
from gan_hpc.sweep.directory import (
    TrialRecord,
    collect_trials,
    read_baselines,
    read_confirmations,
    read_spec,
)
from gan_hpc.sweep.leaderboard import (
    format_cell,
    format_table,
    is_missing,
    short_headers,
    table_columns,
)
from gan_hpc.sweep.rank import BASELINE_PREFIX, rank_trials, ranking_rule
from gan_hpc.sweep.search_space import Choice, Distribution, IntRange, LogUniform, Uniform
from gan_hpc.sweep.spec import SweepSpec
from gan_hpc.trial_dir import METRICS_FILE, CheckpointKind, TrialDir

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"  # default: <sweep>/report.html
DEFAULT_TOP_K = 3
CURVE_METRICS = (D_ACC_HELDOUT, FOOLING_RATE, D_LOSS_GAP, DIVERSITY_RATIO)
_DPI = 90
_UNSET = -0.2  # where parallel coordinates draw a parameter a trial did not sample


@dataclass
class Report:
    """A report being assembled: HTML sections, and how many figures they embed."""

    title: str
    sections: list[str] = field(default_factory=list)
    num_figures: int = 0

    def add(self, heading: str, *parts: str) -> None:
        """Append a section under an ``<h2>`` heading."""
        self.sections.append(f"<h2>{html.escape(heading)}</h2>\n" + "\n".join(parts))

    def figure(self, figure: Figure, alt: str) -> str:
        """A figure as an ``<img>`` with its PNG inline (base64)."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=_DPI)
        self.num_figures += 1
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'

    def to_html(self) -> str:
        """The whole page."""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(f"<section>{s}</section>" for s in self.sections)
            + "\n</body>\n</html>\n"
        )


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
    "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}th{background:#f2f2f2}tr.baseline td{color:#666;font-style:italic}"
    "img{max-width:100%;display:block;margin:0.5em 0}p.note{color:#666}"
    "details{margin-top:0.8em}.scroll{overflow-x:auto}"
)


# ------------------------------------------------------------------------------- building


def build_report(
    sweep_dir: Path,
    *,
    top_k: int = DEFAULT_TOP_K,
    checkpoint: CheckpointKind = "best",
    use_samples: bool = True,
) -> Report:
    """Assemble the report of a sweep directory.

    Args:
        sweep_dir: the sweep directory (``spec.yaml``, ``trials/``).
        top_k: how many of the best trials get curves and samples.
        checkpoint: rank (and sample) every trial by its best or its last checkpoint.
        use_samples: draw samples from the top trials' checkpoints (the slow part).

    Raises:
        SweepError: not a sweep directory.
        SpecError: ``top_k`` < 1.

    """
    if top_k < 1:
        raise SpecError(f"--top: must be >= 1, got {top_k}")
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SweepError(f"{sweep_dir}: no such sweep directory")
    spec = read_spec(sweep_dir)
    ranking = spec.ranking
    records = collect_trials(sweep_dir)
    board = rank_trials(
        records,
        ranking,
        checkpoint=checkpoint,
        baselines=read_baselines(sweep_dir),
        confirmations=read_confirmations(sweep_dir),
    )
    trials = board[board["state"] != "baseline"]
    report = Report(title=f"Sweep {spec.name}")
    states = trials["state"].value_counts().to_dict()
    report.add(
        "Summary",
        f"<p>{html.escape(str(sweep_dir))}: {len(trials)} trials "
        f"({html.escape(', '.join(f'{n} {s}' for s, n in states.items()) or 'none yet')}); "
        f"{len(spec.search)} searched parameters; score <code>{html.escape(ranking.score)}"
        f"</code> ({'higher' if ranking.score_mode == 'max' else 'lower'} is better). Built "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.</p>",
    )
    report.add("Leaderboard", *_leaderboard_html(board, ranking, checkpoint))
    scored = _scored(trials)
    report.add("Optimisation history", *_figure_or_note(report, _history_figure, board, ranking))
    # parameters no scored trial sampled (a condition never held) have nothing to plot
    searched = [
        key
        for key in spec.search
        if key in board.columns and any(not is_missing(v) for v in scored[key])
    ]
    report.add("Parameter importances", *_importances_html(report, spec, scored, searched))
    report.add(
        "Parameters against the score",
        *_figure_or_note(report, _parallel_figure, scored, searched, spec, ranking),
        *_figure_or_note(report, _slice_figure, scored, searched, spec, ranking),
    )
    by_id = {record.trial_id: record for record in records}
    top = [str(t) for t in trials["trial_id"][trials["step"].notna()].head(top_k)]
    samples = checkpoint if use_samples else None
    report.add(f"Top {len(top)} trials", *_top_trials_html(report, top, by_id, board, samples))
    return report


def write_report(
    sweep_dir: Path,
    out: Path | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    checkpoint: CheckpointKind = "best",
    use_samples: bool = True,
) -> tuple[Path, Report]:
    """Build the report and write it atomically (default ``<sweep_dir>/report.html``).

    Raises:
        SweepError: not a sweep directory, or ``out`` is a directory.

    """
    path = Path(out) if out is not None else Path(sweep_dir) / REPORT_FILE
    if path.is_dir():
        raise SweepError(f"--out: {path} is a directory; give a file such as report.html")
    started = time.perf_counter()
    report = build_report(sweep_dir, top_k=top_k, checkpoint=checkpoint, use_samples=use_samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, report.to_html())
    logger.debug(
        "wrote %s (%d figures) in %.1f s", path, report.num_figures, time.perf_counter() - started
    )
    return path, report


# ---------------------------------------------------------------------------- leaderboard


def _leaderboard_html(
    board: pd.DataFrame, ranking: ConvergenceConfig, checkpoint: str
) -> list[str]:
    """The headline columns as a table, the full leaderboard folded away, the ranking rule."""
    columns = table_columns(board)
    headers = short_headers(columns)
    head = "".join(f'<th title="{html.escape(c)}">{html.escape(headers[c])}</th>' for c in columns)
    rows = []
    for row in board.to_dict(orient="records"):
        is_baseline = str(row["trial_id"]).startswith(BASELINE_PREFIX)
        cells = "".join(f"<td>{html.escape(format_cell(row[c]))}</td>" for c in columns)
        css = ' class="baseline"' if is_baseline else ""
        rows.append(f"<tr{css}>{cells}</tr>")
    full = html.escape(format_table(board, columns=list(board.columns), width=None))
    return [
        f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>',
        f"<p>{html.escape(ranking_rule(ranking))}; each row from the trial's {checkpoint} "
        "checkpoint.</p>",
        f'<details><summary>every column</summary><div class="scroll"><pre>{full}</pre>'
        "</div></details>",
    ]


def _scored(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that have a finite score."""
    scores = pd.to_numeric(trials["score"], errors="coerce")
    return trials[np.isfinite(scores.to_numpy(dtype=float))]


def _figure_or_note(report: Report, make: Any, *args: Any) -> list[str]:
    """Embed ``make(*args)``'s figure, or say why there is none (``make`` returns a str)."""
    made = make(*args)
    if isinstance(made, str):
        return [f'<p class="note">{html.escape(made)}</p>']
    return [report.figure(made, alt=make.__name__.strip("_").replace("_", " "))]


# -------------------------------------------------------------------------------- figures


def _history_figure(board: pd.DataFrame, ranking: ConvergenceConfig) -> Figure | str:
    """Each scored trial's score in trial-id order, the best so far, the baselines."""
    trials = board[board["state"] != "baseline"].sort_values("trial_id")
    scores = pd.to_numeric(trials["score"], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(scores).any():
        return "No trial has a score yet."
    order = np.arange(1, len(scores) + 1)
    finite = np.isfinite(scores)
    pick = np.fmax if ranking.score_mode == "max" else np.fmin
    best = pick.accumulate(np.where(finite, scores, np.nan))
    figure = Figure(figsize=(8, 3.6))
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(order[finite], scores[finite], "o", color="tab:blue", label="trial")
    ax.step(order, best, where="post", color="tab:red", label="best so far")
    baselines = board[board["state"] == "baseline"]
    for name, value in zip(baselines["trial_id"], baselines["score"], strict=True):
        if isinstance(value, float) and math.isfinite(value):
            ax.axhline(value, linestyle="--", color="gray", linewidth=1)
            ax.annotate(str(name).removeprefix(BASELINE_PREFIX), (1, value), fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial (in trial-id order)")
    ax.set_ylabel(ranking.score)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _importances_html(
    report: Report, spec: SweepSpec, scored: pd.DataFrame, searched: Sequence[str]
) -> list[str]:
    """The searched parameters' fANOVA importances for the leaderboard's score."""
    try:
        importances = param_importances(spec, scored, searched)
    except (ValueError, RuntimeError) as exc:  # optuna refuses too few or constant trials
        return [f'<p class="note">No importances: {html.escape(str(exc))}</p>']
    if not importances:
        return [
            '<p class="note">No importances: they need at least two scored trials and a '
            "parameter every one of them sampled.</p>"
        ]
    figure = Figure(figsize=(7, 0.4 * len(importances) + 1.2))
    ax = figure.add_subplot(1, 1, 1)
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:green")
    ax.set_xlabel("importance for the score (Optuna fANOVA; sums to 1)")
    figure.tight_layout()
    return [report.figure(figure, alt="parameter importances")]


def param_importances(
    spec: SweepSpec, scored: pd.DataFrame, searched: Sequence[str]
) -> dict[str, float]:
    """Optuna's fANOVA importances on a study of the scored trials (searched values, score).

    A study is made in memory (``optuna.trial.create_trial``); conditional parameters count
    only when every scored trial sampled them, as Optuna does. Empty when there are fewer than
    two scored trials.
    """
    import optuna  # imported here: optuna is only needed by this section

    if len(scored) < 2 or not searched:
        return {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
    try:
        study = optuna.create_study(
            direction="maximize" if spec.ranking.score_mode == "max" else "minimize"
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    distributions = {key: _optuna_distribution(spec.search[key]) for key in searched}
    trials = []
    for row in scored.to_dict(orient="records"):
        params = {k: row[k] for k in searched if not is_missing(row.get(k))}
        trials.append(
            optuna.trial.create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=float(row["score"]),
            )
        )
    study.add_trials(trials)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))


def _optuna_distribution(distribution: Distribution) -> Any:
    """The Optuna distribution of a search entry (as optuna_search.py samples it)."""
    import optuna

    if isinstance(distribution, Uniform):
        return optuna.distributions.FloatDistribution(distribution.low, distribution.high)
    if isinstance(distribution, LogUniform):
        return optuna.distributions.FloatDistribution(distribution.low, distribution.high, log=True)
    if isinstance(distribution, IntRange):
        return optuna.distributions.IntDistribution(
            distribution.low, distribution.high, step=distribution.step
        )
    return optuna.distributions.CategoricalDistribution(distribution.values)


def _axis_values(
    values: pd.Series, distribution: Distribution
) -> tuple[np.ndarray, list[str] | None]:
    """Plottable positions of a parameter's values, and category labels for a choice."""
    if isinstance(distribution, Choice):
        labels = [str(v) for v in distribution.values]
        index = {label: i for i, label in enumerate(labels)}
        return (
            np.array([index.get(str(v), np.nan) if not is_missing(v) else np.nan for v in values]),
            labels,
        )
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), None


def _parallel_figure(
    scored: pd.DataFrame, searched: Sequence[str], spec: SweepSpec, ranking: ConvergenceConfig
) -> Figure | str:
    """Parallel coordinates: one axis per parameter and the score; a line per trial."""
    if len(scored) < 2 or not searched:
        return "Parallel coordinates need two scored trials and a searched parameter."
    short = short_headers([*searched, "score"])
    axes = [*searched, "score"]
    columns, ticks = [], []
    for key in axes:
        if key == "score":
            raw, labels = pd.to_numeric(scored["score"]).to_numpy(dtype=float), None
        else:
            raw, labels = _axis_values(scored[key], spec.search[key])
            if isinstance(spec.search[key], LogUniform):
                raw = np.log10(raw)
        if labels is not None:
            low, high = 0.0, float(max(len(labels) - 1, 1))
            ticks.append((labels[0], labels[-1]))
        else:
            low, high = float(np.nanmin(raw)), float(np.nanmax(raw))
            shown = (
                (10**low, 10**high)
                if isinstance(spec.search.get(key), LogUniform)
                else (
                    low,
                    high,
                )
            )
            ticks.append((f"{shown[0]:.3g}", f"{shown[1]:.3g}"))
        scaled = (raw - low) / (high - low) if high > low else np.full_like(raw, 0.5)
        # a trial that did not sample the parameter (a condition left it out) passes below
        columns.append(np.where(np.isnan(raw), _UNSET, scaled))
    matrix = np.vstack(columns).T
    scores = matrix[:, -1]
    if ranking.score_mode == "min":
        scores = 1 - scores  # darker is better either way
    figure = Figure(figsize=(max(6.0, 1.6 * len(axes)), 3.8))
    ax = figure.add_subplot(1, 1, 1)
    palette = colormaps["viridis_r"]
    for values, quality in sorted(zip(matrix, scores, strict=True), key=lambda p: p[1]):
        ax.plot(range(len(axes)), values, color=palette(float(quality)), alpha=0.8)
    for position, (bottom, top) in enumerate(ticks):
        ax.axvline(position, color="black", linewidth=0.8)
        ax.annotate(bottom, (position, -0.06), ha="center", fontsize=7, annotation_clip=False)
        ax.annotate(top, (position, 1.03), ha="center", fontsize=7, annotation_clip=False)
        if (matrix[:, position] == _UNSET).any():
            ax.annotate("unset", (position, _UNSET - 0.07), ha="center", fontsize=7)
    ax.set_xticks(range(len(axes)), [short[k] for k in axes], fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(_UNSET - 0.1, 1.1)
    ax.set_title("parallel coordinates (darker: better score)", fontsize=9)
    figure.tight_layout()
    return figure


def _slice_figure(
    scored: pd.DataFrame, searched: Sequence[str], spec: SweepSpec, ranking: ConvergenceConfig
) -> Figure | str:
    """One scatter per parameter: its value against the score."""
    if scored.empty or not searched:
        return "Slice plots need a scored trial and a searched parameter."
    short = short_headers(list(searched))
    count = len(searched)
    num_cols = min(4, count)
    num_rows = math.ceil(count / num_cols)
    figure = Figure(figsize=(3.3 * num_cols, 2.8 * num_rows))
    scores = pd.to_numeric(scored["score"]).to_numpy(dtype=float)
    for index, key in enumerate(searched, start=1):
        ax = figure.add_subplot(num_rows, num_cols, index)
        values, labels = _axis_values(scored[key], spec.search[key])
        ax.scatter(values, scores, s=18, color="tab:blue")
        if labels is not None:
            ax.set_xticks(range(len(labels)), [label[:12] for label in labels], fontsize=7)
        elif isinstance(spec.search[key], LogUniform):
            ax.set_xscale("log")
            # three labelled ticks over the data: matplotlib's minor labels would overlap
            finite = values[np.isfinite(values)]
            ends = (float(finite.min()), float(finite.max()))
            ticks = sorted({ends[0], math.sqrt(ends[0] * ends[1]), ends[1]})
            ax.set_xticks(ticks, [f"{t:.2g}" for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(short[key], fontsize=8)
        ax.tick_params(labelsize=7)
        if (index - 1) % num_cols == 0:
            ax.set_ylabel(ranking.score, fontsize=8)
    figure.tight_layout()
    return figure


# ----------------------------------------------------------------------------- top trials


def _top_trials_html(
    report: Report,
    top: Sequence[str],
    records: Mapping[str, TrialRecord],
    board: pd.DataFrame,
    samples: CheckpointKind | None,
) -> list[str]:
    """Per top trial: its curves over steps, and samples of its checkpoint next to real data."""
    if not top:
        return ['<p class="note">No trial has been evaluated yet.</p>']
    parts = []
    steps = dict(zip(board["trial_id"], board["step"], strict=True))
    for rank, trial_id in enumerate(top, start=1):
        record = records[trial_id]
        parts.append(
            f"<h3>{rank}. {html.escape(trial_id)} ({html.escape(record.state)}, step "
            f"{html.escape(format_cell(steps.get(trial_id)))})</h3>"
        )
        params = ", ".join(f"{k}={format_cell(v)}" for k, v in record.params.items())
        parts.append(f"<p>{html.escape(params)}</p>")
        parts += _figure_or_note(report, _curves_figure, record, steps.get(trial_id))
        if samples is not None:
            parts += _figure_or_note(report, _samples_figure, record, samples)
    return parts


def _curves_figure(record: TrialRecord, best_step: Any) -> Figure | str:
    """G/D losses and the convergence metrics over steps, the ranked step marked."""
    lines = TrialDir(record.path).read_metrics()
    if not lines:
        return f"{record.trial_id}: no {METRICS_FILE} records."
    frame = pd.DataFrame(lines)
    figure = Figure(figsize=(10, 3.0))
    for index, (names, title) in enumerate(
        (((D_LOSS, G_LOSS), "training losses"), (CURVE_METRICS, "convergence (held out)")),
        start=1,
    ):
        ax = figure.add_subplot(1, 2, index)
        for name in names:
            if name in frame:
                ax.plot(frame[STEP], pd.to_numeric(frame[name], errors="coerce"), label=name)
        if not is_missing(best_step):
            ax.axvline(float(best_step), color="gray", linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _samples_figure(record: TrialRecord, checkpoint: CheckpointKind) -> Figure | str:
    """Samples of the trial's checkpoint next to real validation data (the model card's)."""
    from gan_hpc.sweep.export import trial_samples_figure  # torch, the data readers: only here

    try:
        return trial_samples_figure(record.path, checkpoint=checkpoint)
    except (GanHpcError, OSError) as exc:
        return f"{record.trial_id}: no samples ({exc})"
