"""Iterative magnitude pruning runs: the run config, the IMP runner and its next-decision step, run directories, file names, checkpoints, sparsity trajectories, tables."""
