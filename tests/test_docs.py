"""Every command the docs show works as shown.

The commands come from README.md and slurm/README.md (fenced code and inline code) and from the
comment headers of sweeps/*.yaml: every ``gan-hpc ...``, ``python -m gan_hpc...``,
``torchrun ... gan_hpc...`` and ``make ...``. Each one is first held against the CLI's own
parser (the subcommand and every flag it names exist), then checked by what it does:

- commands that only read run for real (``--help``, ``sweep validate``, ``data inspect``,
  ``sweep status``, ``export``, ``sample``); a subcommand this file does not know gets its
  ``--help`` run and its arguments parsed;
- commands that train run at toy size on the test's own data: ``train`` with a few steps
  (``TOY_TRAIN``) each time, ``sweep confirm``, ``sweep resume`` and ``torchrun`` the first
  time they appear; ``python -m gan_hpc.trial.train`` (what ``gan-hpc train`` runs) is parsed. The
  data: the quick-start sweep, run with ``--smoke`` from the Makefile's recipe, and small
  tabular and image sweeps trained here (``STAND_INS``, ``BUNDLE_STAND_INS``);
- ``sweep run`` and ``sweep submit`` need the user's data, a site's partition or hours, so
  their spec is validated with the documented overrides and no more (the quick start is the
  sweep that really runs); validation never reads a data file, and the ``../shared`` paths
  of the specs do not exist in the scratch directory the commands run in;
- ``make TARGET [VAR=...]``: the target and the variable exist in the Makefile.

Placeholders (``SPEC``, ``path/to/...``, ``<trial_id>``...) are replaced as ``PLACEHOLDERS``
says. A failure names the file and line the command was copied from.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fnmatch
import io
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from gan_hpc import cli
from gan_hpc.arguments import build_train_parser
from gan_hpc.dist_env import free_port
from gan_hpc.sweep.directory import SPEC_FILE, TRIALS_DIR, write_spec
from gan_hpc.sweep.export import export_sweep
from gan_hpc.sweep.spec import (
    SMOKE_QUALITY_CAPS,
    load_sweep_spec,
    smoke_overrides,
    sweep_spec_from_dict,
    trial_config_for,
)
from gan_hpc.trial.train import train_trial

REPO = Path(__file__).resolve().parents[1]
MARKDOWN_FILES = ("README.md", "slurm/README.md")
SPEC_FILES = tuple(sorted(f"sweeps/{p.name}" for p in (REPO / "sweeps").glob("*.yaml")))
COMMAND = re.compile(r"^(gan-hpc|python -m gan_hpc\S*|python bench/\S+|torchrun|make)(\s|$)")

# What the test puts where the docs show a placeholder (a whole word, or the value of a pair).
PLACEHOLDERS = {
    "SPEC": "sweeps/quickstart.yaml",
    "CONFIG": "sweeps/quickstart.yaml",
    "DIR": "runs/quickstart",  # after --out: a new folder
    "PATH": "data/people.arff",
    "TRIAL_DIR": "trial",
    "<trial>": "trial",
    "N": "10",
    "K": "1",
    "S": "1",
    "NAME": "x",
    "...": "data/people.arff",
    "key=value": "train.num_steps=400",  # train commands then get TOY_TRAIN
    "k=v": "train.num_steps=400",
}
# Documented sweep folders -> the test's sweep of the same data kind: "quickstart" (the
# quick-start run, --smoke), "tabular" (a small Adult-like ARFF file, conditioned on its class
# <=50K / >50K) or "image" (8x8 digits labelled 0-3). "trial" is a copy of a quick-start trial.
STAND_INS = {
    "runs/quickstart": "quickstart",  # where the full run writes (checked)
    "runs/frf_cgan": "quickstart",  # the same simulator data
    "runs/adult_mlp": "tabular",
    "runs/mnist_losses": "image",
}
# Documented bundle folders that no documented export writes -> an export of that kind's sweep.
BUNDLE_STAND_INS = {"exports/mnist": "image"}
# Train commands run at toy size: these pairs are added (the --smoke sizes).
TOY_TRAIN = (
    "train.num_steps=20",
    "train.eval_every_steps=10",
    *(f"quality.{key}={value}" for key, value in SMOKE_QUALITY_CAPS.items()),
)
RUN_AS_SHOWN = {
    ("sweep", "validate"),
    ("data", "inspect"),
    ("sweep", "status"),
    ("export",),
    ("sample",),
}
RUN_ONCE = {("sweep", "confirm"), ("sweep", "resume")}  # toy size through the quick-start sweep
SPEC_ONLY = {("sweep", "run"), ("sweep", "submit")}
# Options README.md names in prose that belong to other programs (sbatch).
FOREIGN_OPTIONS = {"--requeue", "--signal"}


@dataclass(frozen=True)
class DocCommand:
    """One command as a doc shows it, and where."""

    file: str
    line: int
    text: str
    is_inline: bool = False  # a mention in prose: it may leave out required arguments

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`"


# --------------------------------------------------------------------------------- extraction


def _shell_commands(text: str) -> list[str]:
    """The commands of one shell line: `a; b`, `a && b` and `a | b` are two each."""
    text = re.sub(r"^\$\s+", "", text.strip())
    parts = re.split(r";\s|\s&&\s|\s\|\s", text)
    return [part.strip() for part in parts if COMMAND.match(part.strip())]


def markdown_commands(file: str) -> list[DocCommand]:
    """Commands in fenced blocks (not python/yaml ones) and in inline code of a markdown file."""
    found: list[DocCommand] = []
    prose: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate((REPO / file).read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip()[3:]
            continue
        if fence is None:
            prose.append((number, line))
        elif fence not in ("python", "yaml"):
            found += [DocCommand(file, number, c) for c in _shell_commands(line)]
    text = "\n".join(line for _, line in prose)
    for match in re.finditer(r"`([^`]+)`", text):
        span = " ".join(match.group(1).split())  # inline code may wrap a line
        if COMMAND.match(span):
            number = prose[text.count("\n", 0, match.start())][0]
            found.append(DocCommand(file, number, span, is_inline=True))
    return sorted(found, key=lambda c: c.line)


def header_lines(file: str) -> list[tuple[int, str]]:
    """The comment lines at the top of a sweep file, without their `#`."""
    lines = []
    for number, line in enumerate((REPO / file).read_text().splitlines(), 1):
        if not line.startswith("#"):
            break
        lines.append((number, line[1:]))
    return lines


def spec_commands(file: str) -> list[DocCommand]:
    """Commands on their own indented header lines; a bare `--set ...` is validated on the file."""
    found = []
    for number, text in header_lines(file):
        if not re.match(r"\s{2,}\S", text):
            continue
        command = text.strip()
        if command.startswith("--set "):
            command = f"gan-hpc sweep validate {file} {command}"
        found += [DocCommand(file, number, c) for c in _shell_commands(command)]
    return found


def doc_commands(file: str) -> list[DocCommand]:
    return markdown_commands(file) if file.endswith(".md") else spec_commands(file)


# ------------------------------------------------------------------------------- the workspace


@dataclass
class Workspace:
    """The scratch working directory every command runs in, with the test's stand-ins."""

    root: Path
    env: dict[str, str]
    quickstart_output: str = ""
    done_once: set[tuple[str, ...]] = field(default_factory=set)
    bundles: set[str] = field(default_factory=set)  # the bundle paths `export` printed
    num_scratch: int = 0

    def scratch(self) -> str:
        self.num_scratch += 1
        return f"scratch/{self.num_scratch}"


