"""Iterative magnitude pruning runs: its config, the IMP runner, its directory, file names, checkpoints and tables."""
