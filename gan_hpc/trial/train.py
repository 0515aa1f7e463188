"""One trial: DDP GAN training with exact checkpoint/resume and the seeds' convergence criteria.

:func:`train_trial` reads top to bottom: set up the rank, build the data and the models,
resume, loop (``n_critic`` discriminator steps, one generator step), and at each evaluation
reduce the metrics across ranks and hand them to the rank-0 :class:`TrialWriter`, which owns
every file of the trial directory. It imports no Ray, Optuna or submitit, so any launcher can
wrap it. The command line lives in :mod:`gan_hpc.trial.cli`; ``python -m gan_hpc.trial.train`` (the
program every launcher starts) runs it::

    python -m gan_hpc.trial.train TRIAL_DIR                 # TRIAL_DIR/config.json
    python -m gan_hpc.trial.train CONFIG.yaml --out DIR     # a trial config or a sweep spec's base
    torchrun --nproc-per-node 2 -m gan_hpc.trial.train CONFIG.yaml --out DIR
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import torch
from torch.utils.data import DistributedSampler

from gan_hpc import convergence as names
from gan_hpc._logging import get_logger
from gan_hpc.config import TrialConfig
from gan_hpc.convergence import gate_holds, selection_key
from gan_hpc.data.datasets import PreparedData, load_dataset
from gan_hpc.data.types import DataSchema
from gan_hpc.dist_env import DistEnv, dist_env_from_environ, rank_threads
from gan_hpc.errors import CheckpointError, SpecError
from gan_hpc.trial.checkpoint import (
    BEST_NAME,
    TrainState,
    gather_rng_states,
    load_resume_checkpoint,
    restore_rank_rng,
    step_checkpoint_name,
)
from gan_hpc.trial.distributed import (
    all_reduce_mean,
    any_rank,
    broadcast_from_main,
    process_group,
    replica_fingerprints,
    select_device,
    wait_for_all,
)
from gan_hpc.trial.evaluation import evaluate_convergence
from gan_hpc.trial.guards import GuardState
from gan_hpc.trial.models import unwrap_model
from gan_hpc.trial.scorer import HELD_OUT, TrialScorer
from gan_hpc.trial.steps import (
    Gan,
    LossWindow,
    build_gan,
    check_marginal,
    check_reconstruction,
    discriminator_step,
    generator_step,
    schedule_learning_rates,
)
from gan_hpc.trial.writer import Report, TrialWriter, no_report
from gan_hpc.trial_dir import CheckpointRecord, TrialDir, TrialResult

logger = get_logger(__name__)

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


def train_trial(
    config: TrialConfig,
    run_dir: Path,
    report: Report | None = None,
    *,
    scorer: TrialScorer = HELD_OUT,
    stop_after_step: int | None = None,
) -> TrialResult:
    """Train one GAN trial in ``run_dir``, resuming from its newest valid checkpoint.

    Args:
        config: the trial config (written to ``run_dir/config.json`` by the caller or here).
        run_dir: the trial directory (see :mod:`gan_hpc.trial_dir`).
        report: called on rank 0 after each evaluation with the metrics and the checkpoint.
        scorer: held-out quality, asked for on rank 0 at evaluations (with
            ``convergence.use_quality_at_evaluations``) and at the end (with
            ``quality.use_at_trial_end``).
        stop_after_step: end this run after that step (a checkpoint is written there) without
            changing the config, so a later run resumes; for tests and quick looks.

    Returns:
        How the trial ended; ``state`` is ``finished``, ``diverged``, ``halted`` (a guard
        stopped it), ``preempted`` or ``paused`` (``stop_after_step``).

    """
    cfg = config
    env = dist_env_from_environ()
    torch.set_num_threads(rank_threads(cfg.train.num_threads))
    device = select_device(cfg.train.device, env)
    started = time.perf_counter()
    writer = TrialWriter(TrialDir(run_dir), cfg, is_main=env.is_main, report=report or no_report)
    with process_group(env, device), _stop_signals() as stop, writer:
        writer.start()

        # ---- data, models, optimisers: identical initial weights on every rank
        data = load_dataset(cfg.data)
        check_reconstruction(cfg.loss, data.schema)
        check_marginal(cfg.loss, data.schema)
        torch.manual_seed(cfg.train.seed)
        gan = build_gan(
            data.schema,
            model=cfg.model,
            optim=cfg.optim,
            loss=cfg.loss,
            train=cfg.train,
            device=device,
        )

        # ---- resume from the newest valid checkpoint (rank 0 chooses, every rank loads it)
        start = _resume(gan, writer, cfg, data.schema, env, device)
        # after the resume check: a checkpoint of other data keeps the data.json it was made with
        writer.record_data(data)
        step, epoch, batch_in_epoch = start.step, start.epoch, start.batch_in_epoch
        best, last, guards = start.best, start.last, start.guards
        if env.is_distributed:
            gan.wrap_ddp(device)

        # ---- the loop: n_critic discriminator steps, then one generator step
        train_x = data.train.x.to(device)
        train_cond = data.train.cond.to(device) if data.train.cond is not None else None
        batches = _batches(
            len(train_x), cfg.train.batch_size, cfg.train.seed, env, epoch, batch_in_epoch, device
        )
        window = LossWindow()
        end_step = min(cfg.train.num_steps, stop_after_step or cfg.train.num_steps)
        outcome = "finished"
        while step < end_step:
            schedule_learning_rates(gan, cfg.optim, cfg.train, step)
            for _ in range(cfg.loss.n_critic):
                epoch, batch_in_epoch, index = next(batches)
                real_x = train_x[index]
                real_cond = train_cond[index] if train_cond is not None else None
                d_loss = discriminator_step(
                    gan, real_x, real_cond, loss=cfg.loss, model=cfg.model, train=cfg.train
                )
            g_loss = generator_step(
                gan,
                real_x,
                real_cond,
                loss=cfg.loss,
                model=cfg.model,
                train=cfg.train,
                schema=data.schema,
            )
            step += 1
            window.add(d_loss, g_loss)

            stop_now = False
            if step % STOP_CHECK_EVERY_STEPS == 0 or not env.is_distributed:
                (stop_now,) = any_rank((stop.requested,), env, device)
            if not (step % cfg.train.eval_every_steps == 0 or step == end_step or stop_now):
                continue

            # ---- evaluate on every rank; the metrics are all-reduced, so all take one branch
            training = all_reduce_mean(window.means(), env, device)
            if _has_diverged(training, run_dir, step):
                outcome = "diverged"
                break
            training.update(gan.grad_norms())
            metrics = _evaluate(gan, training, window, data, cfg, env, step, device, scorer)
            window = LossWindow()
            fired = guards.update(
                metrics, step, cfg.guards, has_floor=gan.loss_pair.equilibrium_d_loss is not None
            )
            for flag in fired:
                logger.warning("trial %s: guard %s: %s", run_dir, flag["guard"], flag["detail"])
            best, last, is_best = _records(metrics, step, best, cfg)
            state = TrainState(
                step=step,
                epoch=epoch,
                batch_in_epoch=batch_in_epoch,
                **gan.state_dicts(),
                rng=gather_rng_states(env),
                config=cfg.to_dict(),
                schema=data.schema.to_dict(),
                best=best,
                last=last,
                guards=guards.to_dict(),
            )
            wall_time_s = time.perf_counter() - started
            writer.record_evaluation(
                state,
                metrics,
                is_best=is_best,
                wall_time_s=wall_time_s,
                generator=gan.evaluated_generator,
                device=device,
            )
            if stop_now:
                outcome = "preempted"
                logger.info("stop requested (%s): checkpointed at step %d", stop.signal_name, step)
                break
            if fired and cfg.guards.action == "stop":
                outcome = "halted"
                break

        # ---- the end: compare the replicas, score the checkpoints, write the result
        if outcome == "finished" and step < cfg.train.num_steps:
            outcome = "paused"  # stopped by stop_after_step; resumes later
        fingerprints = replica_fingerprints(unwrap_model(gan.generator), env)
        if len(set(fingerprints)) > 1:
            logger.warning("trial %s: generator replicas differ: %s", run_dir, fingerprints)
        if env.is_main and outcome in ENDED_OUTCOMES and cfg.quality.use_at_trial_end:
            writer.set_message("scoring held-out quality")
            scored = scorer.at_end(run_dir, {"best": best, "last": last}, data, cfg, device)
            best, last = scored["best"], scored["last"]
        wait_for_all(env)  # while rank 0 scores: a rank that tears gloo down early aborts
        result = TrialResult(
            state=outcome,
            step=step,
            wall_time_s=time.perf_counter() - started,
            best=None if best is None else CheckpointRecord.from_dict(best),
            last=None if last is None else CheckpointRecord.from_dict(last),
            replica_fingerprints=tuple(fingerprints),
            flags=tuple(guards.fired),
        )
        writer.finish(state=outcome, step=step, flags=guards.fired, result=result)
        return result


@dataclass(frozen=True)
class _Start:
    """Where the loop starts: step, data position, result records and guards so far."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    guards: GuardState = field(default_factory=GuardState)


