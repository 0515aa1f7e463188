"""Samples/s of ``train_trial`` against a minimal hand-written PyTorch loop (same run).

Both train the same model, loss and batch size on the same data. The trainer's figure is its
own ``samples_per_s`` (the training loop, without process start-up and data loading); the bare
loop is timed the same way. DDP world size 2 runs the trainer as two gloo ranks.

    python bench/train_throughput.py [--steps 600] [--batch-size 256] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan_hpc.config import TrialConfig
from gan_hpc.data.datasets import load_dataset
from gan_hpc.dist_env import free_port
from gan_hpc.trial.losses import get_loss
from gan_hpc.trial.models import build_models
from gan_hpc.trial.train import train_trial
from gan_hpc.trial_dir import TrialDir


def bench_config(steps: int, batch_size: int, device: str, use_bf16: bool) -> TrialConfig:
    """A conditional MLP GAN on the built-in FRF simulator, evaluated half-way and at the end."""
    return TrialConfig.from_dict(
        {
            "data": {
                "format": "synthetic_frf",
                "conditional": True,
                # enough curves that one batch never exceeds an epoch
                "synthetic": {"num_points": max(2000, 2 * batch_size), "num_frequencies": 128},
            },
            "model": {
                "latent_dim": 32,
                "generator": {"depth": 2, "width": 256, "norm": "batch"},
                "discriminator": {"depth": 2, "width": 256},
                "use_ema": True,
            },
            "loss": {"name": "bce_logits"},
            "train": {
                "batch_size": batch_size,
                "num_steps": steps,
                # two windows: the second one, in steady state, gives the reported figure
                "eval_every_steps": steps // 2,
                "device": device,
                "use_bf16": use_bf16,
                "num_threads": 1,  # as the bare loop: one thread each
            },
            "convergence": {"num_eval_samples": 256},
        },
        source="bench",
    )


def bare_loop(config: TrialConfig, device: torch.device) -> float:
    """The same GAN step written by hand: samples/s over the timed steps."""
    data = load_dataset(config.data)
    torch.manual_seed(0)
    generator, discriminator = build_models(config.model, data.schema)
    generator.to(device)
    discriminator.to(device)
    loss = get_loss(config.loss.name)
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    x_all = data.train.x.to(device)
    c_all = data.train.cond.to(device)
    batch, latent = config.train.batch_size, config.model.latent_dim
    steps = config.train.num_steps
    warmup = min(20, steps // 10)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if config.train.use_bf16 and device.type == "cuda"
        else None
    )
    started = 0.0
    for step in range(steps + warmup):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        index = torch.randint(0, len(x_all), (batch,), device=device)
        real, cond = x_all[index], c_all[index]
        with autocast or _null():
            fake = generator(torch.randn(batch, latent, device=device), cond)
            d_loss = loss.d_loss(
                discriminator(real, cond).float(), discriminator(fake.detach(), cond).float()
            )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with autocast or _null():
            cond_g = torch.rand(batch, cond.shape[1], device=device) * 2 - 1
            g_loss = loss.g_loss(
                discriminator(
                    generator(torch.randn(batch, latent, device=device), cond_g), cond_g
                ).float()
            )
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def trainer_single(config: TrialConfig) -> float:
    """``train_trial`` in this process: its own samples/s figure."""
    with tempfile.TemporaryDirectory() as tmp:
        result = train_trial(config, Path(tmp))
        assert result.last is not None
        return float(result.last.metrics["samples_per_s"])


def trainer_ddp(config: TrialConfig, world_size: int) -> float:
    """``python -m gan_hpc.trial.train`` as ``world_size`` gloo ranks: global samples/s."""
    with tempfile.TemporaryDirectory() as tmp:
        trial = TrialDir(tmp)
        trial.write_config(config)
        port = str(free_port())
        processes = []
        for rank in range(world_size):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world_size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "OMP_NUM_THREADS": "1",
            }
            processes.append(
                subprocess.Popen([sys.executable, "-m", "gan_hpc.trial.train", tmp], env=env)
            )
        for process in processes:
            if process.wait() != 0:
                raise SystemExit("a DDP rank failed")
        result = json.loads(trial.result_path.read_text())
        return float(result["last"]["metrics"]["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU only)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per variant; the median is shown"
    )
    parser.add_argument("--skip-ddp", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = bench_config(args.steps, args.batch_size, args.device, args.bf16)
    device = torch.device(args.device)
    load_dataset(config.data)  # warm the cache so no variant pays for the simulator

    def median(fn) -> float:  # type: ignore[no-untyped-def]
        values = sorted(fn() for _ in range(args.repeats))
        return values[len(values) // 2]

    rows = [("bare PyTorch loop (1 process)", median(lambda: bare_loop(config, device)))]
    rows.append(("train_trial (1 process)", median(lambda: trainer_single(config))))
    if not args.skip_ddp and args.device == "cpu":
        ddp = dataclasses.replace(
            config, train=dataclasses.replace(config.train, batch_size=args.batch_size // 2)
        )
        rows.append(("train_trial DDP world size 2 (gloo)", median(lambda: trainer_ddp(ddp, 2))))
    baseline = rows[0][1]
    print(
        f"device={args.device} bf16={args.bf16} steps={args.steps} batch={args.batch_size} "
        f"torch={torch.__version__} threads/rank=1 cores={os.cpu_count()}"
    )
    print(f"{'variant':40s} {'samples/s':>12s} {'vs bare':>8s}")
    for name, value in rows:
        print(f"{name:40s} {value:12.0f} {value / baseline:8.2f}")


if __name__ == "__main__":
    main()
