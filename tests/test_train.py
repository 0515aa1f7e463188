"""The trial trainer: trial directory contract, exact resume, signals, divergence, DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gan_hpc.trial.train as train_module
from gan_hpc import convergence as names
from gan_hpc.config import TrainConfig, TrialConfig
from gan_hpc.dist_env import free_port
from gan_hpc.errors import CheckpointError
from gan_hpc.trial.checkpoint import list_step_checkpoints, load_checkpoint, load_latest_valid
from gan_hpc.trial.distributed import weights_fingerprint
from gan_hpc.trial.steps import lr_factor
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import EXIT_REQUEUE, TrialDir
from tests.helpers import small_frf_config


def _final_state(run_dir: Path) -> dict:
    newest = list_step_checkpoints(run_dir / "checkpoints")[-1][1]
    return load_checkpoint(newest)


def test_trial_directory_contract(tmp_path: Path, trial_config: TrialConfig) -> None:
    reports: list[tuple[dict, Path | None]] = []
    result = train_trial(trial_config, tmp_path, lambda m, c: reports.append((dict(m), c)))

    trial = TrialDir(tmp_path)
    assert result.state == "finished" and result.step == 20
    assert trial.read_config() == trial_config
    records = trial.read_metrics()
    assert [r[names.STEP] for r in records] == [5, 10, 15, 20]
    for key in (*names.ALL_TRAINING, *names.ALL_CONVERGENCE, names.EPOCH, names.WALL_TIME_S):
        assert all(key in r for r in records), key
    assert all(0.0 <= r[names.FOOLING_RATE] <= 1.0 for r in records)
    assert [int(m[names.STEP]) for m, _ in reports] == [5, 10, 15, 20]
    assert [c.name for _, c in reports if c is not None] == [
        f"step-{s:08d}.pt" for s in (5, 10, 15, 20)
    ]
    # the newest K step checkpoints are kept, plus best.pt
    steps = [s for s, _ in list_step_checkpoints(trial.checkpoints)]
    assert steps == [15, 20]
    assert (trial.checkpoints / "best.pt").exists()
    status = trial.read_status()
    assert status.state == "finished" and status.step == 20
    saved = json.loads(trial.result_path.read_text())
    assert saved["state"] == "finished"
    assert saved["last"]["step"] == 20 and saved["best"]["checkpoint"] == "checkpoints/best.pt"
    best_state = load_checkpoint(trial.checkpoints / "best.pt")
    assert best_state["step"] == saved["best"]["step"]
    assert list(trial.tensorboard.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(trial.tensorboard)).Reload()
    assert "samples/frf" in events.Tags()["images"]  # generated vs real curves, as a picture
    assert names.FOOLING_RATE in events.Tags()["scalars"]
    data = json.loads(trial.data_path.read_text())
    assert data["schema"]["kind"] == "signal" and data["transform"]["kind"] == "signal"
    assert len(data["source_hash"]) == 64


@pytest.mark.parametrize(
    ("loss_name", "lr_decay_start"), [("bce_logits", None), ("wgan_gp", None), ("bce_logits", 0.25)]
)
def test_resume_is_bit_exact(tmp_path: Path, loss_name: str, lr_decay_start: float | None) -> None:
    config = small_frf_config(num_steps=24, eval_every_steps=6, lr_decay_start=lr_decay_start)
    config = dataclasses.replace(
        config,
        loss=dataclasses.replace(config.loss, name=loss_name, n_critic=2),
        model=dataclasses.replace(
            config.model, discriminator=dataclasses.replace(config.model.discriminator, dropout=0.2)
        ),
    )
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_trial(config, straight)
    first = train_trial(config, interrupted, stop_after_step=12)
    assert first.state == "paused" and first.step == 12
    second = train_trial(config, interrupted)
    assert second.state == "finished" and second.step == 24

    a, b = _final_state(straight), _final_state(interrupted)
    for key in (
        "generator",
        "discriminator",
        "ema",
        "optimizer_generator",
        "optimizer_discriminator",
    ):
        assert weights_fingerprint(_flatten(a[key])) == weights_fingerprint(_flatten(b[key])), key
    # the metric stream continues where it stopped: no step repeated, none missing
    steps = [r[names.STEP] for r in TrialDir(interrupted).read_metrics()]
    assert steps == [6, 12, 18, 24]


def _write_kinds(path: Path, kinds: list[str]) -> None:
    rows = [f"{i % 7}.5,{kinds[i % len(kinds)]}" for i in range(200)]
    path.write_text("size,kind\n" + "\n".join(rows) + "\n")


def test_resuming_on_data_encoded_otherwise_is_refused_and_keeps_the_trial(
    tmp_path: Path,
) -> None:
    table, run_dir = tmp_path / "kinds.csv", tmp_path / "trial"
    _write_kinds(table, ["a", "b"])
    config = TrialConfig.from_dict(
        {
            "data": {"path": str(table)},
            "model": {"latent_dim": 4, "generator": {"width": 8}, "discriminator": {"width": 8}},
            "train": {"batch_size": 16, "num_steps": 8, "eval_every_steps": 4},
            "convergence": {"num_eval_samples": 32},
        },
        source="test",
    )
    assert train_trial(config, run_dir, stop_after_step=4).state == "paused"
    trial = TrialDir(run_dir)
    data_json = trial.data_path.read_bytes()
    checkpoints = {p.name: p.read_bytes() for p in trial.checkpoints.iterdir()}
    _write_kinds(table, ["a", "b", "c"])  # the same config, a third category: a wider one-hot
    with pytest.raises(CheckpointError, match=r"step-0+4\.pt: trained on data encoded otherwise"):
        train_trial(config, run_dir)
    assert trial.data_path.read_bytes() == data_json  # export still decodes its checkpoints
    assert {p.name: p.read_bytes() for p in trial.checkpoints.iterdir()} == checkpoints
    _write_kinds(table, ["a", "b"])
    assert train_trial(config, run_dir).state == "finished"  # the data it was made with resumes


def test_learning_rates_fall_linearly_to_zero_from_lr_decay_start(tmp_path: Path) -> None:
    decaying = TrainConfig(num_steps=100, lr_decay_start=0.6)
    factors = [lr_factor(decaying, step) for step in (0, 60, 80, 99)]
    assert factors == pytest.approx([1.0, 1.0, 0.5, 0.025])
    assert lr_factor(TrainConfig(num_steps=100), 99) == 1.0  # the default: constant

    config = small_frf_config(num_steps=20, eval_every_steps=5, lr_decay_start=0.5)
    train_trial(config, tmp_path)
    state = _final_state(tmp_path)  # written after step 20: the rate of its last update
    for key, network in (
        ("optimizer_generator", config.optim.generator),
        ("optimizer_discriminator", config.optim.discriminator),
    ):
        rates = [group["lr"] for group in state[key]["param_groups"]]
        assert rates == pytest.approx([network.lr * lr_factor(config.train, 19)]), key


def _flatten(tree: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor or number in a nested state dict, keyed by its path."""
    flat: dict[str, torch.Tensor] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}.{key}"))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            flat.update(_flatten(value, f"{prefix}[{index}]"))
    elif isinstance(tree, torch.Tensor):
        flat[prefix] = tree
    elif isinstance(tree, (int, float)):
        flat[prefix] = torch.tensor(tree, dtype=torch.float64)
    return flat


