"""The ``gan-hpc`` command line: argparse subcommands, one ``add_arguments``/``run`` pair each.

A :class:`~gan_hpc.errors.GanHpcError` becomes one line on stderr and exit code 2; any other
exception keeps its traceback. The parser is built from cheap modules (no torch, pandas, Ray or
Optuna), so ``--help`` is instant; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from gan_hpc import __version__
from gan_hpc._logging import configure, get_logger
from gan_hpc.arguments import add_export_arguments, add_sample_arguments, build_train_parser
from gan_hpc.config import DataConfig, DataFormat
from gan_hpc.config_validation import add_override_argument, apply_overrides, config_from_dict
from gan_hpc.errors import GanHpcError, SweepError
from gan_hpc.launchers.registry import launcher_names
from gan_hpc.sweep.directory import (
    LEADERBOARD_FORMATS,
    SPEC_FILE,
    TRIALS_DIR,
    check_new_sweep_dir,
    find_sweep_dir,
)
from gan_hpc.sweep.spec import SweepSpec, load_sweep_spec, smoke_overrides
from gan_hpc.trial_dir import CHECKPOINT_KINDS

if TYPE_CHECKING:
    import pandas as pd

logger = get_logger(__name__)


@dataclass(frozen=True)
class Command:
    """One subcommand: how to declare its arguments and how to run it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], object]
    run: Callable[[argparse.Namespace], int]


# ----------------------------------------------------------------------------------- data


def _add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, help="a data file (or an FRF folder)")
    parser.add_argument(
        "--format",
        choices=get_args(DataFormat),
        help="the reader to use (default: from the suffix)",
    )
    parser.add_argument(
        "--synthetic-frf", action="store_true", help="show the built-in FRF simulator's data"
    )
    add_override_argument(parser, "a DataConfig option, e.g. csv.delimiter=';' or mat.variable=X")


def _run_inspect(args: argparse.Namespace) -> int:
    from gan_hpc.data.describe import describe
    from gan_hpc.data.readers import format_for_path, read_data

    if args.synthetic_frf:
        document: dict[str, object] = {"format": "synthetic_frf", "conditional": True}
    elif args.path is not None:
        document = {"path": str(args.path), "format": args.format or format_for_path(args.path)}
    else:
        raise SweepError("data inspect: give a PATH or --synthetic-frf")
    config = config_from_dict(
        DataConfig, apply_overrides(document, args.overrides), source="data inspect"
    )
    print(describe(read_data(config)))
    return 0


# ---------------------------------------------------------------------------------- sweeps


def _add_spec_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="a sweep file, e.g. sweeps/quickstart.yaml")
    add_override_argument(
        parser, "override a value (train.num_steps=50 applies to base; tune.num_samples=4)"
    )


def _run_validate(args: argparse.Namespace) -> int:
    spec = load_sweep_spec(args.spec, args.overrides)
    print(
        f"{args.spec}: ok ({spec.tune.num_samples} trials, {len(spec.search)} searched parameters, "
        f"launcher {spec.launcher}, sweep directory {spec.sweep_dir()})"
    )
    return 0


def _add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    _add_spec_argument(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="the sweep directory itself (default: the spec's <storage.path>/<name>)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="2 trials of a few steps: check before a cluster run"
    )
    parser.add_argument(
        "--resume", action="store_true", help="resume when the sweep directory already exists"
    )
    _add_allow_spec_change_argument(parser)


def _add_allow_spec_change_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-spec-change",
        metavar="KEYS",
        action="append",
        help="with --resume (or sweep extend): comma-separated dotted keys (or prefixes, e.g. "
        "slurm) whose values may differ from the sweep's spec.yaml; the search space, "
        "objective, data, model and loss never may",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    _add_submit_arguments(parser)
    _add_launcher_argument(parser, "the launcher of the trials (default: the spec's launcher)")


def _add_launcher_argument(parser: argparse.ArgumentParser, text: str) -> None:
    """``--launcher NAME``, one of the registered backends."""
    parser.add_argument("--launcher", choices=launcher_names(), help=text)


