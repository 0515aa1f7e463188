"""Where trials run: the launcher interface, its registry, and the local and SLURM backends."""
