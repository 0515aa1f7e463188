"""Arguments of the commands whose code needs torch: ``train``, ``export`` and ``sample``.

They are declared here, apart from that code, so that the ``gan-hpc`` parser (and ``--help``)
builds without importing torch; each command imports its module only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gan_hpc.config_validation import add_override_argument
from gan_hpc.trial_dir import CHECKPOINT_KINDS

DEFAULT_TOP_K = 3  # trials a sweep's export writes when --top is not given
DEFAULT_NUM_SAMPLES = 1000


def build_train_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``gan-hpc train`` and ``python -m gan_hpc.trial.train``."""
    parser = parser or argparse.ArgumentParser(
        prog="python -m gan_hpc.trial.train",
        description="Train one GAN trial (DDP-aware; torchrun works).",
    )
    parser.add_argument(
        "config",
        type=Path,
        help="a trial directory (with config.json), a trial config, or a sweep spec (its base)",
    )
    parser.add_argument(
        "--out", type=Path, help="trial directory to write (required unless CONFIG is one)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the checkpoints already in --out"
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        help="stop this run after step N (checkpointed), without changing the config",
    )
    add_override_argument(parser, "override a config value")
    return parser


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gan-hpc export``."""
    parser.add_argument(
        "sweep_dir",
        metavar="DIR",
        type=Path,
        help="a sweep directory (spec.yaml, trials/), or one trial's directory (gan-hpc train "
        "--out: config.json, checkpoints/), exported as one bundle at --out",
    )
    parser.add_argument(
        "--top",
        dest="top_k",
        type=int,
        help=f"how many trials of a sweep to export (default {DEFAULT_TOP_K})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the bundles (a trial directory: the bundle folder itself)",
    )
    parser.add_argument("--by", metavar="METRIC", help="rank by this metric, not the spec's score")
    parser.add_argument("--mode", choices=("min", "max"), help="direction of --by")
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_KINDS,
        default="best",
        help="export (and rank by) each trial's best or last checkpoint",
    )
    parser.add_argument(
        "--torch-export",
        dest="use_torch_export",
        action="store_true",
        help="also write the generator as a torch.export program, when the generator allows it",
    )
    parser.add_argument("--force", action="store_true", help="replace existing bundles")


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gan-hpc sample``."""
    parser.add_argument("bundle", type=Path, help="a bundle folder written by `gan-hpc export`")
    parser.add_argument(
        "-n",
        "--num-samples",
        type=int,
        default=DEFAULT_NUM_SAMPLES,
        help=f"how many samples (default {DEFAULT_NUM_SAMPLES})",
    )
    parser.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a class (y=yes, label=3) or a coordinate in data units (x_m=0.3); repeatable",
    )
    parser.add_argument("--seed", type=int, help="the same seed gives the same samples")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="tables: .csv/.arff/.parquet; images: .png/.npz; signals: .csv/.parquet (long "
        "format)/.npz",
    )
