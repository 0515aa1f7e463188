"""Checkpoints: the TrainState round trip, old files, truncated files, and resuming under DDP."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch

from gan_hpc.dist_env import DistEnv, free_port
from gan_hpc.errors import CheckpointError
from gan_hpc.trial.checkpoint import (
    TrainState,
    load_checkpoint,
    load_resume_checkpoint,
    save_checkpoint,
    step_checkpoint_name,
)
from gan_hpc.trial.distributed import process_group

# each case: the step checkpoints rank 0 and rank 1 see ("bad" = truncated), what both load
CASES: dict[str, tuple[dict[int, str], dict[int, str], int | str | None]] = {
    "rank 1 sees a newer one": ({10: "ok", 20: "ok"}, {10: "ok", 20: "ok", 30: "ok"}, 20),
    "rank 0 sees none": ({}, {10: "ok"}, None),
    "rank 0's newest is truncated": ({10: "ok", 20: "bad"}, {10: "ok", 20: "ok"}, 10),
    "rank 1 cannot read rank 0's choice": ({10: "ok", 20: "ok"}, {10: "ok", 20: "bad"}, "error"),
}


def _state(step: int) -> TrainState:
    """A small TrainState whose generator weights mark its step."""
    return TrainState(
        step=step,
        epoch=1,
        batch_in_epoch=2,
        generator={"marker": torch.tensor([float(step)])},
        discriminator={"weight": torch.zeros(2)},
        optimizer_generator={"state": {}, "param_groups": []},
        optimizer_discriminator={"state": {}, "param_groups": []},
        rng=[{"torch": torch.get_rng_state()}],
        config={"train": {"seed": 3}},
        schema={"kind": "tabular"},
        best={"step": step, "metrics": {"d_loss": 0.5}, "checkpoint": "checkpoints/best.pt"},
        guards={"streaks": {}, "fired": []},
    )


def _write(directory: Path, checkpoints: dict[int, str]) -> None:
    directory.mkdir(parents=True)
    for step, kind in checkpoints.items():
        path = directory / step_checkpoint_name(step)
        save_checkpoint(path, _state(step))
        if kind == "bad":
            path.write_bytes(path.read_bytes()[:40])


def _rank(rank: int, port: int, root: str, results: Any) -> None:
    """One gloo rank: resume every case from this rank's own view of the directory."""
    torch.set_num_threads(1)
    env = DistEnv(rank=rank, local_rank=rank, world_size=2, master_port=port)
    device = torch.device("cpu")
    with process_group(env, device, timeout_s=60):
        for index, name in enumerate(CASES):
            directory = Path(root) / f"case{index}" / f"rank{rank}"
            try:
                loaded = load_resume_checkpoint(directory, env, device)
            except CheckpointError as exc:
                results.put((name, rank, "error", str(exc)))
                continue
            if loaded is None:
                results.put((name, rank, None, ""))
            else:
                marker = int(loaded.state.generator["marker"].item())
                results.put((name, rank, loaded.state.step, f"{loaded.path.parent.name}:{marker}"))


@pytest.mark.ddp
def test_every_rank_loads_the_checkpoint_rank_0_chose(tmp_path: Path) -> None:
    for index, (rank0, rank1, _) in enumerate(CASES.values()):
        _write(tmp_path / f"case{index}" / "rank0", rank0)
        _write(tmp_path / f"case{index}" / "rank1", rank1)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = free_port()
    ranks = [context.Process(target=_rank, args=(r, port, str(tmp_path), results)) for r in (0, 1)]
    for process in ranks:
        process.start()
    got = [results.get(timeout=120) for _ in range(2 * len(CASES))]
    for process in ranks:
        process.join(timeout=60)
        assert process.exitcode == 0
    by_case: dict[str, dict[int, tuple[Any, str]]] = {}
    for name, rank, step, detail in got:
        by_case.setdefault(name, {})[rank] = (step, detail)
    for name, (_, _, expected) in CASES.items():
        (step0, detail0), (step1, detail1) = by_case[name][0], by_case[name][1]
        assert step0 == step1 == expected, (name, by_case[name])
        if isinstance(expected, int):  # each rank read the chosen step from its own directory
            assert (detail0, detail1) == (f"rank0:{expected}", f"rank1:{expected}")
    errors = by_case["rank 1 cannot read rank 0's choice"]
    assert errors[1][1].startswith("rank 1: ") and "unreadable checkpoint" in errors[1][1]
    assert "another rank could not read the checkpoint rank 0 chose" in errors[0][1]


def test_one_process_resumes_from_its_newest_valid_checkpoint(tmp_path: Path) -> None:
    _write(tmp_path / "checkpoints", {10: "ok", 20: "ok", 30: "bad"})
    loaded = load_resume_checkpoint(tmp_path / "checkpoints", DistEnv(), torch.device("cpu"))
    assert loaded is not None and loaded.state.step == 20
    assert load_resume_checkpoint(tmp_path / "none", DistEnv(), torch.device("cpu")) is None


def test_train_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    state = _state(7)
    save_checkpoint(tmp_path / "step.pt", state)
    loaded = TrainState.from_dict(load_checkpoint(tmp_path / "step.pt"), tmp_path / "step.pt")
    assert loaded.step == 7 and loaded.best == state.best and loaded.guards == state.guards
    assert torch.equal(loaded.generator["marker"], state.generator["marker"])
    assert torch.equal(loaded.rng[0]["torch"], state.rng[0]["torch"])


def test_a_checkpoint_from_before_ema_guards_and_best_still_loads(tmp_path: Path) -> None:
    """Older trainers wrote no ``ema``, ``best``, ``last`` or ``guards``: they get defaults."""
    old = _state(4).to_dict()
    for key in ("ema", "best", "last", "guards"):
        del old[key]
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    torch.save({"format_version": 1, **old}, directory / step_checkpoint_name(4))
    loaded = load_resume_checkpoint(directory, DistEnv(), torch.device("cpu"))
    assert loaded is not None
    assert (loaded.state.step, loaded.state.ema, loaded.state.best, loaded.state.guards) == (
        4,
        None,
        None,
        {},
    )


def test_a_truncated_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, _state(3))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"best\.pt: unreadable checkpoint") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_a_file_without_trainer_state_is_one_line(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    torch.save({"format_version": 1, "step": 1}, directory / step_checkpoint_name(1))
    with pytest.raises(CheckpointError, match=r"step-00000001\.pt: not a trainer checkpoint"):
        load_resume_checkpoint(directory, DistEnv(), torch.device("cpu"))


def test_loading_refuses_pickled_code(tmp_path: Path) -> None:
    """A checkpoint that would run code when unpickled is refused, not executed."""
    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": _Exploit(tmp_path / "pwned")}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: unreadable checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


class _Exploit:
    """Unpickling this creates ``target``: proof that code ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.target,))
