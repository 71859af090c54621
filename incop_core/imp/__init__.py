"""Iterative magnitude pruning runs: the run config, the IMP runner, run directories, file names, checkpoints, tables."""