def _load_sweep(args: argparse.Namespace, overrides: Sequence[str]) -> tuple[SweepSpec, Path]:
    """The spec and sweep directory of `sweep run`/`submit`; refuses a sweep without --resume."""
    spec = load_sweep_spec(args.spec, overrides)
    if args.smoke:
        spec = smoke_overrides(spec)
    sweep_dir = spec.sweep_dir(args.out)
    if args.smoke and args.out is not None:  # beside the full run, as without --out
        sweep_dir = sweep_dir.with_name(f"{sweep_dir.name}-smoke")
    check_new_sweep_dir(sweep_dir)
    if (sweep_dir / SPEC_FILE).exists() and not args.resume:
        raise SweepError(
            f"{sweep_dir}: a sweep is already there; "
            "pass --resume to continue it or pick another --out"
        )
    from gan_hpc.safety import check_sweep_dir_safe
    from gan_hpc.sweep.directory import DRIVER_LOCK_FILE
    from gan_hpc.sweep.spec_change import accept_spec_change, parse_allowed

    if args.resume:  # a resumed sweep unpickles state (Ray's, submitit's) from the directory
        check_sweep_dir_safe(sweep_dir)
    allowed = parse_allowed(args.allow_spec_change)
    accept_spec_change(sweep_dir, spec, allowed, lock_path=sweep_dir / DRIVER_LOCK_FILE)
    return spec, sweep_dir


def _run_sweep(args: argparse.Namespace) -> int:
    from gan_hpc.sweep.driver import has_tune_state

    launcher = [f"launcher={args.launcher}"] if args.launcher else []
    spec, sweep_dir = _load_sweep(args, [*args.overrides, *launcher])
    print(f"sweep {spec.name}: {spec.tune.num_samples} trials -> {sweep_dir}", file=sys.stderr)
    # restore-or-start: a driver that died before Ray's first snapshot starts the sweep again
    restore = (sweep_dir / SPEC_FILE).exists() and has_tune_state(spec, sweep_dir)
    leaderboard = _drive(spec, sweep_dir, restore=restore)
    return _print_summary(leaderboard, sweep_dir, spec)


def _add_submit_only_arguments(parser: argparse.ArgumentParser) -> None:
    _add_submit_arguments(parser)
    _add_launcher_argument(
        parser,
        "the launcher whose driver job runs the sweep (default: the spec's launcher when it has "
        "a driver job, else one that has)",
    )


def _run_submit(args: argparse.Namespace) -> int:
    from gan_hpc.launchers.registry import driver_launcher_name, get_launcher, launch_spec_for
    from gan_hpc.sweep.driver import prepare_sweep_dir

    if args.launcher:
        name = driver_launcher_name(args.launcher, is_explicit=True)
    else:
        name = driver_launcher_name(load_sweep_spec(args.spec, args.overrides).launcher)
    spec, sweep_dir = _load_sweep(args, [*args.overrides, f"launcher={name}"])
    sweep_dir = sweep_dir.resolve()
    get_launcher(name).check(launch_spec_for(spec))
    prepare_sweep_dir(spec, sweep_dir)
    _submit_driver(spec, sweep_dir)
    return 0


def _submit_driver(spec: SweepSpec, sweep_dir: Path) -> None:
    """Submit the driver job of the sweep stored in ``sweep_dir``; print where to look."""
    from gan_hpc.launchers.registry import get_launcher, launch_spec_for

    launch_spec = launch_spec_for(spec)
    job_id = get_launcher(spec.launcher).submit_driver(
        sweep_dir / SPEC_FILE,
        sweep_dir,
        launch_spec,
        watched_trials=spec.tune.max_concurrent_trials,
    )
    print(
        f"submitted driver job {job_id}: sweep {spec.name}, {spec.tune.num_samples} trials\n"
        f"  sweep directory  {sweep_dir}\n"
        f"  driver log       {sweep_dir / 'driver' / f'{job_id}.log'}\n"
        f"  leaderboard      gan-hpc sweep status {sweep_dir}\n"
        f"  jobs             squeue --name={launch_spec.job_name} -o '%.10i %.9T %.10M %k'\n"
        f"  TensorBoard      tensorboard --logdir {sweep_dir / TRIALS_DIR}\n"
        f"  stop everything  scancel --name={launch_spec.job_name}"
    )


def _add_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sweep_dir",
        type=Path,
        help="a sweep directory (holds spec.yaml and trials/), or a folder holding one sweep",
    )