def _resume(
    gan: Gan,
    writer: TrialWriter,
    cfg: TrialConfig,
    schema: DataSchema,
    env: DistEnv,
    device: torch.device,
) -> _Start:
    """Load the newest valid checkpoint into ``gan`` and the RNGs; a fresh start when none.

    Rank 0 chooses the checkpoint and every rank loads it; a fresh trial seeds one noise
    stream per rank.

    Raises:
        CheckpointError: the checkpoint was trained on data encoded otherwise than ``schema``
            (the data config, the data or gan-hpc's encoding changed since).

    """
    resumed = load_resume_checkpoint(writer.trial.checkpoints, env, device)
    if resumed is None:
        torch.manual_seed(cfg.train.seed * 1_000_003 + env.rank)  # per-rank noise streams
        return _Start()
    state = resumed.state
    if state.schema and DataSchema.from_dict(state.schema) != schema:
        raise CheckpointError(
            f"{resumed.path}: trained on data encoded otherwise than the data is now (the data "
            "config, the data files or gan-hpc's encoding changed since); resume with the "
            "settings and version that wrote it, or train into a new directory"
        )
    gan.load_state_dicts(state)
    restore_rank_rng(state.rng, env, cfg.train.seed, state.step)
    writer.record_resume(state.step)
    logger.info("resumed %s from %s (step %d)", writer.trial.path, resumed.path.name, state.step)
    return _Start(
        step=state.step,
        epoch=state.epoch,
        batch_in_epoch=state.batch_in_epoch,
        best=state.best,
        last=state.last,
        guards=GuardState.from_dict(state.guards),
    )


