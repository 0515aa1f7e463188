"""Resuming under DDP: rank 0 chooses the checkpoint, every rank loads that same one."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
import torch

from gan_hpc.checkpoint import load_resume_checkpoint, save_checkpoint, step_checkpoint_name
from gan_hpc.dist_env import DistEnv, free_port
from gan_hpc.distributed import process_group
from gan_hpc.errors import CheckpointError

# each case: the step checkpoints rank 0 and rank 1 see ("bad" = truncated), what both load
CASES: dict[str, tuple[dict[int, str], dict[int, str], int | str | None]] = {
    "rank 1 sees a newer one": ({10: "ok", 20: "ok"}, {10: "ok", 20: "ok", 30: "ok"}, 20),
    "rank 0 sees none": ({}, {10: "ok"}, None),
    "rank 0's newest is truncated": ({10: "ok", 20: "bad"}, {10: "ok", 20: "ok"}, 10),
    "rank 1 cannot read rank 0's choice": ({10: "ok", 20: "ok"}, {10: "ok", 20: "bad"}, "error"),
}


def _write(directory: Path, checkpoints: dict[int, str]) -> None:
    directory.mkdir(parents=True)
    for step, kind in checkpoints.items():
        path = directory / step_checkpoint_name(step)
        save_checkpoint(path, {"step": step, "marker": torch.tensor([float(step)])})
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
                marker = int(loaded.state["marker"].item())
                results.put((name, rank, loaded.step, f"{loaded.path.parent.name}:{marker}"))


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
    assert loaded is not None and loaded.step == 20
    assert load_resume_checkpoint(tmp_path / "none", DistEnv(), torch.device("cpu")) is None