def _run_resume(args: argparse.Namespace) -> int:
    from gan_hpc.safety import check_sweep_dir_safe

    spec_path = args.sweep_dir / SPEC_FILE
    if not spec_path.exists():
        raise SweepError(f"{args.sweep_dir}: no {SPEC_FILE}; is it a sweep directory?")
    check_sweep_dir_safe(args.sweep_dir)
    spec = load_sweep_spec(spec_path)
    leaderboard = _drive(spec, args.sweep_dir, restore=True)
    return _print_summary(leaderboard, args.sweep_dir, spec)


def _add_extend_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir_argument(parser)
    parser.add_argument(
        "--num-samples",
        type=int,
        required=True,
        metavar="N",
        help="how many trials to add; they continue the sweep's Optuna study",
    )
    parser.add_argument(
        "--submit",
        action="store_true",
        help="submit the driver as a SLURM job (as `sweep submit`) instead of running it here",
    )
    add_override_argument(parser, "change a value for the new trials (the resume rules apply)")
    _add_allow_spec_change_argument(parser)


def _run_extend(args: argparse.Namespace) -> int:
    from gan_hpc.launchers.registry import driver_launcher_name, get_launcher, launch_spec_for
    from gan_hpc.safety import check_sweep_dir_safe
    from gan_hpc.sweep.directory import DRIVER_LOCK_FILE
    from gan_hpc.sweep.extend import extend_spec, read_extendable
    from gan_hpc.sweep.spec_change import parse_allowed

    sweep_dir = args.sweep_dir.resolve()
    read_extendable(sweep_dir, args.num_samples)
    check_sweep_dir_safe(sweep_dir)  # the driver that follows reads submitit's pickles
    overrides = list(args.overrides)
    if args.submit:  # a refused sbatch option fails before the total changes
        stored = load_sweep_spec(sweep_dir / SPEC_FILE, overrides)
        overrides.append(f"launcher={driver_launcher_name(stored.launcher)}")
        new = load_sweep_spec(sweep_dir / SPEC_FILE, overrides)
        get_launcher(new.launcher).check(launch_spec_for(new))
    spec = extend_spec(
        sweep_dir,
        args.num_samples,
        overrides=overrides,
        allowed=parse_allowed(args.allow_spec_change),
        lock_path=sweep_dir / DRIVER_LOCK_FILE,
    )
    print(f"sweep {spec.name}: extended to {spec.tune.num_samples} trials", file=sys.stderr)
    if args.submit:
        _submit_driver(spec, sweep_dir)
        return 0
    leaderboard = _drive(spec, sweep_dir, restore=True)
    return _print_summary(leaderboard, sweep_dir, spec)


def _add_status_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir_argument(parser)
    parser.add_argument(
        "--format",
        choices=LEADERBOARD_FORMATS,
        default="table",
        help="table (fits the terminal; default), or csv, json, markdown (every column)",
    )
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_KINDS,
        default="best",
        help="rank every trial by its best or its last evaluation (never mixed)",
    )
    _add_columns_arguments(parser)


def _add_columns_arguments(parser: argparse.ArgumentParser) -> None:
    columns = parser.add_mutually_exclusive_group()
    columns.add_argument(
        "--columns",
        metavar="A,B,C",
        help="the table's columns, by full or short name (e.g. rank,trial,score,lr)",
    )
    columns.add_argument(
        "--all", action="store_true", help="the table shows every column, however wide"
    )


def _format_table(leaderboard: pd.DataFrame, args: argparse.Namespace | None = None) -> str:
    """The leaderboard as a table that fits the terminal (120 characters when not a TTY)."""
    import shutil

    from gan_hpc.sweep.leaderboard import format_table, select_columns

    names = getattr(args, "columns", None)
    if getattr(args, "all", False):
        return format_table(leaderboard, columns=list(leaderboard.columns), width=None)
    columns = select_columns(leaderboard, names.split(",")) if names else None
    width = shutil.get_terminal_size((120, 24)).columns if sys.stdout.isatty() else 120
    return format_table(leaderboard, columns=columns, width=None if names else width)


def _run_status(args: argparse.Namespace) -> int:
    from gan_hpc.sweep.directory import read_spec
    from gan_hpc.sweep.leaderboard import format_leaderboard
    from gan_hpc.sweep.rank import ranking_rule, sweep_leaderboard

    if not args.sweep_dir.is_dir():
        raise SweepError(f"{args.sweep_dir}: not a directory")
    spec = read_spec(args.sweep_dir)
    leaderboard = sweep_leaderboard(args.sweep_dir, spec.ranking, checkpoint=args.checkpoint)
    if args.format == "table":
        print(_format_table(leaderboard, args), end="")
    else:
        print(format_leaderboard(leaderboard, args.format), end="")
    if args.format in ("table", "markdown"):
        print(f"\n{ranking_rule(spec.ranking)}")
    return 0