def _write_people(path: Path) -> None:
    """A small Adult-like ARFF table, conditioned on its `class` column."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        rich = rng.random() < 0.3
        age = int(rng.integers(30, 70) if rich else rng.integers(18, 60))
        work = rng.choice(["Private", "Self-emp", "State-gov"])
        hours = round(float(rng.normal(45 if rich else 38, 8)), 1)
        rows.append(f"{age},{work},{hours},{'>50K' if rich else '<=50K'}")
    header = [
        "@relation people",
        "@attribute age numeric",
        "@attribute workclass {Private,Self-emp,State-gov}",
        "@attribute hours numeric",
        "@attribute class {'<=50K','>50K'}",
        "@data",
    ]
    path.write_text("\n".join([*header, *rows]) + "\n")


def _write_digits(path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 80)
    images = rng.integers(0, 60, (80, 1, 8, 8)) + labels[:, None, None, None] * 60
    np.savez(path, images=images.astype(np.uint8), labels=labels)


def _make_sweep(root: Path, name: str, data: dict[str, object], model: dict[str, object]) -> Path:
    """A sweep folder as `gan-hpc sweep run` leaves it, two trials trained without Ray."""
    tiny = {"latent_dim": 8, "generator": {"depth": 1, "width": 16}, "discriminator": {"width": 16}}
    document = {
        "name": name,
        "base": {
            "data": {**data, "use_cache": False},
            "model": {**tiny, **model},
            "train": {"batch_size": 16, "num_steps": 10, "eval_every_steps": 5},
            "quality": dict(SMOKE_QUALITY_CAPS),
        },
        "search": {"optim.generator.lr": {"loguniform": [1e-4, 1e-3]}},
        "tune": {"grace_period_steps": 5},
        "ranking": {"num_eval_samples": 32},
    }
    spec = sweep_spec_from_dict(document, source=f"{name}.yaml")
    sweep = root / name
    write_spec(sweep, spec)
    for index, lr in enumerate((2e-4, 5e-4)):
        point = {"optim.generator.lr": lr}
        train_trial(trial_config_for(spec, point), sweep / TRIALS_DIR / f"trial_{index:04d}")
    return sweep


def makefile_recipe(target: str) -> list[str]:
    """The shell lines of a Makefile target, `$(VENV)/bin/` dropped."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(VENV)/bin/", ""))
    return recipe


