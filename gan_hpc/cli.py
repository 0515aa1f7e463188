"""The ``gan-hpc`` command line: argparse subcommands, one ``add_parser``/``run`` pair each.

A :class:`~gan_hpc.errors.GanHpcError` becomes one line on stderr and exit code 2; any other
exception keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gan_hpc import __version__
from gan_hpc._logging import configure
from gan_hpc.errors import GanHpcError


@dataclass(frozen=True)
class Command:
    """One subcommand: how to declare its arguments and how to run it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gan-hpc",
        description="Hyperparameter sweeps of GAN training on SLURM clusters.",
    )
    parser.add_argument("--version", action="version", version=f"gan-hpc {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gan-hpc``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    configure(args.verbose)
    try:
        return int(args.run(args))
    except GanHpcError as exc:
        print(f"gan-hpc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gan-hpc: interrupted", file=sys.stderr)
        return 130