def _add_confirm_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir_argument(parser)
    parser.add_argument(
        "--top", type=int, default=3, metavar="K", help="confirm the K best trials (default 3)"
    )
    parser.add_argument(
        "--seeds", type=int, default=3, metavar="S", help="new training seeds each (default 3)"
    )
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_KINDS,
        default="best",
        help="rank and compare every trial by its best or its last checkpoint",
    )
    parser.add_argument("--format", choices=LEADERBOARD_FORMATS, default="table")


def _run_confirm(args: argparse.Namespace) -> int:
    from gan_hpc.safety import check_sweep_dir_safe
    from gan_hpc.sweep.confirm import confirm_sweep, format_confirmations
    from gan_hpc.sweep.directory import read_spec
    from gan_hpc.sweep.leaderboard import format_leaderboard, write_leaderboard
    from gan_hpc.sweep.rank import sweep_leaderboard

    check_sweep_dir_safe(args.sweep_dir)  # the launchers unpickle submitit's result files
    summaries = confirm_sweep(
        args.sweep_dir, top_k=args.top, num_seeds=args.seeds, checkpoint=args.checkpoint, emit=_emit
    )
    print(format_leaderboard(format_confirmations(summaries), args.format))
    spec = read_spec(args.sweep_dir)
    write_leaderboard(args.sweep_dir, sweep_leaderboard(args.sweep_dir, spec.ranking))
    held = sum(bool(s.get("held_up")) for s in summaries.values())
    print(
        f"{held} of {len(summaries)} trials held up over new seeds; the leaderboard "
        f"({args.sweep_dir / 'leaderboard.csv'}, gan-hpc sweep status) shows held_up",
        file=sys.stderr,
    )
    return 0


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir_argument(parser)
    parser.add_argument(
        "--out", type=Path, help="the HTML file to write (default: <sweep>/report.html)"
    )
    parser.add_argument(
        "--top", type=int, default=3, metavar="K", help="curves and samples of the K best (3)"
    )
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINT_KINDS,
        default="best",
        help="rank and sample every trial by its best or its last checkpoint",
    )
    parser.add_argument(
        "--no-samples",
        dest="use_samples",
        action="store_false",
        help="leave out the top trials' samples (no checkpoint or data is loaded)",
    )


