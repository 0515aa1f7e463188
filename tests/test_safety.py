"""Nothing another user could have written is unpickled: unsafe sweep state is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gan_hpc.errors import SweepError
from gan_hpc.safety import check_safe_to_unpickle, check_sweep_dir_safe

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A sweep directory with the pickles Ray and submitit leave, all private to this user."""
    sweep_dir = tmp_path / "sweep"
    job = sweep_dir / "trials" / "trial_0000" / "slurm" / "17"
    job.mkdir(parents=True)
    (job / "17_submitted.pkl").write_bytes(b"x")
    (job / "17_0_result.pkl").write_bytes(b"x")
    ray = sweep_dir / "ray" / "quickstart"
    ray.mkdir(parents=True)
    (ray / "tuner.pkl").write_bytes(b"x")
    (sweep_dir / "trials" / "trial_0000" / "metrics.jsonl").write_text("{}\n")
    for directory in [sweep_dir, *sweep_dir.rglob("*")]:
        os.chmod(directory, 0o755 if directory.is_dir() else 0o644)
    return sweep_dir


def test_private_sweep_state_is_safe(sweep: Path) -> None:
    check_sweep_dir_safe(sweep)
    result = sweep / "trials" / "trial_0000" / "slurm" / "17" / "17_0_result.pkl"
    check_safe_to_unpickle(result, root=sweep)
    (sweep / "trials" / "trial_0000" / "metrics.jsonl").chmod(0o666)  # not a pickle: not read
    check_sweep_dir_safe(sweep)


@pytest.mark.parametrize(
    ("relative", "mode", "who"),
    [
        ("ray/quickstart/tuner.pkl", 0o666, "group and others"),
        ("trials/trial_0000/slurm/17/17_submitted.pkl", 0o664, "group"),
        ("trials/trial_0000/slurm", 0o757, "others"),
        (".", 0o775, "group"),
    ],
)
def test_state_that_others_can_write_is_refused(
    sweep: Path, relative: str, mode: int, who: str
) -> None:
    target = (sweep / relative).resolve()
    target.chmod(mode)
    with pytest.raises(SweepError) as error:
        check_sweep_dir_safe(sweep)
    message = str(error.value)
    assert message.startswith(f"{target}: writable by {who} (mode {mode:o})")
    assert f"`chmod go-w {target}`" in message and "\n" not in message


def test_several_unsafe_paths_are_counted(sweep: Path) -> None:
    for path in sweep.rglob("*.pkl"):
        path.chmod(0o666)
    with pytest.raises(SweepError, match=rf"and 2 more paths in {sweep}; `chmod -R go-w {sweep}`"):
        check_sweep_dir_safe(sweep)


def test_a_directory_above_the_pickle_counts(sweep: Path) -> None:
    job = sweep / "trials" / "trial_0000" / "slurm" / "17"
    (sweep / "trials").chmod(0o777)
    check_safe_to_unpickle(job / "17_0_result.pkl")  # only its own directory by default
    with pytest.raises(SweepError, match=rf"^{sweep / 'trials'}: writable by group and others"):
        check_safe_to_unpickle(job / "17_0_result.pkl", root=sweep)
    with pytest.raises(ValueError):
        check_safe_to_unpickle(job / "17_0_result.pkl", root=sweep / "ray")


@needs_root
@pytest.mark.parametrize("relative", ["ray/quickstart/tuner.pkl", "trials/trial_0000"])
def test_state_owned_by_another_user_is_refused(sweep: Path, relative: str) -> None:
    os.chown(sweep / relative, NOBODY, NOBODY)
    with pytest.raises(SweepError, match=rf"^{sweep / relative}: owned by (nobody|uid {NOBODY})"):
        check_sweep_dir_safe(sweep)


def test_resume_refuses_unsafe_state_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gan_hpc.cli import main
    from gan_hpc.sweep.directory import write_spec
    from gan_hpc.sweep.spec import load_sweep_spec

    quickstart = Path(__file__).resolve().parents[1] / "sweeps" / "quickstart.yaml"
    spec = load_sweep_spec(quickstart)
    sweep_dir = spec.sweep_dir(tmp_path)
    write_spec(sweep_dir, spec)
    sweep_dir.chmod(0o755)  # whatever the umask
    planted = sweep_dir / "ray" / "tuner.pkl"
    planted.parent.mkdir(mode=0o755)
    planted.write_bytes(b"x")
    planted.chmod(0o646)
    for argv in (
        ["sweep", "resume", str(sweep_dir)],
        ["sweep", "run", str(quickstart), "--out", str(tmp_path), "--resume"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"gan-hpc: error: {planted}: writable by others (mode 646); "
            f"gan-hpc unpickles sweep state, which would run code they plant there: "
            f"`chmod go-w {planted}`"
        ]