def _run_process(argv: list[str], workspace: Workspace, timeout: int = 300) -> tuple[int, str]:
    run = subprocess.run(
        argv,
        cwd=workspace.root,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return run.returncode, run.stdout + run.stderr


def _run_cli(argv: list[str], workspace: Workspace) -> tuple[int, str, str]:
    """`gan-hpc ARGV` in this process, in the workspace; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    # cli.main attaches a handler to the package logger (bound to this redirected stderr):
    # take it off again, so later tests configure their own
    package_logger = logging.getLogger("gan_hpc")
    saved = (list(package_logger.handlers), package_logger.level, package_logger.propagate)
    with (
        contextlib.chdir(workspace.root),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            package_logger.handlers[:] = saved[0]
            package_logger.setLevel(saved[1])
            package_logger.propagate = saved[2]
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """Run the Makefile's quick start with --smoke, and make the other stand-ins."""
    root = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "GAN_HPC_CACHE_DIR": str(root / ".cache"), "GAN_HPC_LOG_LEVEL": "ERROR"}
    with pytest.MonkeyPatch.context() as patch:
        for key in ("GAN_HPC_CACHE_DIR", "GAN_HPC_LOG_LEVEL"):
            patch.setenv(key, env[key])
        (root / "sweeps").symlink_to(REPO / "sweeps")
        (root / "data").mkdir()
        workspace = Workspace(root, env)

        (command,) = [line for line in makefile_recipe("quickstart") if "gan-hpc" in line]
        argv = shlex.split(command)
        code, output = _run_process(
            [sys.executable, "-m", "gan_hpc", *argv[1:], "--smoke"], workspace
        )
        assert code == 0, f"Makefile: `{command} --smoke` failed:\n{output[-3000:]}"
        workspace.quickstart_output = output
        smoke_dir = _printed_sweep_dir(output)
        board = (root / smoke_dir / "leaderboard.csv").read_text()
        assert ",finished," in board, f"the quick start trained nothing:\n{board}\n{output[-3000:]}"
        trial = sorted((root / smoke_dir / TRIALS_DIR).iterdir())[0]
        shutil.copytree(trial, root / "trial")

        _write_people(root / "data" / "people.arff")
        _write_digits(root / "data" / "digits.npz")
        people = {"format": "arff", "path": str(root / "data" / "people.arff")}
        digits = {"format": "npz", "path": str(root / "data" / "digits.npz"), "conditional": True}
        sweeps = {
            "quickstart": root / smoke_dir,
            "tabular": _make_sweep(
                root / "toy",
                "tabular",
                {**people, "conditional": True, "condition_column": "class"},
                {},
            ),
            "image": _make_sweep(
                root / "toy",
                "image",
                digits,
                {"family": "dcgan", "generator": {"depth": 2, "width": 8}},
            ),
        }
        for documented, kind in STAND_INS.items():
            if not (root / documented).exists():
                (root / documented).parent.mkdir(parents=True, exist_ok=True)
                (root / documented).symlink_to(sweeps[kind])
        for documented, kind in BUNDLE_STAND_INS.items():
            export_sweep(sweeps[kind], root / documented, top_k=1)
        yield workspace