def _run_report(args: argparse.Namespace) -> int:
    import time

    from gan_hpc.sweep.report import write_report

    started = time.perf_counter()
    path, report = write_report(
        args.sweep_dir,
        args.out,
        top_k=args.top,
        checkpoint=args.checkpoint,
        use_samples=args.use_samples,
    )
    print(
        f"{path}: {path.stat().st_size / 1024:.0f} KiB, {report.num_figures} figures, "
        f"built in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from gan_hpc.trial.cli import run_from_args

    return run_from_args(args)


def _run_export(args: argparse.Namespace) -> int:
    from gan_hpc.sweep.export import run_export

    return run_export(args)


def _run_sample(args: argparse.Namespace) -> int:
    from gan_hpc.bundle.sampling import run_sample

    return run_sample(args)


def _drive(spec: SweepSpec, sweep_dir: Path, *, restore: bool) -> pd.DataFrame:
    """Run the sweep's driver here: a live bar on a terminal (log lines above it), else lines."""
    import contextlib
    import logging

    from tqdm.contrib.logging import logging_redirect_tqdm

    from gan_hpc.sweep.driver import run_sweep  # Ray, Tune and Optuna load inside it

    use_bar = sys.stderr.isatty()
    package_logger = logging.getLogger("gan_hpc")
    live = logging_redirect_tqdm([package_logger]) if use_bar else contextlib.nullcontext()
    with live:
        return run_sweep(spec, sweep_dir, restore=restore, emit=_emit, use_bar=use_bar)


def _emit(line: str) -> None:
    """The live view's lines go to stderr, so stdout keeps only the leaderboard."""
    print(line, file=sys.stderr, flush=True)


def _print_summary(leaderboard: pd.DataFrame, sweep_dir: Path, spec: SweepSpec) -> int:
    """Print the leaderboard and the next commands; 1 when no trial trained a single step."""
    import pandas as pd

    from gan_hpc.sweep.rank import ranking_rule

    trials = leaderboard[leaderboard["state"] != "baseline"]
    if not (pd.to_numeric(trials["step"], errors="coerce") > 0).any():
        states = ", ".join(f"{n} {s}" for s, n in trials["state"].value_counts().items())
        print(
            f"gan-hpc: error: {sweep_dir}: no trial trained a step ({states or 'no trials'}); "
            f"read the first trial's log in {sweep_dir / TRIALS_DIR / 'trial_0000' / 'logs'}",
            file=sys.stderr,
        )
        return 1
    print(_format_table(leaderboard))
    print(ranking_rule(spec.ranking))
    print(f"\nleaderboard: {sweep_dir / 'leaderboard.csv'}", file=sys.stderr)
    print(f"TensorBoard: tensorboard --logdir {sweep_dir / TRIALS_DIR}", file=sys.stderr)
    print(f"report:      gan-hpc sweep report {sweep_dir}", file=sys.stderr)
    print(f"more trials: gan-hpc sweep extend {sweep_dir} --num-samples N", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------- the table


CommandTree = dict[str, Command | dict[str, Command]]

COMMANDS: CommandTree = {
    "data": {
        "inspect": Command(
            "print a data file's schema (columns, types, categories, missing) or shapes",
            _add_inspect_arguments,
            _run_inspect,
        ),
    },
    "train": Command(
        "train one trial (a trial config, or a sweep spec's base config) into --out DIR",
        build_train_parser,
        _run_train,
    ),
    "export": Command(
        "export the top trials of a sweep, or one trial directory, as generator bundles",
        add_export_arguments,
        _run_export,
    ),
    "sample": Command(
        "sample from an exported generator bundle", add_sample_arguments, _run_sample
    ),
    "sweep": {
        "validate": Command("check a sweep file and exit", _add_spec_argument, _run_validate),
        "run": Command(
            "run a sweep with Ray Tune + Optuna + ASHA, then print the leaderboard",
            _add_run_arguments,
            _run_sweep,
        ),
        "resume": Command(
            "resume an interrupted sweep: finished trials are kept, the rest continue",
            _add_dir_argument,
            _run_resume,
        ),
        "extend": Command(
            "add N trials to a sweep; they continue its Optuna study (local, or --submit)",
            _add_extend_arguments,
            _run_extend,
        ),
        "submit": Command(
            "submit the sweep's driver as a SLURM job (trials run as SLURM jobs); print its id",
            _add_submit_only_arguments,
            _run_submit,
        ),
        "status": Command(
            "print the leaderboard of a running or finished sweep",
            _add_status_arguments,
            _run_status,
        ),
        "confirm": Command(
            "retrain the top K trials with S new seeds; report mean, spread and which held up",
            _add_confirm_arguments,
            _run_confirm,
        ),
        "report": Command(
            "write one self-contained HTML report of a sweep: leaderboard, history, importances",
            _add_report_arguments,
            _run_report,
        ),
    },
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gan-hpc", description="Hyperparameter sweeps of GAN training on SLURM clusters."
    )
    parser.add_argument("--version", action="version", version=f"gan-hpc {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if isinstance(entry, Command):
            _add_command(subparsers, name, entry)
            continue
        group = subparsers.add_parser(name, help=f"{name} commands: {', '.join(entry)}")
        group_subparsers = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
        group.set_defaults(run=None, group_parser=group)
        for sub_name, command in entry.items():
            _add_command(group_subparsers, sub_name, command)
    return parser


def _add_command(subparsers: Any, name: str, command: Command) -> None:
    sub = subparsers.add_parser(name, help=command.help, description=command.help)
    command.add_arguments(sub)
    sub.set_defaults(run=command.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gan-hpc``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    configure(args.verbose)
    try:
        if isinstance(getattr(args, "sweep_dir", None), Path):  # one path rule for every command
            args.sweep_dir = find_sweep_dir(args.sweep_dir)
        return int(args.run(args))
    except GanHpcError as exc:
        print(f"gan-hpc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gan-hpc: interrupted; resume with `gan-hpc sweep resume DIR`", file=sys.stderr)
        return 130
