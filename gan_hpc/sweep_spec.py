"""The sweep spec: one typed, frozen object per ``sweeps/*.yaml`` file, validated once at load.

A sweep file has these top-level blocks (every one optional but ``base`` in practice)::

    name: adult_mlp                  # the sweep directory is <storage.path>/<name>
    seed: 0                          # seeds the search algorithm (Optuna sampler / random search)
    base: {...}                      # a TrialConfig: the values every trial starts from
    search:                          # dotted TrialConfig paths -> distributions
      optim.generator.lr: {loguniform: [1.0e-5, 1.0e-3]}
      loss.name: {choice: [bce_logits, hinge, wasserstein]}
      loss.clip_value: {loguniform: [0.005, 0.05], when: {loss.name: [wasserstein]}}
      model.generator.depth: {int: [1, 3]}
    tune: {...}                      # TuneSettings: metric, budget, ASHA, Optuna
    resources: {...}                 # ResourcesConfig: CPUs/GPUs/DDP ranks per trial
    launcher: local                  # local | slurm
    slurm: {...}                     # SlurmConfig (validated even when launcher is local)
    ranking: {...}                   # a ConvergenceConfig: gate thresholds + score
    storage: {path: runs}

``ranking`` replaces ``base.convergence``: the trainer picks its best checkpoint with the very
rule the leaderboard ranks trials by (gate first, then the score), so a spec may not set
``base.convergence`` and may not search ``convergence.*``.

:func:`load_sweep_spec` is the only validator. Every error is a one-line
:class:`~gan_hpc.errors.SpecError` naming the file, the key and the fix, e.g.
``sweeps/x.yaml: search.optim.generator.lr: low 0.01 > high 0.001 (swap them)``. Each search
entry is checked by applying its endpoints (or each choice) to the base config and running the
TrialConfig validation, so every field rule is reused. Only ``tune.py`` turns the search space
into Ray or Optuna objects.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

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
from gan_hpc.convergence import ALL_CONVERGENCE, ALL_TRAINING
from gan_hpc.errors import SpecError
from gan_hpc.quality import metric_mode

logger = logging.getLogger(__name__)

KNOWN_METRICS: tuple[str, ...] = ALL_TRAINING + ALL_CONVERGENCE
SWEEP_KEYS: tuple[str, ...] = (
    "name",
    "seed",
    "base",
    "search",
    "tune",
    "resources",
    "launcher",
    "slurm",
    "ranking",
    "storage",
)
Launcher = Literal["local", "slurm"]

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SBATCH_OPTION_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
# sbatch options that SlurmConfig already types; additional_parameters must not shadow them.
_TYPED_SBATCH_OPTIONS = {
    "partition": "partition",
    "account": "account",
    "qos": "qos",
    "constraint": "constraint",
    "time": "timeout_min",
    "mem": "mem_gb",
    "cpus-per-task": "cpus_per_task",
    "gpus-per-node": "gpus_per_node",
    "signal": "signal_delay_s",
    "array": "array_parallelism",
}
_SCALAR_TYPES = (type(None), bool, int, float, str)
# --smoke: quality sample sizes small enough that scoring takes seconds, not minutes
SMOKE_QUALITY_CAPS = {
    "num_rows": 500,
    "num_dcr_rows": 200,
    "num_image_samples": 500,
    "num_classifier_steps": 50,
    "num_classifier_images": 1000,
    "num_signal_samples": 200,
}


def _check_metric(key: str, metric: str) -> None:
    """Reject a metric name that no evaluation reports, suggesting the closest one."""
    if metric in KNOWN_METRICS:
        return
    if is_quality_metric(metric):
        raise ConfigValueError(
            key,
            f"'{metric}' is computed when a trial ends, but Optuna and ASHA need a metric of "
            "every evaluation; rank by it with ranking.score instead",
        )
    close = difflib.get_close_matches(metric, KNOWN_METRICS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(KNOWN_METRICS)}"
    raise ConfigValueError(key, f"unknown metric '{metric}' ({hint})")


# ------------------------------------------------------------------------------ distributions


@dataclass(frozen=True, slots=True, kw_only=True)
class Uniform:
    """A float drawn uniformly from ``[low, high]``."""

    kind: ClassVar[str] = "uniform"
    low: float
    high: float
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{uniform: [0.0, 0.5]}``."""
        return _with_when({self.kind: [self.low, self.high]}, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogUniform:
    """A float drawn log-uniformly from ``[low, high]`` (``low > 0``)."""

    kind: ClassVar[str] = "loguniform"
    low: float
    high: float
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{loguniform: [1.0e-5, 1.0e-3]}``."""
        return _with_when({self.kind: [self.low, self.high]}, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive, in multiples of ``step`` from ``low``."""

    kind: ClassVar[str] = "int"
    low: int
    high: int
    step: int = 1
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{int: [1, 3]}`` or ``{int: [16, 256], step: 16}``."""
        data: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.step != 1:
            data["step"] = self.step
        return _with_when(data, self.when)


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """One of a fixed list of scalar values (null, bool, int, float or str)."""

    kind: ClassVar[str] = "choice"
    values: tuple[Any, ...]
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the YAML form, e.g. ``{choice: [hinge, wasserstein]}``."""
        return _with_when({self.kind: list(self.values)}, self.when)


Distribution = Uniform | LogUniform | IntRange | Choice
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
    "int": IntRange,
    "choice": Choice,
}
_DISTRIBUTION_OPTIONS = ("when", "step")