def _has_diverged(training: Mapping[str, float], run_dir: Path, step: int) -> bool:
    """True, with a warning, when a training loss of the window is NaN or infinite."""
    if all(math.isfinite(value) for value in training.values()):
        return False
    losses = ", ".join(f"{key}={value}" for key, value in training.items())
    logger.warning(
        "trial %s diverged: non-finite loss before step %d (%s); keeping the last good checkpoint",
        run_dir,
        step,
        losses,
    )
    return True


def _records(
    metrics: dict[str, float], step: int, best: dict[str, Any] | None, cfg: TrialConfig
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The evaluation's ``last`` record, the ``best`` one so far, and whether it is the best.

    The records are ``result.json``'s: step, metrics and the checkpoint file holding them.
    """
    checkpoint = f"checkpoints/{step_checkpoint_name(step)}"
    last = {"step": step, "metrics": metrics, "checkpoint": checkpoint}
    if best is None or selection_key(metrics, cfg.convergence) > selection_key(
        best["metrics"], cfg.convergence
    ):
        return {**last, "checkpoint": f"checkpoints/{BEST_NAME}"}, last, True
    return best, last, False


def _evaluate(
    gan: Gan,
    training: dict[str, float],
    window: LossWindow,
    data: PreparedData,
    cfg: TrialConfig,
    env: DistEnv,
    step: int,
    device: torch.device,
    scorer: TrialScorer,
) -> dict[str, float]:
    """One evaluation's metrics, all-reduced across ranks.

    They are ``training`` (losses, gradient norms), the convergence metrics of the evaluated
    generator (the EMA copy when there is one) and the samples/s of the window.

    With ``convergence.use_quality_at_evaluations`` rank 0 also scores held-out quality on
    the validation split and shares it; then the convergence gate is applied.
    """
    generator = gan.evaluated_generator
    convergence = evaluate_convergence(
        generator=generator,
        discriminator=unwrap_model(gan.discriminator),
        loss=gan.loss_pair,
        real_x=data.val.x[env.rank :: env.world_size],
        real_cond=data.val.cond[env.rank :: env.world_size] if data.val.cond is not None else None,
        num_fakes=max(cfg.convergence.num_eval_samples // env.world_size, 1),
        model_config=cfg.model,
        schema=data.schema,
        rng=_eval_rng(cfg.train.seed, step, env.rank, device),
        batch_size=max(cfg.train.batch_size, 256),
        device=device,
    )
    metrics = all_reduce_mean({**training, **convergence}, env, device)
    elapsed = time.perf_counter() - window.started_at
    samples = window.num_steps * cfg.train.batch_size * cfg.loss.n_critic * env.world_size
    metrics[names.SAMPLES_PER_S] = samples / max(elapsed, 1e-9)
    if cfg.convergence.use_quality_at_evaluations:
        scores = scorer.at_evaluation(generator, data, cfg, device) if env.is_main else {}
        metrics.update(broadcast_from_main(scores, env))
    metrics[names.CONVERGED] = 1.0 if gate_holds(metrics, cfg.convergence) else 0.0
    return metrics


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


def _eval_rng(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """A generator for evaluation noise, separate from training's stream."""
    rng = torch.Generator(device=device)
    rng.manual_seed((seed * 1_000_003 + step * 97 + rank) % (2**63))
    return rng


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


def _run_program() -> NoReturn:
    """``python -m gan_hpc.trial.train``, the program every launcher starts (gan_hpc.trial.cli)."""
    # imported here: trial.cli imports this module
    from gan_hpc.trial.cli import exit_without_teardown, run_program

    exit_without_teardown(run_program(sys.argv[1:]))


if __name__ == "__main__":
    _run_program()
