"""Convergence criteria of the seeds, generalised: metric names (constants used everywhere) and their computation."""

from __future__ import annotations

STEP = "step"  # generator updates so far: the progress measure everywhere (ASHA included)
EPOCH = "epoch"
WALL_TIME_S = "wall_time_s"
SAMPLES_PER_S = "samples_per_s"

D_LOSS = "d_loss"  # training losses, averaged over the evaluation window and ranks
G_LOSS = "g_loss"
D_GRAD_NORM = "d_grad_norm"
G_GRAD_NORM = "g_grad_norm"

D_REAL_MEAN = "d_real_mean"  # mean D(x) (probability) on held-out real samples
D_FAKE_MEAN = "d_fake_mean"  # mean D(G(z)) on fresh fakes
D_ACC_HELDOUT = "d_acc_heldout"  # D accuracy: held-out real vs an equal number of fakes
FOOLING_RATE = "fooling_rate"  # share of generated samples D classifies as real
D_LOSS_HELDOUT = "d_loss_heldout"  # D loss on held-out real + fakes
D_LOSS_GAP = "d_loss_gap"  # |D loss - its equilibrium value| (2 ln 2 for BCE)
CONVERGED = "converged"  # 1.0 when the gate holds at this evaluation

ALL_TRAINING = (D_LOSS, G_LOSS, D_GRAD_NORM, G_GRAD_NORM)
ALL_CONVERGENCE = (D_REAL_MEAN, D_FAKE_MEAN, D_ACC_HELDOUT, FOOLING_RATE, D_LOSS_HELDOUT, D_LOSS_GAP, CONVERGED)