def _printed_sweep_dir(output: str) -> Path:
    """The sweep folder that `sweep run` printed as its leaderboard's and TensorBoard's."""
    leaderboard = re.search(r"^leaderboard: (\S+)$", output, re.M)
    tensorboard = re.search(r"^TensorBoard: tensorboard --logdir (\S+)$", output, re.M)
    assert leaderboard and tensorboard, output[-2000:]
    sweep_dir = Path(leaderboard.group(1)).parent
    assert Path(tensorboard.group(1)) == sweep_dir / TRIALS_DIR
    return sweep_dir


# ----------------------------------------------------------------------------------- checking


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_structure(
    argv: list[str], parser: argparse.ArgumentParser
) -> tuple[tuple[str, ...], argparse.ArgumentParser]:
    """The subcommand path of `argv`; every option it names must be one of that command's."""
    path: list[str] = []
    rest = list(argv)
    while (choices := _subparsers(parser)) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in choices, f"no command `{' '.join([*path, name])}` (have {sorted(choices)})"
        path.append(name)
        parser = choices[name]
    options = set(parser._option_string_actions)
    for word in rest:
        if word == "--":
            break
        if word.startswith("-") and not re.match(r"-\d", word):
            option = word.split("=", 1)[0]
            assert option in options, f"`{' '.join(path)}` has no option {option}"
    return tuple(path), parser


def expand(words: list[str], workspace: Workspace) -> list[str]:
    """Usage synopses to one concrete command, and placeholders to the test's stand-ins."""
    if any(word.startswith("[") for word in words):  # `[--format a|b|...]`: take the first
        words = [word.strip("[]") for word in words]
        words = [word.split("|")[0] if "|" in word else word for word in words]
        words = [word for word in words if word not in ("", "...")]
    expanded = []
    for index, word in enumerate(words):
        if index and words[index - 1] == "--out" and word in PLACEHOLDERS:
            word = workspace.scratch()
        elif word in PLACEHOLDERS:
            word = PLACEHOLDERS[word]
        elif "=" in word and not word.startswith("-"):
            key, value = word.split("=", 1)
            if value in PLACEHOLDERS:
                word = f"{key}={PLACEHOLDERS[value]}"
        word = re.sub(r"(^|=)/?path/to/", r"\1data/", word)
        if "<" in word:
            word = _resolve_glob(word, workspace)
        expanded.append(word)
    return expanded


def _resolve_glob(word: str, workspace: Workspace) -> str:
    """`exports/adult/01-<trial_id>`: the one folder of that shape (what `export` printed)."""
    pattern = re.sub(r"<[^>]+>", "*", word)
    matches = sorted(
        str(path.relative_to(workspace.root))
        for path in workspace.root.glob(pattern)
        if fnmatch.fnmatch(str(path.relative_to(workspace.root)), pattern)
    )
    assert len(matches) == 1, f"{word}: expected one folder {pattern} in the workspace: {matches}"
    return matches[0]