def test_truncated_newest_checkpoint_falls_back(
    tmp_path: Path, trial_config: TrialConfig, caplog: pytest.LogCaptureFixture
) -> None:
    train_trial(trial_config, tmp_path, stop_after_step=10)
    newest = list_step_checkpoints(tmp_path / "checkpoints")[-1][1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    loaded = load_latest_valid(tmp_path / "checkpoints")
    assert loaded is not None and loaded.step == 5
    assert newest.name in caplog.text

    result = train_trial(trial_config, tmp_path)
    assert result.state == "finished" and result.step == 20


def test_non_finite_loss_ends_the_trial_as_diverged(
    tmp_path: Path, trial_config: TrialConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_step = train_module.generator_step
    calls = {"n": 0}

    def poisoned_step(gan, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 8:  # blow the weights up after step 7, as an exploding update would
            with torch.no_grad():
                next(gan.generator.parameters()).fill_(float("inf"))
        return real_step(gan, *args, **kwargs)

    monkeypatch.setattr(train_module, "generator_step", poisoned_step)
    result = train_trial(trial_config, tmp_path)

    assert result.state == "diverged"
    trial = TrialDir(tmp_path)
    assert trial.read_status().state == "diverged"
    assert json.loads(trial.result_path.read_text())["state"] == "diverged"
    # the last good checkpoint (step 5) is kept and loads with finite weights
    loaded = load_latest_valid(trial.checkpoints)
    assert loaded is not None and loaded.step == 5
    assert all(
        torch.isfinite(v).all() for v in loaded.state["generator"].values() if v.is_floating_point()
    )


class _RecordingScorer:
    """A scorer that records what the trainer asks it and returns fixed figures."""

    def __init__(self) -> None:
        self.evaluations: list[int] = []
        self.ends: list[dict] = []

    def at_evaluation(self, generator, data, config, device):  # type: ignore[no-untyped-def]
        self.evaluations.append(len(self.evaluations))
        return {"quality/log_spectral_error": 1.0 + len(self.evaluations)}

    def at_end(self, trial_path, records, data, config, device):  # type: ignore[no-untyped-def]
        self.ends.append(dict(records))
        return {
            which: {**record, "metrics": {**record["metrics"], "quality/marker": 7.0}}
            for which, record in records.items()
        }


def test_the_scorer_is_passed_in_and_asked_on_schedule(
    tmp_path: Path, trial_config: TrialConfig
) -> None:
    config = dataclasses.replace(
        trial_config,
        convergence=dataclasses.replace(
            trial_config.convergence,
            use_quality_at_evaluations=True,
            checkpoint_score="quality/log_spectral_error",
        ),
    )
    scorer = _RecordingScorer()
    paused = train_trial(config, tmp_path, scorer=scorer, stop_after_step=10)
    assert paused.state == "paused" and scorer.ends == []  # a paused trial is not scored yet
    result = train_trial(config, tmp_path, scorer=scorer)

    assert len(scorer.evaluations) == 4  # steps 5, 10, 15, 20
    assert len(scorer.ends) == 1 and scorer.ends[0]["last"]["step"] == 20
    records = TrialDir(tmp_path).read_metrics()
    assert [r["quality/log_spectral_error"] for r in records] == [2.0, 3.0, 4.0, 5.0]
    assert result.last is not None and result.last.metrics["quality/marker"] == 7.0
    saved = json.loads(TrialDir(tmp_path).result_path.read_text())
    assert saved["best"]["metrics"]["quality/marker"] == 7.0
    assert saved["last"]["metrics"]["quality/marker"] == 7.0


def _write_config(path: Path, config: TrialConfig) -> Path:
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_for_requeue(tmp_path: Path) -> None:
    config = small_frf_config(num_steps=100_000, eval_every_steps=50)
    config_file = _write_config(tmp_path / "trial.yaml", config)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "gan_hpc.trial.train", str(config_file), "--out", str(out)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metrics.exists(), process.stderr.read() if process.poll() is not None else "no metrics"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_REQUEUE
    status = TrialDir(out).read_status()
    assert status.state == "preempted" and status.step > 0
    assert load_latest_valid(out / "checkpoints").step == status.step

    # the requeued run continues from that step instead of restarting
    resumed = subprocess.run(
        [*command, "--resume", "--max-steps", str(status.step + 50)], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    steps = [r[names.STEP] for r in TrialDir(out).read_metrics()]
    assert steps == sorted(set(steps)) and steps[-1] == status.step + 50


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  latent_dims: 4\n")
    result = subprocess.run(
        [sys.executable, "-m", "gan_hpc.trial.train", str(bad), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.latent_dims" in lines[0] and "latent_dim" in lines[0]


def test_train_imports_no_ray_optuna_submitit() -> None:
    code = (
        "import sys, gan_hpc.trial.train; "
        "print(sorted(m for m in ('ray', 'optuna', 'submitit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_two_ranks_keep_identical_generators(tmp_path: Path) -> None:
    config = small_frf_config(num_steps=12, eval_every_steps=6)
    # rank 0 scores held-out quality at each evaluation and shares it with rank 1
    config = dataclasses.replace(
        config,
        convergence=dataclasses.replace(
            config.convergence,
            use_quality_at_evaluations=True,
            checkpoint_score="quality/log_spectral_error",
        ),
    )
    assert config.model.generator.norm == "batch"  # buffers are broadcast, parameters all-reduced
    out = tmp_path / "run"
    TrialDir(out).write_config(config)
    port = free_port()
    processes = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        log = (tmp_path / f"rank-{rank}.log").open("w")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "gan_hpc.trial.train", str(out)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    codes = [process.wait(timeout=300) for process in processes]
    logs = "\n".join((tmp_path / f"rank-{r}.log").read_text()[-2000:] for r in range(2))
    assert codes == [0, 0], logs
    result = json.loads((out / "result.json").read_text())
    fingerprints = result["replica_fingerprints"]
    assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1]
    state = _final_state(out)
    parameters = {
        k: v
        for k, v in state["generator"].items()
        if "running_" not in k and "num_batches" not in k
    }
    assert weights_fingerprint(parameters) == fingerprints[0]
    records = TrialDir(out).read_metrics()
    assert [r[names.STEP] for r in records] == [6, 12]
    assert all("quality/log_spectral_error" in r for r in records)


def test_a_lone_trial_without_a_thread_count_trains_on_every_cpu_it_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gan-hpc train` outside any launcher: no OMP_NUM_THREADS, no pinned count."""
    for variable in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(variable, raising=False)
    config = small_frf_config(num_steps=2, eval_every_steps=2)
    assert config.train.num_threads is None
    train_trial(config, tmp_path)
    assert torch.get_num_threads() == len(os.sched_getaffinity(0))