def _with_when(data: dict[str, Any], when: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    """Add the ``when`` condition to a distribution's YAML form when there is one."""
    if when:
        data["when"] = {key: list(values) for key, values in when.items()}
    return data


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
        _check_metric("metric", self.metric)
        require(self.num_samples >= 1, "num_samples", "must be >= 1")
        require(self.max_concurrent_trials >= 1, "max_concurrent_trials", "must be >= 1")
        require(self.grace_period_steps >= 1, "grace_period_steps", "must be >= 1")
        require(self.reduction_factor >= 2, "reduction_factor", "must be >= 2")
        require(self.max_retries_per_trial >= 0, "max_retries_per_trial", "must be >= 0")
        for i, metric in enumerate(self.multi_objective_metrics):
            _check_metric(f"multi_objective_metrics[{i}]", metric)
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
class SlurmConfig:
    """sbatch settings for the SLURM launcher (trial jobs) and the sweep driver job."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    timeout_min: int = 60
    mem_gb: float | None = None
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    signal_delay_s: int = 120  # SIGUSR1 this long before the time limit: checkpoint + requeue
    max_requeues: int = 3
    array_parallelism: int = 8
    additional_parameters: dict[str, str] = field(default_factory=dict)  # any other sbatch option
    driver_timeout_min: int = 1440
    driver_cpus: int = 2
    driver_mem_gb: float = 4.0
    setup: tuple[str, ...] = ()  # shell lines run before each job, e.g. "module load cuda"

    def __post_init__(self) -> None:
        require(self.timeout_min >= 1, "timeout_min", "must be >= 1")
        require(self.mem_gb is None or self.mem_gb > 0, "mem_gb", "must be > 0 or null")
        require(self.cpus_per_task >= 1, "cpus_per_task", "must be >= 1")
        require(self.gpus_per_node >= 0, "gpus_per_node", "must be >= 0")
        require(
            0 <= self.signal_delay_s < self.timeout_min * 60,
            "signal_delay_s",
            f"must be >= 0 and below timeout_min * 60 = {self.timeout_min * 60}, "
            f"got {self.signal_delay_s}",
        )
        require(self.max_requeues >= 0, "max_requeues", "must be >= 0")
        require(self.array_parallelism >= 1, "array_parallelism", "must be >= 1")
        require(self.driver_timeout_min >= 1, "driver_timeout_min", "must be >= 1")
        require(self.driver_cpus >= 1, "driver_cpus", "must be >= 1")
        require(self.driver_mem_gb > 0, "driver_mem_gb", "must be > 0")
        for option in self.additional_parameters:
            key = f"additional_parameters.{option}"
            require(
                bool(_SBATCH_OPTION_PATTERN.match(option)),
                key,
                "not an sbatch option name; write the long option without dashes, "
                "e.g. mail-user or mail_user",
            )
            typed = _TYPED_SBATCH_OPTIONS.get(option.replace("_", "-"))
            require(typed is None, key, f"use slurm.{typed} instead")


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
    launcher: Launcher
    slurm: SlurmConfig
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
            "slurm": config_to_dict(self.slurm),
            "ranking": config_to_dict(self.ranking),
            "storage": config_to_dict(self.storage),
        }

    def sweep_dir(self, out: Path | None = None) -> Path:
        """Return ``<root>/<name>``, where ``out`` (when given) replaces ``storage.path``."""
        root = Path(out) if out is not None else Path(self.storage.path)
        return root / self.name


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
    for key in document:
        if key not in SWEEP_KEYS:
            close = difflib.get_close_matches(str(key), SWEEP_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(SWEEP_KEYS)}"
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
    launcher = document.get("launcher", "local")
    if launcher not in typing.get_args(Launcher):
        raise SpecError(f"{source}: launcher: {launcher!r} is not one of 'local', 'slurm'")

    ranking = config_from_dict(
        ConvergenceConfig, document.get("ranking"), source=source, prefix="ranking"
    )
    try:
        _check_ranking(ranking)
    except (ConfigValueError, SpecError) as exc:
        raise SpecError(f"{source}: {exc}") from None
    base = _load_base(document.get("base"), ranking, source=source)
    tune = _block(TuneSettings, document, "tune", source)
    resources = _block(ResourcesConfig, document, "resources", source)
    slurm = _block(SlurmConfig, document, "slurm", source)
    storage = _block(StorageConfig, document, "storage", source)

    search = _load_search(document.get("search"), base, source=source)
    if tune.scheduler == "asha" and "train.num_steps" not in search:
        if tune.grace_period_steps > base.train.num_steps:
            raise SpecError(
                f"{source}: tune.grace_period_steps: {tune.grace_period_steps} > "
                f"base.train.num_steps {base.train.num_steps} (lower it)"
            )
    spec = SweepSpec(
        name=name,
        seed=seed,
        base=base,
        search=search,
        tune=tune,
        resources=resources,
        launcher=launcher,
        slurm=slurm,
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


def _check_ranking(ranking: ConvergenceConfig) -> None:
    """The ranking score is an evaluation or a quality metric, ranked in its better direction."""
    if ranking.checkpoint_score is not None:
        _check_metric("ranking.checkpoint_score", ranking.checkpoint_score)
    if not is_quality_metric(ranking.score):
        _check_metric("ranking.score", ranking.score)
        return
    try:
        better = metric_mode(ranking.score)
    except SpecError as exc:
        raise ConfigValueError("ranking.score", str(exc).removeprefix("quality: ")) from None
    if ranking.score_mode != better:
        raise ConfigValueError(
            "ranking.score_mode",
            f"'{ranking.score}' is better when {'higher' if better == 'max' else 'lower'}; "
            f"set ranking.score_mode: {better}",
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
        elif key.split(".", 1)[0] in SWEEP_KEYS:
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


# ------------------------------------------------------------------------------------ search


def _leaf_types(cls: type[Any], prefix: str = "") -> dict[str, Any]:
    """Dotted path -> type hint of every non-dataclass field under ``cls``."""
    leaves: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        hint = hints[item.name]
        dotted = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(hint):
            leaves.update(_leaf_types(hint, f"{dotted}."))  # type: ignore[arg-type]
        else:
            leaves[dotted] = hint
    return leaves


TRIAL_LEAVES: dict[str, Any] = _leaf_types(TrialConfig)
SEARCHABLE_PATHS: tuple[str, ...] = tuple(
    p for p in TRIAL_LEAVES if not p.startswith("convergence.")
)


def _load_search(raw: Any, base: TrialConfig, *, source: str) -> dict[str, Distribution]:
    """Parse and validate every search entry against ``base``."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(
            f"{source}: search: expected a mapping of dotted paths to distributions, "
            f"got {type(raw).__name__}"
        )
    base_doc = base.to_dict()
    search: dict[str, Distribution] = {}
    for path, entry in raw.items():
        path = str(path)
        _check_search_path(path, source=source)
        dist = _parse_distribution(entry, where=f"{source}: search.{path}")
        search[path] = _check_values(path, dist, base_doc, source=source)
    # Conditions are checked once every entry is parsed: they may name later entries.
    for path, entry in raw.items():
        if "when" in entry:
            when = _check_when(str(path), entry["when"], search, base, base_doc, source=source)
            search[str(path)] = dataclasses.replace(search[str(path)], when=when)
    search_order_of(search, source=source)  # rejects cycles among conditions
    return search