def check_command(command: DocCommand, workspace: Workspace) -> None:
    """Check one documented command; an AssertionError says what is wrong."""
    words = shlex.split(command.text, comments=True)
    if words[0] == "make":
        return check_make(words)
    if words[0] == "python" and words[1].startswith("bench/"):
        assert (REPO / words[1]).is_file(), f"no script {words[1]}"
        return None
    if words[0] == "torchrun":
        return check_torchrun(words, workspace)
    if words[:3] == ["python", "-m", "gan_hpc.trial.train"]:
        build_train_parser().parse_args(expand(words[3:], workspace))
        return None
    if words[:3] == ["python", "-m", "gan_hpc"]:
        words = ["gan-hpc", *words[3:]]
    return check_gan_hpc(command, expand(words[1:], workspace), workspace)


def check_gan_hpc(command: DocCommand, argv: list[str], workspace: Workspace) -> None:
    path, parser = check_structure(argv, cli.build_parser())
    if "--help" in argv or "-h" in argv or not path:
        code, out, err = _run_cli(argv, workspace)
        assert code == 0 and "usage:" in out, f"exit {code}: {err}"
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args = cli.build_parser().parse_args(argv)
    except SystemExit:
        if not command.is_inline:
            raise AssertionError("the CLI's parser rejects it") from None
        args = None  # a mention in prose, e.g. `gan-hpc export`: its --help must work
    if args is None or path not in RUN_AS_SHOWN | RUN_ONCE | SPEC_ONLY | {("train",)}:
        code, out, err = _run_cli([*path, "--help"], workspace)
        assert code == 0 and "usage:" in out, f"--help: exit {code}: {err}"
        return
    if path in SPEC_ONLY:
        pairs = [*args.overrides, *([f"launcher={args.launcher}"] if "--launcher" in argv else [])]
        if path == ("sweep", "submit"):
            pairs.append("launcher=slurm")
        with contextlib.chdir(workspace.root):  # relative data paths point nowhere there
            spec = load_sweep_spec(args.spec, pairs)
            if args.smoke:
                smoke_overrides(spec)
            for data in (spec.base.data.path, spec.base.data.test_path):
                if data and "shared" in data:  # validated without the file: never read here
                    assert not Path(data).exists(), f"{data} exists in the scratch directory"
        argv = ["sweep", "validate", str(args.spec), *(["--set", *pairs] if pairs else [])]
    elif path in RUN_ONCE:
        if path in workspace.done_once:
            return
        workspace.done_once.add(path)
        code, output = _run_process([sys.executable, "-m", "gan_hpc", *argv], workspace)
        assert code == 0, f"exit {code}:\n{output[-3000:]}"
        return
    elif path == ("train",):
        argv = [*argv, "--set", *TOY_TRAIN]
    code, out, err = _run_cli(argv, workspace)
    assert code == 0, f"exit {code}: {err.strip()[-2000:]}"
    if path == ("export",):  # the printed bundles are what `sample` takes
        printed = out.split()
        assert printed and all((workspace.root / p / "config.json").is_file() for p in printed)
        workspace.bundles.update(printed)
    if path == ("sample",):
        bundle = str(args.bundle)
        assert bundle in workspace.bundles or bundle.startswith(tuple(BUNDLE_STAND_INS)), (
            f"{bundle}: no documented export printed it"
        )
        assert (workspace.root / args.out).is_file(), f"no {args.out}"


def check_make(words: list[str]) -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.M))
    variables = set(re.findall(r"^(\w+)\s*[?:]?=", makefile, re.M))
    for word in words[1:]:
        if "=" in word:
            assert word.split("=")[0] in variables, f"the Makefile reads no {word.split('=')[0]}"
        else:
            assert word in targets, f"no make target {word} (have {sorted(targets)})"


def check_torchrun(words: list[str], workspace: Workspace) -> None:
    from torch.distributed.run import get_args_parser

    torchrun = get_args_parser().parse_args(words[1:])
    assert torchrun.module and torchrun.training_script == "gan_hpc.trial.train", (
        "not gan_hpc.trial.train"
    )
    argv = expand(torchrun.training_script_args, workspace)
    build_train_parser().parse_args(argv)
    if ("torchrun",) in workspace.done_once:
        return
    workspace.done_once.add(("torchrun",))
    options = words[1 : len(words) - len(torchrun.training_script_args)]
    launch = [sys.executable, "-m", "torch.distributed.run", *options, *argv, "--set", *TOY_TRAIN]
    # a free port rather than torchrun's default 29500, which another test may hold
    env = {**workspace.env, "PET_MASTER_PORT": str(free_port())}
    code, output = _run_process(launch, dataclasses.replace(workspace, env=env))
    assert code == 0, f"exit {code}:\n{output[-3000:]}"


