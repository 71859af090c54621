"""Iterative magnitude pruning runs: run config, runner, next-decision step, run directories, trajectories, tables."""
