"""One trial: DDP GAN training with exact checkpoint/resume and the seeds' convergence criteria.

Runs as a plain program, with no Ray, Optuna or submitit imported, so any launcher can wrap it::

    python -m gan_hpc.train TRIAL_DIR                 # TRIAL_DIR/config.json
    python -m gan_hpc.train CONFIG.yaml --out DIR     # a trial config or a sweep spec's base
    torchrun --nproc-per-node 2 -m gan_hpc.train CONFIG.yaml --out DIR

Exit statuses are in :mod:`gan_hpc.trial_dir` (0 finished, diverged or halted, 2 bad input,
75 checkpointed on SIGTERM/SIGUSR1 and asking to be run again).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from gan_hpc import convergence as names
from gan_hpc._logging import configure, get_logger
from gan_hpc.arguments import build_train_parser
from gan_hpc.checkpoint import (
    BEST_NAME,
    gather_rng_states,
    load_resume_checkpoint,
    prune_step_checkpoints,
    restore_rank_rng,
    save_checkpoint,
    step_checkpoint_name,
)
from gan_hpc.config import TrialConfig, load_trial_config
from gan_hpc.convergence import gate_holds, selection_key
from gan_hpc.data.datasets import PreparedData, load_dataset
from gan_hpc.dist_env import DistEnv, dist_env_from_environ
from gan_hpc.distributed import (
    all_reduce_mean,
    any_rank,
    broadcast_from_main,
    process_group,
    replica_fingerprints,
    select_device,
    wait_for_all,
)
from gan_hpc.errors import GanHpcError, SpecError
from gan_hpc.evaluation import evaluate_convergence
from gan_hpc.files import atomic_write_json
from gan_hpc.guards import GuardState
from gan_hpc.hparams import write_trial_hparams
from gan_hpc.locks import TrialLock
from gan_hpc.losses import get_loss
from gan_hpc.models import (
    ExponentialMovingAverage,
    build_models,
    sample_latent,
    unwrap_model,
)
from gan_hpc.quality_names import TAB_COLUMN_PREFIX
from gan_hpc.steps import (
    LossWindow,
    autocast_for,
    build_optimizer,
    check_reconstruction,
    discriminator_step,
    generator_step,
    grad_norm,
)
from gan_hpc.trial_dir import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REQUEUE,
    TRAIN_LOCK_FILE,
    WARM_TRAINER_FLAG,
    CheckpointRecord,
    TrialDir,
    TrialResult,
)
from gan_hpc.visuals import log_sample_pictures

logger = get_logger(__name__)

Report = Callable[[Mapping[str, float], Path | None], None]

# Under DDP every rank must see a stop request at the same step, which costs an all-reduce;
# checking every few steps keeps that off the hot path (SLURM's warning comes minutes early).
STOP_CHECK_EVERY_STEPS = 10
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
ENDED_OUTCOMES = ("finished", "diverged", "halted")  # the trial will not train again


@dataclass
class StopRequest:
    """Set by SIGTERM/SIGUSR1 (what SLURM sends before preemption or the time limit)."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signal_name is not None


def _no_report(metrics: Mapping[str, float], checkpoint: Path | None) -> None:
    """The default ``report``: the trial directory already has everything."""


