"""Typed, frozen configs: the only place defaults live, and the one validator for YAML/JSON input.

A trial config is a tree of frozen dataclasses. :func:`config_from_dict` builds one from plain
data (:mod:`gan_hpc.config_validation`), rejecting unknown keys, wrong types and impossible
values, each as a one-line :class:`~gan_hpc.errors.SpecError` naming the file, the key and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from gan_hpc.config_validation import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_yaml,
    require,
)

DataFormat = Literal[
    "arff", "csv", "idx", "npz", "npy", "pixels_csv", "mat", "frf_excel", "synthetic_frf"
]
NumericTransform = Literal["quantile", "minmax"]
CategoricalEncoding = Literal["onehot", "codes"]
MissingPolicy = Literal["category", "drop_rows"]
FrfRepresentation = Literal["log_magnitude", "magnitude", "real_imag"]
SignalScaling = Literal["global", "per_frequency"]
ModelFamily = Literal["mlp", "dcgan", "conv1d"]
Activation = Literal["relu", "leaky_relu", "tanh", "sigmoid"]
Norm = Literal["none", "batch", "layer", "spectral"]
OutputActivation = Literal["auto", "tanh", "sigmoid", "none"]
Conditioning = Literal["concat", "projection"]
TabularHead = Literal["softmax", "gumbel"]
LatentDistribution = Literal["normal", "uniform"]
LossName = Literal["bce", "bce_logits", "hinge", "lsgan", "wasserstein", "wgan_gp"]
OptimizerName = Literal["adam", "sgd", "rmsprop"]
Device = Literal["auto", "cpu", "cuda"]
Mode = Literal["min", "max"]
ScoreSplit = Literal["test", "validation"]
GuardAction = Literal["stop", "flag"]

QUALITY_PREFIX = "quality/"  # every held-out quality metric's name starts with this


# --------------------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How to read a delimited text file (CSV/TSV)."""

    delimiter: str | None = None  # None: detected from the first lines
    has_header: bool = True
    column_names: tuple[str, ...] = ()  # names for a headerless file
    skip_rows: int = 0  # leading lines to skip (e.g. adult.test's "|1x3 Cross validator")
    missing_values: tuple[str, ...] = ("?",)
    categorical_columns: tuple[str, ...] = ()  # force these to categorical even if numeric

    def __post_init__(self) -> None:
        require(self.skip_rows >= 0, "skip_rows", f"must be >= 0, got {self.skip_rows}")
        require(
            self.delimiter is None or len(self.delimiter) == 1 or self.delimiter == r"\s+",
            "delimiter",
            f"must be one character (or null to detect), got {self.delimiter!r}",
        )


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """Where labels and arrays live in image files (IDX, NPZ/NPY, CSV of pixels)."""

    labels_path: str | None = None  # IDX/NPY labels file beside the images
    images_key: str | None = None  # NPZ member holding images (None: the only/first 3-D+ array)
    labels_key: str | None = None  # NPZ member holding labels
    label_column: int | None = -1  # pixels_csv: index of the label column (None: no labels)
    image_shape: tuple[int, ...] = ()  # (H, W) for flat pixels; () infers a square


@dataclass(frozen=True, slots=True)
class MatOptions:
    """Which variable of a MATLAB v5 file to read, and how to shape its rows."""

    variable: str | None = None  # None: the only non-meta variable
    samples_axis: Literal[0, 1] = 0  # axis that indexes samples
    pad_to_square: bool = True  # zero-pad flat rows to the next square side (4734 -> 69x69)


@dataclass(frozen=True, slots=True)
class FrfOptions:
    """The FRF Excel layout: a coordinates table naming one Excel file per excitation point."""

    coordinates_file: str = "coordinates.xlsx"
    frf_folder: str | None = None  # None: beside the coordinates file, or its 'frf/' folder
    file_column: str | None = None  # None: the column whose values are file names
    coordinate_columns: tuple[str, ...] = ()  # () : every numeric column
    representation: FrfRepresentation = "log_magnitude"


