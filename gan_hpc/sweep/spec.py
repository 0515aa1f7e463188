"""The sweep spec: one typed, frozen object per ``sweeps/*.yaml`` file, validated once at load.

A sweep file has these top-level blocks (every one optional but ``base`` in practice)::

    name: adult_mlp                  # the sweep directory is <storage.path>/<name>
    seed: 0                          # seeds the search; shifts every trial's train.seed
    base: {...}                      # a TrialConfig: the values every trial starts from
    search:                          # dotted TrialConfig paths -> distributions
      optim.generator.lr: {loguniform: [1.0e-5, 1.0e-3]}
      loss.name: {choice: [bce_logits, hinge, wasserstein]}
      loss.clip_value: {loguniform: [0.005, 0.05], when: {loss.name: [wasserstein]}}
      model.generator.depth: {int: [1, 3]}
    tune: {...}                      # TuneSettings: metric, budget, ASHA, Optuna
    resources: {...}                 # ResourcesConfig: CPUs/GPUs/DDP ranks per trial
    launcher: local                  # a name in gan_hpc.launchers.registry: local | slurm
    slurm: {...}                     # the slurm backend's block (validated whatever the launcher)
    ranking: {...}                   # a ConvergenceConfig: gate thresholds + score
    storage: {path: runs}

``ranking`` replaces ``base.convergence``: the trainer picks its best checkpoint with the very
rule the leaderboard ranks trials by (gate first, then the score), so a spec may not set
``base.convergence`` and may not search ``convergence.*``.

:func:`load_sweep_spec` is the only validator. Every error is a one-line
:class:`~gan_hpc.errors.SpecError` naming the file, the key and the fix, e.g.
``sweeps/x.yaml: search.optim.generator.lr: low 0.01 > high 0.001 (swap them)``. The
``search`` block is parsed and checked by :mod:`gan_hpc.sweep.search_space`; ``quality.*`` cannot be
searched either (every trial is scored the same way).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from gan_hpc.config import (
    ConvergenceConfig,
    Mode,
    TrialConfig,
    is_quality_metric,
    with_absolute_data_paths,
)
from gan_hpc.config_validation import (
    ConfigValueError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_yaml,
    parse_override,
    require,
)
from gan_hpc.convergence import ALL_CONVERGENCE, ALL_TRAINING, better_mode
from gan_hpc.errors import SpecError
from gan_hpc.launchers.registry import (
    DEFAULT_LAUNCHER,
    launcher_names,
    load_launcher_settings,
    settings_blocks,
)
from gan_hpc.quality_names import metric_mode
from gan_hpc.sweep.search_space import (
    Choice,
    Distribution,
    IntRange,
    get_dotted,
    load_search,
    search_order_of,
    set_dotted,
)

logger = logging.getLogger(__name__)

KNOWN_METRICS: tuple[str, ...] = ALL_TRAINING + ALL_CONVERGENCE
# the top-level blocks besides each launcher backend's own (e.g. slurm:, after launcher:)
SPEC_KEYS: tuple[str, ...] = (
    "name",
    "seed",
    "base",
    "search",
    "tune",
    "resources",
    "launcher",
    "ranking",
    "storage",
)

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# --smoke: quality sample sizes small enough that scoring takes seconds, not minutes
SMOKE_QUALITY_CAPS = {
    "num_rows": 500,
    "num_dcr_rows": 200,
    "num_image_samples": 500,
    "num_classifier_steps": 50,
    "num_classifier_images": 1000,
    "num_signal_samples": 200,
}


def _check_metric(key: str, metric: str, *, is_quality_ok: bool = False) -> None:
    """Reject a metric name that no evaluation reports, suggesting the closest one.

    Quality metrics are evaluation metrics only with ``ranking.use_quality_at_evaluations``;
    ``is_quality_ok`` accepts any valid quality name (the caller checks the setting).
    """
    if metric in KNOWN_METRICS:
        return
    if is_quality_metric(metric):
        if not is_quality_ok:
            raise ConfigValueError(
                key,
                f"'{metric}' is computed when a trial ends, but Optuna and ASHA need a metric of "
                "every evaluation; rank by it with ranking.score instead, or set "
                "ranking.use_quality_at_evaluations: true",
            )
        try:
            metric_mode(metric)
        except SpecError as exc:
            raise ConfigValueError(key, str(exc).removeprefix("quality: ")) from None
        return
    close = difflib.get_close_matches(metric, KNOWN_METRICS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(KNOWN_METRICS)}"
    raise ConfigValueError(key, f"unknown metric '{metric}' ({hint})")


# ----------------------------------------------------------------------------- other blocks


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneSettings:
    """How Ray Tune searches: the intermediate metric, the budget, the scheduler, the searcher.

    ``metric``/``mode`` drive ASHA and a single-objective Optuna search. When
    ``multi_objective_metrics`` is set, Optuna optimises those jointly while ASHA still stops
    trials on ``metric``.
    """

    metric: str = "d_loss_gap"
    mode: Mode = "min"
    num_samples: int = 8
    max_concurrent_trials: int = 2
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period_steps: int = 100  # ASHA: steps every trial runs before it can be stopped
    reduction_factor: int = 3
    search_alg: Literal["optuna", "random"] = "optuna"
    multi_objective_metrics: tuple[str, ...] = ()
    multi_objective_modes: tuple[Mode, ...] = ()
    max_retries_per_trial: int = 1
    checkpoint_every_report: bool = True
    # trials to run first, e.g. a known-good config: {dotted search key: value}; keys left out
    # are sampled (Optuna's enqueue_trial)
    initial_points: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _check_metric("metric", self.metric, is_quality_ok=True)
        require(self.num_samples >= 1, "num_samples", "must be >= 1")
        require(self.max_concurrent_trials >= 1, "max_concurrent_trials", "must be >= 1")
        require(self.grace_period_steps >= 1, "grace_period_steps", "must be >= 1")
        require(self.reduction_factor >= 2, "reduction_factor", "must be >= 2")
        require(self.max_retries_per_trial >= 0, "max_retries_per_trial", "must be >= 0")
        for i, metric in enumerate(self.multi_objective_metrics):
            _check_metric(f"multi_objective_metrics[{i}]", metric, is_quality_ok=True)
        require(
            len(self.multi_objective_modes) == len(self.multi_objective_metrics),
            "multi_objective_modes",
            f"needs one mode per metric ({len(self.multi_objective_metrics)}), "
            f"got {len(self.multi_objective_modes)}",
        )
        require(
            not self.multi_objective_metrics or self.search_alg == "optuna",
            "multi_objective_metrics",
            "needs search_alg: optuna (random search has no objective)",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcesConfig:
    """What one trial reserves: Ray resources for its watcher and the DDP ranks it starts."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    world_size: int = 1  # DDP ranks per trial
    nodes: int = 1

    def __post_init__(self) -> None:
        require(self.cpus_per_trial > 0, "cpus_per_trial", "must be > 0")
        require(self.gpus_per_trial >= 0, "gpus_per_trial", "must be >= 0")
        require(self.world_size >= 1, "world_size", "must be >= 1")
        require(self.nodes >= 1, "nodes", "must be >= 1")
        require(
            self.world_size % self.nodes == 0,
            "world_size",
            f"{self.world_size} ranks do not divide evenly over {self.nodes} nodes "
            "(make world_size a multiple of nodes)",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageConfig:
    """Where sweep directories live: ``<path>/<name>``."""

    path: str = "runs"

    def __post_init__(self) -> None:
        require(bool(self.path.strip()), "path", "must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepSpec:
    """A validated sweep: the base trial, the search space and how to run and rank it.

    Build it with :func:`load_sweep_spec` (or :func:`sweep_spec_from_dict`); the constructor
    does not validate. ``base.convergence`` always equals ``ranking``.
    """

    name: str
    seed: int
    base: TrialConfig
    search: dict[str, Distribution]
    tune: TuneSettings
    resources: ResourcesConfig
    launcher: str  # a registered launcher backend
    # each backend's own block (e.g. "slurm": SlurmConfig), by backend name
    launcher_settings: dict[str, Any]
    ranking: ConvergenceConfig
    storage: StorageConfig
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`sweep_spec_from_dict` turns back into an equal spec.

        ``base.convergence`` is left out: ``ranking`` holds it.
        """
        base = self.base.to_dict()
        del base["convergence"]
        return {
            "name": self.name,
            "seed": self.seed,
            "base": base,
            "search": {key: dist.to_dict() for key, dist in self.search.items()},
            "tune": config_to_dict(self.tune),
            "resources": config_to_dict(self.resources),
            "launcher": self.launcher,
            **{name: config_to_dict(block) for name, block in self.launcher_settings.items()},
            "ranking": config_to_dict(self.ranking),
            "storage": config_to_dict(self.storage),
        }

    def sweep_dir(self, out: Path | None = None) -> Path:
        """The sweep directory: ``out`` itself when given, else ``<storage.path>/<name>``."""
        return Path(out) if out is not None else Path(self.storage.path) / self.name

    @property
    def max_num_steps(self) -> int:
        """The most generator steps a trial of this sweep can train (ASHA's ``max_t``)."""
        return longest_trial_steps(self.base, self.search)


def longest_trial_steps(base: TrialConfig, search: Mapping[str, Distribution]) -> int:
    """The base's ``train.num_steps``, or the largest value the search can draw for it.

    A conditional ``train.num_steps`` (``when``) keeps the base's value where its condition
    does not hold, so the base counts too.
    """
    dist = search.get("train.num_steps")
    if isinstance(dist, IntRange):
        drawn = dist.high  # its step divides high - low, so high is drawn too
    elif isinstance(dist, Choice):
        drawn = max(int(value) for value in dist.values)
    else:  # not searched (an integer field takes only int and choice ranges)
        drawn = base.train.num_steps
    return max(base.train.num_steps, drawn)


# ------------------------------------------------------------------------------------ loading


def load_sweep_spec(path: Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read, override and validate a sweep file.

    Args:
        path: the YAML file.
        overrides: ``key=value`` strings applied before validation. A key that does not start
            with a top-level block name (``tune.num_samples=3``) applies to ``base``
            (``train.num_steps=50``). ``search.<dotted.path>=<distribution>`` sets one search
            entry and ``search.<dotted.path>=null`` removes it.

    Raises:
        SpecError: one line naming the file, the key and the fix.

    """
    document = load_yaml(Path(path))
    return sweep_spec_from_dict(_apply_sweep_overrides(document, overrides), source=str(path))


def validate_spec_file(path: Path) -> SweepSpec:
    """Load and validate a sweep file, nothing else (``gan-hpc sweep validate``)."""
    return load_sweep_spec(path)


def dump_sweep_spec(spec: SweepSpec) -> str:
    """Render the spec as YAML (the resolved ``spec.yaml`` of a sweep directory)."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)


def sweep_spec_from_dict(document: Mapping[str, Any], *, source: str = "spec") -> SweepSpec:
    """Build and validate a :class:`SweepSpec` from plain data; errors name ``source``."""
    if not isinstance(document, Mapping):
        raise SpecError(f"{source}: expected a mapping at the top level")
    valid_keys = sweep_keys()
    for key in document:
        if key not in valid_keys:
            close = difflib.get_close_matches(str(key), valid_keys, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid_keys)}"
            raise SpecError(f"{source}: {key}: unknown key '{key}' ({hint})")

    name = document.get("name", Path(source).stem)
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise SpecError(
            f"{source}: name: {name!r} is not a directory name "
            "(use letters, digits, '.', '_' and '-')"
        )
    seed = document.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SpecError(f"{source}: seed: expected an int, got {seed!r}")
    launcher = document.get("launcher", DEFAULT_LAUNCHER)
    if launcher not in launcher_names():
        valid = ", ".join(repr(name) for name in launcher_names())
        raise SpecError(f"{source}: launcher: {launcher!r} is not one of {valid}")

    ranking = config_from_dict(
        ConvergenceConfig, document.get("ranking"), source=source, prefix="ranking"
    )
    try:
        _check_ranking(ranking)
    except (ConfigValueError, SpecError) as exc:
        raise SpecError(f"{source}: {exc}") from None
    base = _load_base(document.get("base"), ranking, source=source)
    tune = _block(TuneSettings, document, "tune", source)
    try:
        _check_tune_metrics(tune, ranking)
    except ConfigValueError as exc:
        raise SpecError(f"{source}: {exc}") from None
    resources = _block(ResourcesConfig, document, "resources", source)
    launcher_settings = {
        block: load_launcher_settings(block, document.get(block), source=source)
        for block in settings_blocks()
    }
    storage = _block(StorageConfig, document, "storage", source)

    search = load_search(document.get("search"), base, source=source)
    longest = longest_trial_steps(base, search)
    if tune.scheduler == "asha" and tune.grace_period_steps > longest:
        raise SpecError(
            f"{source}: tune.grace_period_steps: {tune.grace_period_steps} > the longest "
            f"trial's train.num_steps {longest} (lower it)"
        )
    spec = SweepSpec(
        name=name,
        seed=seed,
        base=base,
        search=search,
        tune=tune,
        resources=resources,
        launcher=launcher,
        launcher_settings=launcher_settings,
        ranking=ranking,
        storage=storage,
        source=source,
    )
    for index, point in enumerate(tune.initial_points):
        try:
            trial_config_for(spec, point)
        except SpecError as exc:
            raise SpecError(f"{source}: tune.initial_points[{index}]: {exc}") from None
    return spec


def sweep_keys() -> tuple[str, ...]:
    """The top-level keys of a sweep file: the fixed ones and each backend's block."""
    at = SPEC_KEYS.index("launcher") + 1
    return (*SPEC_KEYS[:at], *settings_blocks(), *SPEC_KEYS[at:])


def _check_tune_metrics(tune: TuneSettings, ranking: ConvergenceConfig) -> None:
    """Optuna and ASHA see evaluations: a quality metric needs quality at every evaluation."""
    metrics = [("tune.metric", tune.metric, "tune.mode", tune.mode)]
    metrics += [
        (f"tune.multi_objective_metrics[{i}]", m, f"tune.multi_objective_modes[{i}]", mode)
        for i, (m, mode) in enumerate(
            zip(tune.multi_objective_metrics, tune.multi_objective_modes, strict=True)
        )
    ]
    for key, metric, mode_key, mode in metrics:
        if is_quality_metric(metric):
            if not ranking.use_quality_at_evaluations:
                _check_metric(key, metric)  # raises: computed when a trial ends
            _check_ranked_metric(key, metric, mode_key, mode)


def _check_ranking(ranking: ConvergenceConfig) -> None:
    """Ranking metrics are evaluation or quality metrics, ranked in their better direction."""
    if ranking.checkpoint_score is not None:
        _check_ranked_metric(
            "ranking.checkpoint_score",
            ranking.checkpoint_score,
            "ranking.checkpoint_score_mode",
            ranking.checkpoint_score_mode,
        )
    _check_ranked_metric("ranking.score", ranking.score, "ranking.score_mode", ranking.score_mode)
    for i, (metric, mode) in enumerate(
        zip(ranking.pareto_metrics, ranking.pareto_modes, strict=True)
    ):
        _check_ranked_metric(
            f"ranking.pareto_metrics[{i}]", metric, f"ranking.pareto_modes[{i}]", mode
        )


def _check_ranked_metric(key: str, metric: str, mode_key: str, mode: Mode) -> None:
    """An evaluation or quality metric, ranked in the direction that is better for it."""
    if not is_quality_metric(metric):
        _check_metric(key, metric)
    try:
        better = better_mode(metric)
    except SpecError as exc:
        raise ConfigValueError(key, str(exc).removeprefix("quality: ")) from None
    if better is not None and mode != better:
        raise ConfigValueError(
            mode_key,
            f"'{metric}' is better when {'higher' if better == 'max' else 'lower'}; "
            f"set {mode_key}: {better}",
        )


def _block(cls: type[Any], document: Mapping[str, Any], key: str, source: str) -> Any:
    """Validate one top-level block with the shared config machinery."""
    return config_from_dict(cls, document.get(key), source=source, prefix=key)


def _apply_sweep_overrides(document: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides: search entries by their dotted key, the rest by path."""
    result = copy.deepcopy(dict(document))
    routed: list[str] = []
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if key.startswith("search."):
            _, value = parse_override(text)
            search = result.get("search")
            search = dict(search) if isinstance(search, Mapping) else {}
            entry = key.removeprefix("search.")
            if value is None:
                search.pop(entry, None)
            else:
                search[entry] = value
            result["search"] = search
        elif key.split(".", 1)[0] in sweep_keys():
            routed.append(text)
        else:  # relative to the base trial config
            routed.append(f"base.{text.lstrip()}")
    return apply_overrides(result, routed)


def _load_base(raw: Any, ranking: ConvergenceConfig, *, source: str) -> TrialConfig:
    """Validate ``base``; its convergence block is the sweep's ``ranking``."""
    if isinstance(raw, Mapping) and "convergence" in raw:
        raise SpecError(
            f"{source}: base.convergence: the sweep's ranking block replaces it; move these "
            "keys under ranking: (e.g. --set ranking.d_acc_min=0.8)"
        )
    base = config_from_dict(TrialConfig, raw, source=source, prefix="base")
    return dataclasses.replace(with_absolute_data_paths(base), convergence=ranking)


def search_order(spec: SweepSpec) -> list[str]:
    """Return the order to sample ``spec.search`` in: parents of a condition come first."""
    return search_order_of(spec.search, source=spec.source)


def active_params(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the subset of ``params`` whose ``when`` conditions hold.

    A condition on a search key reads that key's sampled value (and fails when the key is
    itself inactive or not sampled); a condition on a base field reads ``spec.base``.
    """
    active: dict[str, Any] = {}
    for key in search_order(spec):
        if key in params and conditions_hold(spec, key, active):
            active[key] = params[key]
    return active


def conditions_hold(spec: SweepSpec, key: str, active: Mapping[str, Any]) -> bool:
    """Tell whether every ``when`` condition of ``spec.search[key]`` holds."""
    for parent, allowed in spec.search[key].when.items():
        if parent in spec.search:
            if parent not in active or active[parent] not in allowed:
                return False
        elif get_dotted(spec.base, parent) not in allowed:
            return False
    return True


def trial_config_for(spec: SweepSpec, params: Mapping[str, Any]) -> TrialConfig:
    """Build one trial's validated TrialConfig: ``base`` plus the sampled ``params`` (dotted).

    Parameters whose ``when`` condition does not hold are ignored, so a trial's config does not
    depend on whether the search algorithm sampled them. Unless ``train.seed`` is searched, every
    trial trains with ``base.train.seed + spec.seed``: the trials of one sweep share a training
    seed (they differ only in what was searched), and sweeps with different seeds train
    different generators.

    Raises:
        SpecError: a parameter is not a search key, or the values are invalid together; the
            message names the parameters.

    """
    plain = {key: _plain(value) for key, value in params.items()}
    described = ", ".join(f"{key}={value!r}" for key, value in plain.items())
    unknown = [key for key in plain if key not in spec.search]
    if unknown:
        raise SpecError(
            f"{spec.source}: trial params {', '.join(unknown)}: not search keys of this sweep "
            f"(search keys: {', '.join(spec.search) or 'none'})"
        )
    document = spec.base.to_dict()
    document["train"]["seed"] += spec.seed
    for key, value in active_params(spec, plain).items():
        set_dotted(document, key, value)
    return config_from_dict(TrialConfig, document, source=f"{spec.source} [trial {described}]")


def _plain(value: Any) -> Any:
    """Turn numpy scalars (as Ray's samplers return) into Python scalars."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def smoke_overrides(spec: SweepSpec) -> SweepSpec:
    """Return the ``--smoke`` variant: 2 trials of 20 steps on a small slice, in ``<name>-smoke``.

    The number of steps, the evaluation cadence, the batch size and ``data.max_rows`` are
    fixed, so search entries for them are dropped; end-of-trial scoring uses small samples.
    """
    document = spec.to_dict()
    document["name"] = f"{spec.name}-smoke"
    train = document["base"]["train"]
    train["num_steps"] = min(train["num_steps"], 20)
    train["eval_every_steps"] = min(train["eval_every_steps"], 10)
    train["num_tensorboard_samples"] = min(train["num_tensorboard_samples"], 16)
    train["batch_size"] = min(train["batch_size"], 64)  # fits the smoke slice of the data
    data = document["base"]["data"]
    data["max_rows"] = min(data["max_rows"] or 500, 500)
    document["ranking"]["num_eval_samples"] = min(document["ranking"]["num_eval_samples"], 64)
    quality = document["base"]["quality"]  # the end-of-trial scoring runs, on small samples
    for key, cap in SMOKE_QUALITY_CAPS.items():
        quality[key] = min(quality[key], cap)
    tune = document["tune"]
    tune["num_samples"] = 2
    tune["max_concurrent_trials"] = min(tune["max_concurrent_trials"], 2)
    tune["grace_period_steps"] = min(tune["grace_period_steps"], 10)
    for fixed in ("train.num_steps", "train.eval_every_steps", "train.batch_size", "data.max_rows"):
        document["search"].pop(fixed, None)
    return sweep_spec_from_dict(document, source=spec.source)