def train_trial(
    config: TrialConfig,
    run_dir: Path,
    report: Report | None = None,
    *,
    stop_after_step: int | None = None,
) -> TrialResult:
    """Train one GAN trial in ``run_dir``, resuming from its newest valid checkpoint.

    Args:
        config: the trial config (written to ``run_dir/config.json`` by the caller or here).
        run_dir: the trial directory (see :mod:`gan_hpc.trial_dir`).
        report: called on rank 0 after each evaluation with the metrics and the checkpoint.
        stop_after_step: end this run after that step (a checkpoint is written there) without
            changing the config, so a later run resumes; for tests and quick looks.

    Returns:
        How the trial ended; ``state`` is ``finished``, ``diverged``, ``halted`` (a guard
        stopped it) or ``preempted``. A trial that ends (not preempted) has its best and last
        checkpoints scored on the held-out split (``config.quality``) before ``result.json``
        is written.

    """
    report = report or _no_report
    trial = TrialDir(run_dir)
    env = dist_env_from_environ()
    torch.set_num_threads(config.train.num_threads)
    device = select_device(config.train.device, env)
    started = time.perf_counter()
    # one trainer per trial: a run left over from a killed driver must exit before this one writes
    trial_lock = TrialLock(trial.path / TRAIN_LOCK_FILE) if env.is_main else nullcontext()
    with process_group(env, device), _stop_signals() as stop, trial_lock:
        if env.is_main:
            trial.write_config(config)
            trial.update_status(state="running", message="")
        cfg = config
        loss = get_loss(cfg.loss.name)

        # ---- data, models, optimisers: identical initial weights on every rank
        data = load_dataset(cfg.data)
        check_reconstruction(cfg, data)
        if env.is_main:
            atomic_write_json(
                trial.data_path,
                {
                    "transform": data.transform.to_dict(),
                    "schema": data.schema.to_dict(),
                    "source_hash": data.source_hash,
                    "num_rows": {
                        "train": len(data.train),
                        "val": len(data.val),
                        "test": len(data.test),
                    },
                },
            )
        torch.manual_seed(cfg.train.seed)
        generator, discriminator = build_models(cfg.model, data.schema)
        generator.to(device)
        discriminator.to(device)
        ema = (
            ExponentialMovingAverage(model=generator, decay=cfg.model.ema_decay)
            if cfg.model.use_ema
            else None
        )
        optimizer_g = build_optimizer(generator.parameters(), cfg.optim.generator)
        optimizer_d = build_optimizer(discriminator.parameters(), cfg.optim.discriminator)

        # ---- resume from the newest valid checkpoint in the trial directory
        step, epoch, batch_in_epoch = 0, 0, 0
        best: dict[str, Any] | None = None
        last: dict[str, Any] | None = None
        guards = GuardState()
        # rank 0 chooses, every rank loads its choice: all resume from one step
        resumed = load_resume_checkpoint(trial.checkpoints, env, device)
        if resumed is not None:
            state = resumed.state
            generator.load_state_dict(state["generator"])
            discriminator.load_state_dict(state["discriminator"])
            optimizer_g.load_state_dict(state["optimizer_generator"])
            optimizer_d.load_state_dict(state["optimizer_discriminator"])
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
            step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
            best, last = state.get("best"), state.get("last")
            guards = GuardState.from_dict(state.get("guards"))
            restore_rank_rng(state["rng"], env, cfg.train.seed, step)
            if env.is_main:
                _record_resume(trial, step)
            logger.info("resumed %s from %s (step %d)", trial.path, resumed.path.name, step)
        else:
            torch.manual_seed(cfg.train.seed * 1_000_003 + env.rank)  # per-rank noise streams

        if env.is_distributed:
            generator = DistributedDataParallel(generator, device_ids=_device_ids(device))
            discriminator = DistributedDataParallel(discriminator, device_ids=_device_ids(device))

        # ---- the loop: n_critic discriminator steps, then one generator step
        train_x = data.train.x.to(device)
        train_cond = data.train.cond.to(device) if data.train.cond is not None else None
        batches = _batches(
            len(train_x), cfg.train.batch_size, cfg.train.seed, env, epoch, batch_in_epoch, device
        )
        autocast = autocast_for(cfg, device)
        writer = _tensorboard_writer(trial) if env.is_main else None
        window = LossWindow()
        end_step = min(cfg.train.num_steps, stop_after_step or cfg.train.num_steps)
        outcome = "finished"
        while step < end_step:
            for _ in range(cfg.loss.n_critic):
                epoch, batch_in_epoch, index = next(batches)
                real_x = train_x[index]
                real_cond = train_cond[index] if train_cond is not None else None
                d_loss = discriminator_step(
                    generator,
                    discriminator,
                    optimizer_d,
                    loss,
                    cfg,
                    real_x,
                    real_cond,
                    device,
                    autocast,
                )
            g_loss = generator_step(
                generator,
                discriminator,
                optimizer_g,
                loss,
                cfg,
                data,
                len(real_x),
                device,
                autocast,
                real_x=real_x,
                real_cond=real_cond,
            )
            if ema is not None:
                ema.update(generator)
            step += 1
            window.add(d_loss, g_loss)

            stop_now = False
            if step % STOP_CHECK_EVERY_STEPS == 0 or not env.is_distributed:
                (stop_now,) = any_rank((stop.requested,), env, device)
            is_eval_step = step % cfg.train.eval_every_steps == 0 or step == end_step
            if not (is_eval_step or stop_now):
                continue

            # ---- evaluate (all ranks), then side effects on rank 0 only
            training = all_reduce_mean(window.means(), env, device)
            if not all(math.isfinite(v) for v in training.values()):
                outcome = "diverged"
                logger.warning(
                    "trial %s diverged: non-finite loss before step %d (%s); "
                    "keeping the last good checkpoint",
                    trial.path,
                    step,
                    ", ".join(f"{k}={v}" for k, v in training.items()),
                )
                break
            grad_norms = {
                names.D_GRAD_NORM: grad_norm(discriminator),
                names.G_GRAD_NORM: grad_norm(generator),
            }
            eval_generator = ema.module if ema is not None else unwrap_model(generator)
            convergence = evaluate_convergence(
                generator=eval_generator,
                discriminator=unwrap_model(discriminator),
                loss=loss,
                real_x=data.val.x[env.rank :: env.world_size],
                real_cond=data.val.cond[env.rank :: env.world_size]
                if data.val.cond is not None
                else None,
                num_fakes=max(cfg.convergence.num_eval_samples // env.world_size, 1),
                model_config=cfg.model,
                schema=data.schema,
                rng=_eval_rng(cfg.train.seed, step, env.rank, device),
                batch_size=max(cfg.train.batch_size, 256),
                device=device,
            )
            metrics = all_reduce_mean({**training, **grad_norms, **convergence}, env, device)
            elapsed = time.perf_counter() - window.started_at
            metrics[names.SAMPLES_PER_S] = (
                window.num_steps
                * cfg.train.batch_size
                * cfg.loss.n_critic
                * env.world_size
                / max(elapsed, 1e-9)
            )
            if cfg.convergence.use_quality_at_evaluations:
                metrics.update(_quality_at_evaluation(eval_generator, data, cfg, env, device))
            metrics[names.CONVERGED] = 1.0 if gate_holds(metrics, cfg.convergence) else 0.0
            window = LossWindow()
            # every rank sees the same all-reduced metrics, so every rank takes the same branch
            fired = guards.update(
                metrics, step, cfg.guards, has_floor=loss.equilibrium_d_loss is not None
            )
            for flag in fired:
                logger.warning("trial %s: guard %s: %s", trial.path, flag["guard"], flag["detail"])
            halt_now = bool(fired) and cfg.guards.action == "stop"

            checkpoint_name = step_checkpoint_name(step)
            record = {
                "step": step,
                "metrics": metrics,
                "checkpoint": f"checkpoints/{checkpoint_name}",
            }
            is_best = best is None or selection_key(metrics, cfg.convergence) > selection_key(
                best["metrics"], cfg.convergence
            )
            if is_best:
                best = {**record, "checkpoint": f"checkpoints/{BEST_NAME}"}
            last = record
            rng_states = gather_rng_states(env)
            if env.is_main:
                state = {
                    "step": step,
                    "epoch": epoch,
                    "batch_in_epoch": batch_in_epoch,
                    "generator": unwrap_model(generator).state_dict(),
                    "discriminator": unwrap_model(discriminator).state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer_generator": optimizer_g.state_dict(),
                    "optimizer_discriminator": optimizer_d.state_dict(),
                    "rng": rng_states,
                    "config": cfg.to_dict(),
                    "schema": data.schema.to_dict(),
                    "best": best,
                    "last": last,
                    "guards": guards.to_dict(),
                }
                checkpoint_path = trial.checkpoints / checkpoint_name
                save_checkpoint(checkpoint_path, state)
                if is_best:
                    save_checkpoint(trial.checkpoints / BEST_NAME, state)
                prune_step_checkpoints(trial.checkpoints, cfg.train.keep_last_checkpoints)
                wall_time = time.perf_counter() - started
                trial.append_metrics(step=step, epoch=epoch, wall_time_s=wall_time, metrics=metrics)
                trial.update_status(state="running", step=step)
                if writer is not None:
                    _log_tensorboard(writer, step, metrics, eval_generator, data, cfg, device)

                report({names.STEP: float(step), **metrics}, checkpoint_path)
            if stop_now:
                outcome = "preempted"
                logger.info("stop requested (%s): checkpointed at step %d", stop.signal_name, step)
                break
            if halt_now:
                outcome = "halted"
                break

        if outcome == "finished" and step < cfg.train.num_steps:
            outcome = "paused"  # stopped by stop_after_step; resumes later
        fingerprints = replica_fingerprints(unwrap_model(generator), env)
        if len(set(fingerprints)) > 1:
            logger.warning(
                "trial %s: generator replicas differ across ranks: %s", trial.path, fingerprints
            )
        if env.is_main and outcome in ENDED_OUTCOMES and cfg.quality.use_at_trial_end:
            # imported here: scikit-learn and scipy would add a second to every rank's start
            from gan_hpc.scoring import score_trial_records

            trial.update_status(message="scoring held-out quality")
            scored = score_trial_records(
                trial.path, {"best": best, "last": last}, data, cfg, device=device
            )
            best, last = scored["best"], scored["last"]
        # the other ranks wait while rank 0 scores: a rank that tears gloo down early aborts
        wait_for_all(env)
        result = TrialResult(
            state=outcome,
            step=step,
            wall_time_s=time.perf_counter() - started,
            best=None if best is None else CheckpointRecord.from_dict(best),
            last=None if last is None else CheckpointRecord.from_dict(last),
            replica_fingerprints=tuple(fingerprints),
            flags=tuple(guards.fired),
        )
        if env.is_main:
            if writer is not None:
                writer.close()
            status_state = {"paused": "preempted"}.get(outcome, outcome)
            message = "; ".join(f"{f['guard']} at step {f['step']}" for f in guards.fired)
            trial.update_status(state=status_state, step=step, message=message)
            if outcome in ENDED_OUTCOMES:
                trial.write_result(result)
                write_trial_hparams(trial.path)  # TensorBoard's HParams view of the sweep
        return result


def _quality_at_evaluation(
    generator: nn.Module, data: PreparedData, cfg: TrialConfig, env: DistEnv, device: torch.device
) -> dict[str, float]:
    """Held-out quality of the evaluated generator on the validation split, on every rank.

    Rank 0 scores (the validation split, never the test split the final scores use, so
    picking a checkpoint by quality does not peek at the test data) and shares the headline
    figures; per-column similarities are left to the end-of-trial scores.
    """
    scores: dict[str, float] = {}
    if env.is_main:
        # imported here: scikit-learn and scipy would add a second to every rank's start
        from gan_hpc.scoring import score_generator

        report = score_generator(generator, data, cfg, device=device, holdout="val")
        scores = {
            k: v
            for k, v in report.metrics.items()
            if not k.startswith(TAB_COLUMN_PREFIX) and math.isfinite(v)
        }
    return dict(broadcast_from_main(scores, env))


def _record_resume(trial: TrialDir, step: int) -> None:
    """Count the resume in status.json, with the steps that will be trained a second time."""
    recorded = [int(r.get(names.STEP, 0)) for r in trial.read_metrics()]
    repeated = max(max(recorded, default=0) - step, 0)
    status = trial.read_status()
    trial.update_status(
        resumes=status.resumes + 1,
        resumed_from_step=step,
        steps_repeated=status.steps_repeated + repeated,
    )


def _batches(
    num_rows: int,
    batch_size: int,
    seed: int,
    env: DistEnv,
    epoch: int,
    batch_in_epoch: int,
    device: torch.device,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Endless ``(epoch, next batch position, row indices)`` from a DistributedSampler.

    Starting at ``(epoch, batch_in_epoch)`` continues exactly where a checkpoint left off.
    """
    sampler: DistributedSampler[int] = DistributedSampler(
        range(num_rows),  # type: ignore[arg-type]  # any sized sequence works
        num_replicas=env.world_size,
        rank=env.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )
    per_rank = len(sampler)
    if per_rank < batch_size:
        raise SpecError(
            f"train.batch_size {batch_size} is larger than the {per_rank} training rows per rank; "
            "lower train.batch_size"
        )
    batches_per_epoch = per_rank // batch_size
    while True:
        sampler.set_epoch(epoch)
        # on the data's device, so indexing a batch needs no host-to-device copy per step
        order = torch.tensor(list(iter(sampler)), dtype=torch.long, device=device)
        while batch_in_epoch < batches_per_epoch:
            index = order[batch_in_epoch * batch_size : (batch_in_epoch + 1) * batch_size]
            batch_in_epoch += 1
            if batch_in_epoch == batches_per_epoch:
                yield epoch + 1, 0, index
            else:
                yield epoch, batch_in_epoch, index
        epoch, batch_in_epoch = epoch + 1, 0


def _device_ids(device: torch.device) -> list[int] | None:
    """DDP's ``device_ids``: the GPU index, or None on CPU."""
    return [device.index] if device.type == "cuda" and device.index is not None else None


def _eval_rng(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator for evaluation noise, separate from training's stream."""
    rng = torch.Generator(device=device)
    rng.manual_seed((seed * 1_000_003 + step * 97 + rank) % (2**63))
    return rng


def _tensorboard_writer(trial: TrialDir) -> Any:
    """A TensorBoard writer in the trial directory (rank 0 only)."""
    from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, rank 0 only

    return SummaryWriter(log_dir=str(trial.tensorboard))


def _log_tensorboard(
    writer: Any,
    step: int,
    metrics: Mapping[str, float],
    generator: nn.Module,
    data: PreparedData,
    cfg: TrialConfig,
    device: torch.device,
) -> None:
    """Scalars under the metric constants' names, plus pictures of samples next to real data."""
    for key, value in metrics.items():
        writer.add_scalar(key, value, step)
    rng = _eval_rng(
        cfg.train.seed, 0, 0, device
    )  # the same latents every time: progress is visible

    @torch.no_grad()
    def sample(cond: torch.Tensor | None, count: int) -> torch.Tensor:
        z = sample_latent(count, cfg.model.latent_dim, cfg.model.latent_distribution, rng, device)
        return generator(z, cond.to(device) if cond is not None else None).float().cpu()

    was_training = generator.training
    generator.eval()
    try:
        log_sample_pictures(writer, step, data, sample, cfg.train.num_tensorboard_samples)
    finally:
        generator.train(was_training)
    writer.flush()


@contextmanager
def _stop_signals() -> Iterator[StopRequest]:
    """Turn SIGTERM/SIGUSR1 into a stop request for the duration of the block."""
    stop = StopRequest()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.signal_name = signal.Signals(signum).name

    previous = {}
    for sig in STOP_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, handle)
        except ValueError:  # not the main thread (e.g. an in-process test runner)
            pass
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_from_args(args: argparse.Namespace) -> int:
    """Resolve the config and trial directory, train, and map the outcome to an exit status."""
    if args.config.is_dir():
        trial = TrialDir(args.out or args.config)
        config = TrialDir(args.config).read_config()
        if args.overrides:
            raise SpecError(f"{args.config}: --set cannot change an existing trial's config.json")
    else:
        if args.out is None:
            raise SpecError(
                f"{args.config}: --out DIR is required when training from a config file"
            )
        trial = TrialDir(args.out)
        config = load_trial_config(args.config, args.overrides)
        has_checkpoints = (
            any(trial.checkpoints.glob("*.pt")) if trial.checkpoints.is_dir() else False
        )
        if has_checkpoints and not args.resume:
            raise SpecError(
                f"{trial.path}: already holds checkpoints; pass --resume or choose a new --out"
            )
    result = train_trial(config, trial.path, stop_after_step=args.max_steps)
    return EXIT_REQUEUE if result.state == "preempted" else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gan_hpc.train``: exit 0 finished/diverged, 2 bad input, 75 requeue, 1 crash."""
    args = build_train_parser().parse_args(argv)
    configure()
    try:
        return run_from_args(args)
    except GanHpcError as exc:
        print(f"gan-hpc train: error: {exc}", file=sys.stderr)  # noqa: T201 - program entry point
        return EXIT_BAD_INPUT
    except Exception:
        logger.exception("trial crashed")
        return EXIT_FAILED


def serve_warm(requests: TextIO) -> int:
    """``python -m gan_hpc.train --warm``: import what a trial needs, then run the one it is sent.

    A launcher starts this spare while the previous trial trains, so the next trial skips the
    interpreter's start: torch, TorchDynamo (which the optimisers import on their first call),
    TensorBoard and the end-of-trial scorers, several seconds in all. The request is one JSON
    line, ``{"argv": [...], "env": {...}, "log": path}``: the arguments, environment and log
    file that a cold ``python -m gan_hpc.train`` would get. End of input (the launcher went
    away, or has no trial for it) ends the spare.

    Returns:
        the trial's exit status, as :func:`main`'s.

    """
    _import_trial_dependencies()
    line = requests.readline()
    if not line.strip():
        return EXIT_OK
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["env"])
    # the log takes over stdout and stderr: what the trial prints lands where a cold start's
    # would, and /proc/<pid>/fd/1 tells which trial this process trains (launch.trainer_pids)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, sys.stdout.fileno())
    os.dup2(log, sys.stderr.fileno())
    os.close(log)
    return main(request["argv"])


def _import_trial_dependencies() -> None:
    """Import the modules every trial loads on its way (seconds in a fresh interpreter)."""
    import torch._dynamo  # noqa: F401  # the optimisers' first call imports it (seconds)
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    from gan_hpc import scoring  # noqa: F401  # end-of-trial scores (scikit-learn, scipy)


if __name__ == "__main__":
    sys.exit(serve_warm(sys.stdin) if sys.argv[1:] == [WARM_TRAINER_FLAG] else main())
