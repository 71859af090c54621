"""What to prune: masks, magnitudes, channel groups, kept widths, schedules, sparsity trajectories, the next decision."""