# ------------------------------------------------------------------------------------- tests


def test_docs_show_commands() -> None:
    """Extraction finds the commands (the issue's own example among them)."""
    for file in (*MARKDOWN_FILES, *SPEC_FILES):
        assert doc_commands(file), f"{file}: no commands found"
    adult = [c.text for c in doc_commands("sweeps/adult_mlp.yaml")]
    assert any("tune.num_samples=128 tune.max_concurrent_trials=32" in c for c in adult), adult
    readme = [c.text for c in doc_commands("README.md")]
    assert any(c.startswith("make quickstart") for c in readme), readme


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    options = set(parser._option_string_actions)
    for sub in _subparsers(parser).values():
        options |= _all_options(sub)
    return options


def test_readme_names_only_options_that_exist() -> None:
    """An option named in README prose (`--smoke`, `--launcher local`) is one the CLI has."""
    known = _all_options(cli.build_parser()) | _all_options(build_train_parser()) | FOREIGN_OPTIONS
    text = (REPO / "README.md").read_text()
    named = {m.group(1) for m in re.finditer(r"`(--[a-z][\w-]*)", text)}
    assert named <= known, f"README.md names options no command has: {sorted(named - known)}"


@pytest.mark.parametrize("file", SPEC_FILES)
def test_spec_headers_put_commands_on_their_own_lines(file: str) -> None:
    """A command in a header's prose would not be extracted: it goes on an indented line."""
    for number, text in header_lines(file):
        if not re.match(r"\s{2,}\S", text):
            assert not re.search(r"gan-hpc |--set |python -m gan_hpc", text), (
                f"{file}:{number}: put the command on its own line, indented: `#   {text.strip()}`"
            )


@pytest.mark.slow
@pytest.mark.ray
def test_quick_start_prints_the_paths_the_docs_use(workspace: Workspace) -> None:
    """`make quickstart` prints where the sweep is; the README's next commands use that path."""
    (command,) = [line for line in makefile_recipe("quickstart") if "gan-hpc" in line]
    argv = shlex.split(command)
    args = cli.build_parser().parse_args(argv[1:])
    full = load_sweep_spec(REPO / args.spec, args.overrides).sweep_dir(args.out)
    smoke = _printed_sweep_dir(workspace.quickstart_output)
    assert smoke == full.parent / f"{full.name}-smoke"  # --smoke writes beside the full run
    assert (workspace.root / smoke / "leaderboard.csv").is_file()
    assert (workspace.root / smoke / TRIALS_DIR).is_dir()
    assert (workspace.root / full / SPEC_FILE).is_file()
    readme = doc_commands("README.md")
    start = next(i for i, c in enumerate(readme) if c.text.startswith("make quickstart"))
    status = next(c for c in readme[start:] if c.text.startswith("gan-hpc sweep status"))
    assert shlex.split(status.text, comments=True)[3] == str(full), status
    text = (REPO / "README.md").read_text()
    logdir = re.search(r"tensorboard --logdir (\S+)", text[text.index("make quickstart") :])
    assert logdir and logdir.group(1) == str(full / TRIALS_DIR), "README: TensorBoard's folder"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.ddp
@pytest.mark.parametrize("file", [*MARKDOWN_FILES, *SPEC_FILES])
def test_every_command_works_as_shown(file: str, workspace: Workspace) -> None:
    """Each command of the file, in order (an export comes before the sample that uses it)."""
    failures = []
    for command in doc_commands(file):
        try:
            check_command(command, workspace)
        except (Exception, SystemExit) as exc:
            failures.append(f"{command}: {type(exc).__name__}: {exc}")
    assert not failures, "commands that fail as the docs show them:\n" + "\n".join(failures)