@dataclass(frozen=True, slots=True)
class SyntheticFrfConfig:
    """The built-in simply supported plate simulator (modal superposition)."""

    num_points: int = 300
    layout: Literal["random", "grid"] = "random"
    length_x_m: float = 0.6
    length_y_m: float = 0.4
    thickness_m: float = 0.003
    youngs_modulus_pa: float = 70e9
    poisson_ratio: float = 0.33
    density_kg_m3: float = 2700.0
    damping_ratio: float = 0.02
    num_modes_per_axis: int = 6
    freq_min_hz: float = 5.0
    freq_max_hz: float = 400.0
    num_frequencies: int = 128
    response_point: tuple[float, float] = (0.37, 0.23)  # fractions of the plate sides
    noise_std: float = 0.0  # relative Gaussian noise on the complex FRF
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.num_points >= 4, "num_points", f"need at least 4, got {self.num_points}")
        require(self.num_frequencies >= 8, "num_frequencies", "need at least 8 frequencies")
        require(
            0 < self.freq_min_hz < self.freq_max_hz,
            "freq_min_hz",
            f"need 0 < freq_min_hz < freq_max_hz, got {self.freq_min_hz}..{self.freq_max_hz}",
        )
        require(0 < self.damping_ratio < 1, "damping_ratio", "must be in (0, 1)")
        require(-1 < self.poisson_ratio < 0.5, "poisson_ratio", "must be in (-1, 0.5)")
        for name in (
            "length_x_m",
            "length_y_m",
            "thickness_m",
            "youngs_modulus_pa",
            "density_kg_m3",
        ):
            require(getattr(self, name) > 0, name, "must be > 0")
        require(self.num_modes_per_axis >= 1, "num_modes_per_axis", "must be >= 1")
        require(
            all(0 < f < 1 for f in self.response_point),
            "response_point",
            "both fractions must be in (0, 1)",
        )
        require(self.noise_std >= 0, "noise_std", "must be >= 0")


@dataclass(frozen=True, slots=True)
class DataConfig:
    """Which data a trial trains on, how it is transformed and split."""

    format: DataFormat | None = None  # None: inferred from the file suffix
    path: str | None = None
    test_path: str | None = None  # a separate held-out test file (e.g. adult.test.arff)
    drop_columns: tuple[str, ...] = ()
    conditional: bool = False  # condition on labels / condition_column / FRF coordinates
    condition_column: str | None = None  # tabular: the categorical column to condition on
    numeric_transform: NumericTransform = "quantile"
    # quantile transform: integer-valued numerics (ages, counts) get U(-0.5, 0.5) noise before
    # their quantiles are taken, so ties become a smooth density a generator can match; the
    # decoder rounds them back
    dequantize: bool = True
    # a numeric column whose most frequent value holds at least this share of the training rows
    # (Adult's capital-gain: 0 in 92 %) is encoded as a mixed column: a one-hot [at that value,
    # elsewhere] and the other values scaled on their own, so its tail is not squeezed into the
    # last few percent of the scale; None encodes every numeric as one scaled value
    spike_min_share: float | None = 0.5
    # a column that pairs one-to-one with a categorical column on every training row (Adult's
    # education-num of education) is decoded from that column instead of generated, so the
    # pairing holds in every generated row
    derive_recodings: bool = True
    minmax_range: tuple[float, float] = (-1.0, 1.0)
    categorical_encoding: CategoricalEncoding = "onehot"
    missing: MissingPolicy = "category"
    signal_scaling: SignalScaling = "global"
    max_rows: int | None = None  # seeded subsample, for quick runs
    val_fraction: float = 0.1
    test_fraction: float = 0.1  # ignored when test_path is given
    split_seed: int = 0
    use_cache: bool = True
    cache_dir: str | None = None  # None: $GAN_HPC_CACHE_DIR or ~/.cache/gan_hpc
    csv: CsvOptions = field(default_factory=CsvOptions)
    images: ImageOptions = field(default_factory=ImageOptions)
    mat: MatOptions = field(default_factory=MatOptions)
    frf: FrfOptions = field(default_factory=FrfOptions)
    synthetic: SyntheticFrfConfig = field(default_factory=SyntheticFrfConfig)

    def __post_init__(self) -> None:
        require(
            self.path is not None or self.format == "synthetic_frf",
            "path",
            "is required unless format is 'synthetic_frf'",
        )
        low, high = self.minmax_range
        require(low < high, "minmax_range", f"low {low} >= high {high} (swap them)")
        require(0 < self.val_fraction < 0.5, "val_fraction", "must be in (0, 0.5)")
        require(0 < self.test_fraction < 0.5, "test_fraction", "must be in (0, 0.5)")
        require(
            self.val_fraction + self.test_fraction < 0.9,
            "val_fraction",
            "val_fraction + test_fraction must leave at least 10% for training",
        )
        require(self.max_rows is None or self.max_rows >= 10, "max_rows", "must be >= 10 or null")
        require(
            self.spike_min_share is None or 0 < self.spike_min_share <= 1,
            "spike_min_share",
            "must be in (0, 1] or null",
        )