def _check_search_path(path: str, *, source: str) -> None:
    """Require a search key to be a leaf field of TrialConfig outside ``convergence``."""
    if path in SEARCHABLE_PATHS:
        return
    where = f"{source}: search.{path}"
    if path.startswith("convergence."):
        raise SpecError(
            f"{where}: the ranking rule is shared by every trial; set it under ranking: instead"
        )
    if path.startswith("base."):
        raise SpecError(f"{where}: search keys are relative to base; write '{path[5:]}'")
    close = difflib.get_close_matches(path, SEARCHABLE_PATHS, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "use a dotted TrialConfig field path"
    raise SpecError(f"{where}: unknown key '{path}' ({hint})")


def _parse_distribution(entry: Any, *, where: str) -> Distribution:
    """Turn ``{kind: args, when?: ..., step?: ...}`` into a typed distribution (shape only)."""
    if not isinstance(entry, Mapping):
        raise SpecError(
            f"{where}: expected a distribution such as {{uniform: [low, high]}} or "
            f"{{choice: [a, b]}}, got {entry!r} (to fix a value, set it in base)"
        )
    valid = (*DISTRIBUTIONS, *_DISTRIBUTION_OPTIONS)
    for key in entry:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid)}"
            raise SpecError(f"{where}: unknown key '{key}' ({hint})")
    kinds = [key for key in entry if key in DISTRIBUTIONS]
    if len(kinds) != 1:
        found = f"got {', '.join(kinds)}" if kinds else "got none"
        raise SpecError(f"{where}: needs exactly one of {', '.join(DISTRIBUTIONS)} ({found})")
    kind = kinds[0]
    args = entry[kind]
    if "step" in entry and kind != "int":
        raise SpecError(f"{where}: step only applies to int ranges (remove it)")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SpecError(f"{where}: choice needs a non-empty list, e.g. {{choice: [a, b]}}")
        for value in args:
            if not isinstance(value, _SCALAR_TYPES):
                raise SpecError(
                    f"{where}: choice values must be scalars (null, bool, int, float or str), "
                    f"got {value!r}"
                )
        return Choice(values=tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise SpecError(f"{where}: {kind} needs [low, high], got {args!r}")
    if kind == "int":
        int_low, int_high = (_integer(v, where=where, what="int bounds") for v in args)
        step = _integer(entry.get("step", 1), where=where, what="step")
        _check_range(int_low, int_high, where=where)
        if step < 1 or (int_high - int_low) % step:
            raise SpecError(
                f"{where}: step {step} must be >= 1 and divide high - low = {int_high - int_low}"
            )
        return IntRange(low=int_low, high=int_high, step=step)
    low, high = (_real(v, where=where, kind=kind) for v in args)
    _check_range(low, high, where=where)
    if kind == "loguniform":
        if low <= 0:
            raise SpecError(
                f"{where}: loguniform needs low > 0, got {low:g} (use a positive low or uniform)"
            )
        return LogUniform(low=low, high=high)
    return Uniform(low=low, high=high)


def _integer(value: Any, *, where: str, what: str) -> int:
    """Read an int from YAML, refusing floats and bools."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SpecError(f"{where}: {what} must be integers, got {value!r} (use uniform for floats)")


def _real(value: Any, *, where: str, kind: str) -> float:
    """Read a float from YAML (which reads ``1e-4`` without a dot as a string)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise SpecError(f"{where}: {kind} bounds must be numbers, got {value!r}")


def _check_range(low: float, high: float, *, where: str) -> None:
    """``low < high``, with the fix spelled out."""
    if low > high:
        raise SpecError(f"{where}: low {low:g} > high {high:g} (swap them)")
    if low == high:
        raise SpecError(f"{where}: low == high == {low:g} (set the fixed value in base instead)")


def _check_values(
    path: str, dist: Distribution, base_doc: Mapping[str, Any], *, source: str
) -> Distribution:
    """Validate the values a distribution can take against the field; return them coerced."""
    where = f"{source}: search.{path}"
    hint = _strip_optional(TRIAL_LEAVES[path])
    if isinstance(dist, (Uniform, LogUniform)) and hint is not float:
        raise SpecError(
            f"{where}: {dist.kind} samples floats but {path} is {_hint_name(hint)}; "
            + ("use {int: [low, high]}" if hint is int else "use {choice: [...]}")
        )
    if isinstance(dist, IntRange) and hint not in (int, float):
        raise SpecError(
            f"{where}: int samples integers but {path} is {_hint_name(hint)}; use {{choice: [...]}}"
        )
    if isinstance(dist, Choice):
        values = tuple(_validate_value(path, v, base_doc, source, where) for v in dist.values)
        for i, value in enumerate(values):
            if value in values[:i]:
                raise SpecError(f"{where}: choice lists {value!r} twice (remove the duplicate)")
        return Choice(values=values)
    for endpoint in (dist.low, dist.high):
        _validate_value(path, endpoint, base_doc, source, where)
    return dist


def _strip_optional(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _hint_name(hint: Any) -> str:
    """Name a field type readably for errors."""
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _validate_value(
    path: str, value: Any, base_doc: Mapping[str, Any], source: str, where: str
) -> Any:
    """Apply ``path=value`` to the base config, run TrialConfig validation, return the value.

    The value comes back coerced by the field's type (YAML's ``1e-4`` string becomes a float).
    """
    document = copy.deepcopy(dict(base_doc))
    _set_dotted(document, path, value)
    try:
        config = config_from_dict(TrialConfig, document, source=source)
    except SpecError as exc:
        message = str(exc).removeprefix(f"{source}: ").removeprefix(f"{path}: ")
        raise SpecError(f"{where}: {message}") from None
    return _get_dotted(config, path)


def _check_when(
    path: str,
    raw: Any,
    search: Mapping[str, Distribution],
    base: TrialConfig,
    base_doc: Mapping[str, Any],
    *,
    source: str,
) -> dict[str, tuple[Any, ...]]:
    """Validate a conditional parameter's ``when`` mapping; return it with coerced values."""
    where = f"{source}: search.{path}.when"
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(
            f"{where}: expected a mapping such as {{loss.name: [wasserstein]}}, got {raw!r}"
        )
    when: dict[str, tuple[Any, ...]] = {}
    for key, allowed in raw.items():
        key = str(key)
        if key == path:
            raise SpecError(f"{where}: a parameter cannot be conditional on itself")
        if key not in search and key not in SEARCHABLE_PATHS:
            candidates = [*search, *SEARCHABLE_PATHS]
            close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "use a search key or a base field"
            raise SpecError(f"{where}: unknown key '{key}' ({hint})")
        if not isinstance(allowed, list) or not allowed:
            raise SpecError(f"{where}.{key}: expected a non-empty list of values, e.g. [{allowed}]")
        values = []
        for value in allowed:
            if not isinstance(value, _SCALAR_TYPES):
                raise SpecError(f"{where}.{key}: values must be scalars, got {value!r}")
            values.append(_validate_value(key, value, base_doc, source, f"{where}.{key}"))
        parent = search.get(key)
        for value in values:
            if isinstance(parent, Choice) and value not in parent.values:
                raise SpecError(
                    f"{where}.{key}: {value!r} is never sampled (choices: "
                    f"{', '.join(repr(v) for v in parent.values)})"
                )
            if isinstance(parent, (Uniform, LogUniform, IntRange)) and not (
                parent.low <= value <= parent.high
            ):
                raise SpecError(
                    f"{where}.{key}: {value!r} is outside [{parent.low}, {parent.high}]"
                )
        if parent is None and _get_dotted(base, key) not in values:
            logger.warning(
                "%s: search.%s is never sampled: base %s is %r, not one of %s",
                source,
                path,
                key,
                _get_dotted(base, key),
                values,
            )
        when[key] = tuple(values)
    return when


def search_order_of(search: Mapping[str, Distribution], *, source: str = "spec") -> list[str]:
    """Order search keys so that every condition's parameters come before their dependants.

    Raises:
        SpecError: when the conditions form a cycle.

    """
    order: list[str] = []
    visiting: set[str] = set()

    def visit(key: str, chain: tuple[str, ...]) -> None:
        if key in order:
            return
        if key in visiting:
            cycle = " -> ".join((*chain, key))
            raise SpecError(f"{source}: search.{key}.when: conditions form a cycle ({cycle})")
        visiting.add(key)
        for parent in search[key].when:
            if parent in search:
                visit(parent, (*chain, key))
        visiting.discard(key)
        order.append(key)

    for key in search:
        visit(key, ())
    return order


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
        elif _get_dotted(spec.base, parent) not in allowed:
            return False
    return True


def trial_config_for(spec: SweepSpec, params: Mapping[str, Any]) -> TrialConfig:
    """Build one trial's validated TrialConfig: ``base`` plus the sampled ``params`` (dotted).

    Parameters whose ``when`` condition does not hold are ignored, so a trial's config does not
    depend on whether the search algorithm sampled them.

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
    for key, value in active_params(spec, plain).items():
        _set_dotted(document, key, value)
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


# ------------------------------------------------------------------------------ dotted paths


def _set_dotted(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating missing levels."""
    *parents, last = path.split(".")
    node = document
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def _get_dotted(config: Any, path: str) -> Any:
    """Read ``a.b.c`` from a config dataclass tree."""
    for part in path.split("."):
        config = getattr(config, part)
    return config
