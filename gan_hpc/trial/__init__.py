"""One trial: networks, losses, the training loop, checkpoints, DDP; no Ray, Optuna or submitit."""