# ------------------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Shape of one network (generator or discriminator)."""

    depth: int = 2  # hidden layers (MLP) or conv blocks (dcgan/conv1d)
    width: int = 128  # hidden units (MLP) or base channels (conv)
    activation: Activation = "leaky_relu"
    dropout: float = 0.0
    norm: Norm = "none"

    def __post_init__(self) -> None:
        require(1 <= self.depth <= 8, "depth", f"must be in 1..8, got {self.depth}")
        require(4 <= self.width <= 4096, "width", f"must be in 4..4096, got {self.width}")
        require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True, slots=True)
class GeneratorNetworkConfig(NetworkConfig):
    """The generator's shape: as :class:`NetworkConfig`, with BatchNorm by default (DCGAN)."""

    norm: Norm = "batch"
    # mlp: each hidden block's output is concatenated with its input (CTGAN's residual
    # generator), so the head sees the latent code and every layer's features
    residual: bool = False


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Generator/discriminator family and their shared settings."""

    family: ModelFamily = "mlp"
    latent_dim: int = 64
    latent_distribution: LatentDistribution = "normal"
    generator: GeneratorNetworkConfig = field(default_factory=GeneratorNetworkConfig)
    discriminator: NetworkConfig = field(default_factory=NetworkConfig)
    output_activation: OutputActivation = "auto"  # auto: per data kind and transform
    conditioning: Conditioning = "concat"
    condition_embedding_dim: int = 16
    # continuous conditions (FRF coordinates) are encoded as sin/cos at this many frequencies
    # before their embedding, so smooth and oscillating dependences (mode shapes) are easy to
    # learn; 0 embeds the raw coordinates linearly
    condition_num_frequencies: int = 6
    tabular_head: TabularHead = "softmax"
    gumbel_tau: float = 0.5
    use_ema: bool = True
    ema_decay: float = 0.999
    # mlp discriminators: judge packs of this many samples at once (PacGAN, Lin et al. 2018),
    # so a generator that repeats itself is easy to tell apart; 1 judges samples one by one
    pac: int = 1

    def __post_init__(self) -> None:
        require(1 <= self.latent_dim <= 4096, "latent_dim", "must be in 1..4096")
        require(self.condition_embedding_dim >= 1, "condition_embedding_dim", "must be >= 1")
        require(
            0 <= self.condition_num_frequencies <= 64,
            "condition_num_frequencies",
            f"must be in 0..64, got {self.condition_num_frequencies}",
        )
        require(self.gumbel_tau > 0, "gumbel_tau", "must be > 0")
        require(0 < self.ema_decay < 1, "ema_decay", f"must be in (0, 1), got {self.ema_decay}")
        require(1 <= self.pac <= 64, "pac", f"must be in 1..64, got {self.pac}")
        require(
            self.pac == 1 or (self.family == "mlp" and self.conditioning == "concat"),
            "pac",
            "packs exist for family 'mlp' with conditioning 'concat' only; set pac: 1",
        )
        require(
            not getattr(self.generator, "residual", False) or self.family == "mlp",
            "generator.residual",
            f"residual blocks exist for family 'mlp' only, not '{self.family}'; set it to false",
        )


@dataclass(frozen=True, slots=True)
class LossConfig:
    """The adversarial loss and its knobs."""

    name: LossName = "bce_logits"
    n_critic: int = 1  # discriminator steps per generator step
    clip_value: float = 0.01  # wasserstein weight clipping to [-c, c]
    gp_lambda: float = 10.0  # wgan_gp gradient-penalty weight
    # paired data only (continuous conditions, one real sample per condition, e.g. FRF): the
    # generator also pays this times the L1 distance between its sample at a real condition
    # and the real sample there (pix2pix's cGAN + L1); 0 is a pure GAN
    reconstruction_weight: float = 0.0
    # tables only: the generator also pays this times the squared distance between its batch's
    # feature means and the real batch's, class by class when conditioned on a class (each
    # category's share of its column, each numeric's mean); 0: off
    marginal_weight: float = 0.0

    def __post_init__(self) -> None:
        require(1 <= self.n_critic <= 20, "n_critic", "must be in 1..20")
        require(self.reconstruction_weight >= 0, "reconstruction_weight", "must be >= 0")
        require(self.marginal_weight >= 0, "marginal_weight", "must be >= 0")
        require(self.clip_value > 0, "clip_value", "must be > 0")
        require(self.gp_lambda >= 0, "gp_lambda", "must be >= 0")


@dataclass(frozen=True, slots=True)
class OptimizerConfig:
    """One network's optimiser."""

    name: OptimizerName = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0  # sgd / rmsprop
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require(0 < self.lr < 1, "lr", f"must be in (0, 1), got {self.lr}")
        require(all(0 <= b < 1 for b in self.betas), "betas", "each must be in [0, 1)")
        require(0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", "must be >= 0")


@dataclass(frozen=True, slots=True)
class OptimConfig:
    """Separate optimisers for the two networks."""

    generator: OptimizerConfig = field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """The training loop: budget, evaluation cadence, checkpoints, devices."""

    batch_size: int = 64  # per rank
    num_steps: int = 1000  # generator updates
    eval_every_steps: int = 100  # convergence metrics, report, checkpoint
    keep_last_checkpoints: int = 2
    seed: int = 0
    device: Device = "auto"
    use_bf16: bool = False  # autocast on GPU only
    # torch intra-op threads per rank; None: the CPUs the launcher gave each rank (local: the
    # sweep's resources.cpus_per_trial / world_size; slurm: cpus_per_task), and for a lone
    # `gan-hpc train` this process's CPUs shared among the node's ranks (dist_env.rank_threads)
    num_threads: int | None = None
    max_grad_norm: float | None = None  # clip gradient norms when set
    # None: constant learning rates; a fraction f: both fall linearly from their configured
    # value at step f * num_steps to 0 at num_steps (a function of the step: resumes exactly)
    lr_decay_start: float | None = None
    num_tensorboard_samples: int = 64

    def __post_init__(self) -> None:
        require(1 <= self.batch_size <= 1 << 16, "batch_size", "must be in 1..65536")
        require(
            self.lr_decay_start is None or 0 <= self.lr_decay_start < 1,
            "lr_decay_start",
            f"must be in [0, 1), got {self.lr_decay_start}",
        )
        require(self.num_steps >= 1, "num_steps", "must be >= 1")
        require(self.eval_every_steps >= 1, "eval_every_steps", "must be >= 1")
        require(self.keep_last_checkpoints >= 1, "keep_last_checkpoints", "must be >= 1")
        require(self.num_threads is None or self.num_threads >= 1, "num_threads", "must be >= 1")
        require(
            self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", "must be > 0"
        )


@dataclass(frozen=True, slots=True)
class ConvergenceConfig:
    """The seeds' convergence gate, the ranking score and the rule that picks the best checkpoint.

    ``score`` may be a held-out quality metric (``quality/...``), which exists only once a
    trial has ended; the trainer then picks its best checkpoint by ``checkpoint_score``, a
    metric of every evaluation, and the quality metrics are computed for that checkpoint.
    With ``use_quality_at_evaluations`` quality is scored at every evaluation too, and any
    quality metric can pick the checkpoint.
    """

    d_acc_min: float = 0.80  # discriminator accuracy on held-out real vs fresh fakes
    fooling_rate_min: float = 0.40  # share of generated samples D calls real
    # the gate is the first sort key of the leaderboard and of each trial's best checkpoint
    # (the seeds' rule); false: it is still computed and shown, but trials rank by the score
    use_gate_first: bool = True
    num_eval_samples: int = 1000  # fakes for the fooling rate / D accuracy
    score: str = "d_loss_gap"  # metric that ranks trials within a gate group
    score_mode: Mode = "min"
    # where a quality score is read: "test", scored on the test split when a trial ends, or
    # "validation", scored on the validation split at the best checkpoint's evaluation (needs
    # use_quality_at_evaluations), so choosing the winner never sees the test data the
    # leaderboard's quality columns report
    score_split: ScoreSplit = "test"
    checkpoint_score: str | None = None  # None: ``score`` picks the best checkpoint too
    checkpoint_score_mode: Mode = "min"
    # several metrics at once: trials are ranked by Pareto front first (1 = not dominated),
    # then by ``score`` inside a front
    pareto_metrics: tuple[str, ...] = ()
    pareto_modes: tuple[Mode, ...] = ()
    # also score held-out quality at every evaluation (rank 0, the ``quality`` sample sizes),
    # so quality metrics can pick the best checkpoint and drive ASHA and Optuna; costs the
    # scoring time at each evaluation
    use_quality_at_evaluations: bool = False

    def __post_init__(self) -> None:
        require(0 <= self.d_acc_min <= 1, "d_acc_min", "must be in [0, 1]")
        require(0 <= self.fooling_rate_min <= 1, "fooling_rate_min", "must be in [0, 1]")
        require(self.num_eval_samples >= 10, "num_eval_samples", "must be >= 10")
        at_evaluations = self.use_quality_at_evaluations
        require(
            bool(at_evaluations or not is_quality_metric(self.score) or self.checkpoint_score),
            "checkpoint_score",
            f"'{self.score}' is computed when a trial ends; name a metric of every evaluation "
            "that picks the best checkpoint (e.g. checkpoint_score: d_loss_gap), or set "
            "use_quality_at_evaluations: true",
        )
        require(
            self.score_split == "test" or (at_evaluations and is_quality_metric(self.score)),
            "score_split",
            f"'validation' reads a quality score scored at every evaluation; rank by a "
            f"quality/... score with use_quality_at_evaluations: true, or set score_split: test "
            f"(score is '{self.score}')",
        )
        require(
            len(self.pareto_modes) == len(self.pareto_metrics),
            "pareto_modes",
            f"needs one mode per metric ({len(self.pareto_metrics)}), got {len(self.pareto_modes)}",
        )
        require(
            at_evaluations
            or self.checkpoint_score is None
            or not is_quality_metric(self.checkpoint_score),
            "checkpoint_score",
            f"'{self.checkpoint_score}' is computed when a trial ends, not at every evaluation "
            "(set use_quality_at_evaluations: true to score it at every evaluation)",
        )

    @property
    def selection_metric(self) -> tuple[str, Mode]:
        """The metric and direction the trainer picks its best checkpoint by."""
        if self.checkpoint_score is None:
            return self.score, self.score_mode
        return self.checkpoint_score, self.checkpoint_score_mode


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """Training diagnostics that stop (or only flag) a trial going wrong.

    A symptom must last ``patience_evals`` evaluations in a row. A non-finite loss always ends
    the trial as ``diverged``; the best checkpoint so far is kept either way.
    """

    action: GuardAction = "stop"  # stop: the trial ends as "halted"; flag: it trains on, flagged
    patience_evals: int = 3
    # evaluations up to this step are not checked: a freshly initialised generator barely
    # varies its output yet, which would read as mode collapse
    warmup_steps: int = 200
    d_loss_collapse_below: float = 1e-3  # D wins outright (losses with an equilibrium only)
    max_grad_norm: float = 1e4  # either network's gradient norm above this: exploding
    min_diversity_ratio: float = 0.05  # fakes' spread / real spread below this: mode collapse

    def __post_init__(self) -> None:
        require(self.patience_evals >= 1, "patience_evals", "must be >= 1")
        require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        require(self.d_loss_collapse_below >= 0, "d_loss_collapse_below", "must be >= 0")
        require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        require(0 <= self.min_diversity_ratio < 1, "min_diversity_ratio", "must be in [0, 1)")


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityConfig:
    """Held-out quality metrics computed when a trial ends (sample sizes, seeds, thresholds).

    Every subsample is drawn from ``numpy.random.default_rng(seed)``, so a report is
    reproducible; the sizes actually used are recorded with the scores.
    """

    use_at_trial_end: bool = True  # score the best and last checkpoints when a trial ends
    seed: int = 0
    num_threads: int | None = 1  # None: the libraries' defaults (every core)
    # tabular
    target_column: str | None = None  # None: the condition column, else the last categorical
    num_rows: int = 5000  # rows of real_test and of the synthetic table that are scored
    num_reference_rows: int = 100_000  # training rows searched for closest records
    max_trend_pairs: int = 200  # seeded subset of column pairs on wide tables
    num_bins: int = 10  # quantile bins of a numeric column paired with a categorical one
    num_folds: int = 3  # cross-validation folds of the detection classifiers
    num_dcr_rows: int = 1000  # synthetic and holdout rows whose closest records are found
    dcr_ratio_min: float = 0.8  # median DCR(synthetic) / median DCR(holdout) below: memorised
    copy_rate_tolerance: float = 0.01  # exact-copy rate allowed above the holdout's own rate
    # images
    num_image_samples: int = 10_000  # generated and held-out real images compared
    nearest_k: int = 3  # k of the k-NN manifolds (precision/recall)
    num_classifier_steps: int = 600  # training steps of the feature classifier
    classifier_batch_size: int = 64
    num_classifier_images: int = 10_000  # training images the feature classifier sees
    num_pseudo_classes: int = 10  # k-means clusters standing in for classes without labels
    use_cache: bool = True
    cache_dir: str | None = None  # None: $GAN_HPC_CACHE_DIR or ~/.cache/gan_hpc
    # signals
    num_signal_samples: int = 2000  # curve pairs (real, generated at its condition) scored
    num_peaks: int = 3  # most prominent resonances compared per curve
    peak_prominence_db: float = 3.0  # a resonance must stand this far above its surroundings

    def __post_init__(self) -> None:
        at_least_one = (
            "num_rows",
            "num_reference_rows",
            "max_trend_pairs",
            "num_dcr_rows",
            "num_image_samples",
            "nearest_k",
            "num_classifier_steps",
            "classifier_batch_size",
            "num_classifier_images",
            "num_signal_samples",
            "num_peaks",
        )
        for name in at_least_one:
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("num_bins", "num_folds", "num_pseudo_classes"):
            require(getattr(self, name) >= 2, name, f"must be >= 2, got {getattr(self, name)}")
        require(self.num_threads is None or self.num_threads >= 1, "num_threads", "must be >= 1")
        require(0 < self.dcr_ratio_min <= 1, "dcr_ratio_min", "must be in (0, 1]")
        require(0 <= self.copy_rate_tolerance < 1, "copy_rate_tolerance", "must be in [0, 1)")
        require(self.peak_prominence_db > 0, "peak_prominence_db", "must be > 0")


def is_quality_metric(name: str) -> bool:
    """True for a held-out quality metric (computed when a trial ends, not at evaluations)."""
    return name.startswith(QUALITY_PREFIX)


@dataclass(frozen=True, slots=True)
class TrialConfig:
    """Everything one trial needs; ``config.json`` in a trial directory is this, as a dict."""

    data: DataConfig = field(default_factory=lambda: DataConfig(format="synthetic_frf"))
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    convergence: ConvergenceConfig = field(default_factory=ConvergenceConfig)
    guards: GuardConfig = field(default_factory=GuardConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists), JSON- and YAML-ready."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> TrialConfig:
        """Build and validate from plain data; errors name ``source`` and the key."""
        return config_from_dict(cls, data, source=source)


def load_trial_config(path: Path, overrides: Sequence[str] = ()) -> TrialConfig:
    """Load a trial config from YAML/JSON; a sweep spec's ``base:`` block is taken as the trial.

    A spec's ``ranking:`` block becomes the trial's ``convergence``, as it does for the sweep's
    own trials, so one trial of a spec picks its best checkpoint by the spec's rule. Relative
    data paths become absolute (:func:`with_absolute_data_paths`).
    """
    document = load_yaml(path)
    if "base" in document:  # a sweep spec: train its base trial config
        ranking = document.get("ranking")
        document = dict(document.get("base") or {})
        if ranking is not None:
            document["convergence"] = ranking
    document = apply_overrides(document, overrides)
    return with_absolute_data_paths(TrialConfig.from_dict(document, source=str(path)))


def with_absolute_data_paths(config: TrialConfig) -> TrialConfig:
    """The config with ``data.path`` and ``data.test_path`` made absolute.

    Paths in a spec are relative to the directory the user runs gan-hpc from; a trainer runs
    elsewhere (Ray moves its actors into their trial directories, a SLURM job starts in the
    submission directory of its own), so ``config.json`` must hold absolute paths.
    """
    data = config.data

    def absolute(value: str | None) -> str | None:
        return None if value is None else str(Path(value).expanduser().absolute())

    absolute_data = replace(data, path=absolute(data.path), test_path=absolute(data.test_path))
    return config if absolute_data == data else replace(config, data=absolute_data)
